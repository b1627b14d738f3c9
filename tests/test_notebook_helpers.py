"""paperlib.notebook's helpers on hand-made rows."""
import pandas as pd

from paperlib import notebook


def test_devices_names_the_device_of_each_model_by_seed():
    rows = pd.DataFrame({"attack": ["badnet"] * 3 + ["sig"], "defence": ["ft", "ft", "none", "ft"],
                         "seed": [0, 1, 0, 2], "device": ["AMD EPYC", "NVIDIA H200", "AMD EPYC", "NVIDIA H200"]})
    table = notebook.devices(rows)
    assert table.loc[("badnet", "ft"), 0] == "AMD EPYC" and table.loc[("badnet", "ft"), 1] == "NVIDIA H200"
    assert table.loc[("sig", "ft"), 2] == "NVIDIA H200" and pd.isna(table.loc[("badnet", "none"), 1])
