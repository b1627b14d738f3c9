"""Helpers that keep the notebooks thin: parameter loading, logging, display of parameters."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from paperlib.config import describe, to_dict


def setup(loader, params_file: str, overrides: dict | None = None, results_dir: str | None = None):
    """Configure the offline environment and logging, then load and validate the parameters.

    Runs from the repository root whatever the notebook's working directory is (papermill
    executes with the notebook's folder as the working directory).
    """
    from paperlib.assets import configure_environment, repo_root
    configure_environment()
    os.chdir(repo_root())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True)
    for noisy in ("PIL", "matplotlib", "root"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    overrides = dict(overrides or {})
    if results_dir is not None:
        overrides["results_dir"] = results_dir
    params = loader(Path(params_file), overrides)
    from paperlib.results import announce_builds, open_results_dir, is_published
    announce_builds()
    where = open_results_dir(params, log=logging.getLogger("paperlib.results").info)
    logging.getLogger("paperlib.results").info(
        "results go to %s%s", where, " (published: the committed results)" if is_published(where) else
        " (scratch; the committed results/ stay as they are)")
    return params


def params_frame(p):
    """The parameters as a two-column table (key, value) for display."""
    import pandas as pd

    def flat(d, prefix=""):
        for k, v in d.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict) and v and k != "attack_params":
                yield from flat(v, key + ".")
            else:
                yield key, v
    return pd.DataFrame(list(flat(to_dict(p))), columns=["parameter", "value"])


def show_params(p) -> None:
    from IPython.display import display
    import pandas as pd
    with pd.option_context("display.max_rows", 200, "display.max_colwidth", 80):
        display(params_frame(p))


__all__ = ["setup", "show_params", "params_frame", "describe", "devices"]


def devices(rows):
    """Which device trained each model of a results table with a ``device`` column: (attack,
    defence) by seed, so a reader sees which seeds came from the 2-core CPU and which from a GPU."""
    return rows.pivot_table(index=["attack", "defence"], columns="seed", values="device",
                            aggfunc=lambda d: " / ".join(sorted(set(map(str, d)))))
