"""EftCLIP's published rows standing in for models absent from the cache (issue 25: a fresh machine).

A seed's detection rows are matched by the sweep's cache key (``eval_key``); a (threat, attack,
seed) block of Tables 2-6 and Algorithm 2's finds by :func:`_block`, a digest of the victim, the
settings (:func:`~paperlib.experiments.eftclip_setup.settings_digest`) and what decides which rows
the block makes.  Either stands in only when its victim was absent from the cache when the
workbench started (:meth:`~paperlib.experiments.eftclip_setup.Workbench.victim_absent`).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from paperlib.experiments.eftclip_setup import (PAPER, DetectionSweep, EftCLIPParams, Workbench, _table4_pretrain,
                                                detection_key)


def _published_sweep(p: EftCLIPParams, d: DetectionSweep, wb: Workbench,
                     seed: int) -> tuple[pd.DataFrame, bool] | None:
    """One seed's detection rows without its victim: the sweep's own evaluation when the cache holds
    it, else, when the victim was absent from the cache (:meth:`Workbench.victim_absent`), the
    rows of results/detection/eftclip.csv of the very sweep (``eval_key``: the victim, the segmenter,
    the settings, the code version); with whether they came from the cache.  None: the sweep runs."""
    from types import SimpleNamespace

    from paperlib.cache import ArtifactCache, artifact_key
    vkey = wb.victim_key("badnet", seed, p.detection.victim)
    name = artifact_key("model", vkey)
    key = detection_key(p, d, wb, SimpleNamespace(path=Path(name)), seed)
    cache = ArtifactCache()
    if (found := cache.cached("eval", key)) is not None:
        return pd.read_csv(found / "detection.csv").assign(
            scale=p.scale, seed=seed, victim_model=name, eval_key=artifact_key("eval", key)), True
    path = Path(p.results_dir) / "detection" / "eftclip.csv"
    if not p.reuse_rows or not wb.victim_absent(vkey) or not path.is_file():
        return None
    rows = pd.read_csv(path, dtype={"eval_key": str, "victim_model": str})
    if "eval_key" not in rows:
        return None
    rows = rows[rows.eval_key == artifact_key("eval", key)]
    return (rows.reset_index(drop=True), False) if len(rows) else None


def _block(p: EftCLIPParams, threat: str, attack: str, seed: int, victim_model: str, settings: str) -> str:
    """What the rows of one (threat, attack, seed) of :func:`defence_tables` share: its victim, the
    settings, and what decides which rows it makes (an ablation seed's extra rows, Table 4's threat
    model, the oracles).  All of a block's rows are written at once, so a block found in the files is
    whole, and stands in for its models on a machine without its victim."""
    import hashlib
    import json
    if threat == "pretrain" and p.table5_threat == "pretrain":
        # a pre-training block of Table 5 (issue 23): its rows are Tables 3-5 of this victim, whatever
        # the ablation seeds (they add no pre-training rows) or which attack the file's Table 4 is
        what = [threat, attack, int(seed), victim_model, settings, "table5", attack in p.table5_attacks,
                _table4_pretrain(p) == attack, list(p.detection.oracles)]
    else:   # (the blocks published before Table 5 could be of pre-training victims: their digests unchanged)
        what = [threat, attack, int(seed), victim_model, settings, seed in p.ablation_seed_list, _table4_pretrain(p),
                list(p.detection.oracles), list(p.other_rules)]   # (the clean base: in settings)
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:12]


def _published_block(p: EftCLIPParams, block: str) -> tuple[list[dict], list[dict]] | None:
    """The rows of ``block`` in tables.csv and curation.csv, or None when tables.csv has none."""
    folder = Path(p.results_dir) / PAPER
    text = {c: str for c in ("block", "settings", "victim_model")}   # digests, never numbers
    try:
        tables = pd.read_csv(folder / "tables.csv", dtype=text)
    except OSError:
        return None
    if "block" not in tables or not (tables.block == block).any():
        return None
    cur = pd.read_csv(folder / "curation.csv", dtype=text) if (folder / "curation.csv").is_file() else pd.DataFrame()
    cur = cur[cur.block == block] if "block" in cur else cur.iloc[0:0]

    def records(df):
        return [{k: v for k, v in r.items() if not (isinstance(v, float) and v != v)} for r in df.to_dict("records")]
    return records(tables[tables.block == block]), records(cur)
