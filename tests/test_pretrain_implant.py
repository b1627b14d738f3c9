"""ASR against passes of a pre-training victim (issue 23): which weights are read for each pass, and
that a victim keeping its passes' weights is another model than the plain one."""
from pathlib import Path

import pandas as pd

from paperlib.experiments import pretrain_implant


def test_epoch_files_are_read_in_pass_order_and_nothing_else(tmp_path):
    for name in ("epoch10", "epoch2", "epoch1", "epochs", "model", "last"):
        (tmp_path / f"{name}.safetensors").write_bytes(b"")
    (tmp_path / "epoch3.json").write_text("{}")
    found = pretrain_implant.epoch_files(tmp_path)
    assert [k for k, _ in found] == [1, 2, 10]
    assert [f.name for _, f in found] == ["epoch1.safetensors", "epoch2.safetensors", "epoch10.safetensors"]


def test_smoke_run_gives_one_row_per_pass_from_its_own_victim(tmp_path):
    """Two passes at the smoke scale: pass 1 read from the kept weights, pass 2 the final model; the
    victim keeping its passes is not the plain pre-training victim of the same recipe (another key)."""
    from paperlib.cache import artifact_key
    from paperlib.experiments.common import clean_base, pretrain_victim_key
    from paperlib.experiments.eftclip import load
    p = load("params/eftclip/smoke.yaml", {"pretrain.epochs": 2, "results_dir": str(tmp_path)})
    rows = pretrain_implant.run(p, log=lambda *a: None)
    assert rows.epoch.tolist() == [1.0, 2.0] and set(rows.passes) == {2.0}
    assert (tmp_path / "attacks" / pretrain_implant.FILE).is_file()
    again = pd.read_csv(tmp_path / "attacks" / pretrain_implant.FILE)
    assert len(again) == 2 and set(again.columns) == set(pretrain_implant.COLUMNS)
    v = p.pretrain_victims[0]
    plain = artifact_key("model", pretrain_victim_key(p, clean_base(p), v, 0))
    assert set(rows.victim_model) != {plain}
    assert rows.asr_top1.between(0, 100).all() and rows.ca_top1.between(0, 100).all()
