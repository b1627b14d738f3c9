"""CFBD's detection rows as its tables read them, and the mapping ablation: the poisoned sets
screened again with another mapping network (Sec. 2.2's LM-loss captioner beside the default
regression MLP) at the first seed, no retraining.  The parameters are
:class:`paperlib.experiments.cfbd.CFBDParams`."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from paperlib.experiments.cfbd_screened import at_seeds
from paperlib.experiments.detection import cfbd_file, rows_of_these_rules


def detection_rows(p) -> pd.DataFrame:
    """The per-seed detection rows behind Table 4 and Fig. 5 (one per attack x stage x seed: TPR,
    FPR, AUROC, AUPRC) that these parameters make: their detector's rules, scale, seeds, victims
    and poison counts (``results/detection/<cfbd file>``; empty when it does not exist)."""
    f = Path(p.results_dir) / "detection" / cfbd_file(p)
    if not f.is_file():
        return pd.DataFrame(columns=["attack", "stage", "seed", "tpr", "fpr", "auroc", "auprc"])
    det = rows_of_these_rules(pd.read_csv(f), p)
    if "victim_model" in det.columns:   # rows of this file's victims (an older recipe's stay out)
        from paperlib.experiments.common import clean_base_unbuilt, victim_model_name
        base = clean_base_unbuilt(p)
        det = det[det.victim_model.astype(str).isin(
            {victim_model_name(p, base, v, s) for v in p.victims for s in p.seeds_for(v.attack)})]
    counts = {v.attack: v.poison.poison_count for v in p.victims}
    det = at_seeds(det, p)
    det = det[det.attack.isin(list(counts))]
    return det[det.apply(lambda r: r.poison_count == counts[r.attack], axis=1)] if len(det) else det


def mapping_ablation(p, log=print) -> pd.DataFrame:
    """Every victim's poisoned set screened with each mapping of ``p.mapping_ablation`` besides
    ``p.mapping`` (the first seed, no retraining, no ABL; rows in ``results/detection/
    cfbd_mapping-<kind>.csv``), then :func:`mapping_ablation_wide` of them beside the default's.
    Only victims without both stages' rows for that mapping are screened: rows already there (a
    retrained row's CA / ASR among them) are never replaced by unretrained ones."""
    from dataclasses import fields

    from paperlib.config import from_dict, to_dict
    from paperlib.experiments import detection
    for kind in p.mapping_ablation:
        if kind == p.mapping.kind:
            continue
        one = _first_seed(p, kind)
        have = detection_rows(one)
        done = {a for a, g in have.groupby("attack") if set(g.stage) >= {"coarse", "fine"}} if len(have) else set()
        missing = [v for v in p.victims if v.attack not in done]
        if missing:
            data = {k: v for k, v in to_dict(one).items() if k in {f.name for f in fields(detection.DetectionParams)}}
            data.update(victims=[to_dict(v) for v in missing], retrain=False, run_abl=False)
            detection.run(from_dict(detection.DetectionParams, data), log)
    return mapping_ablation_wide(p)


def _first_seed(p, kind: str):
    """``p`` with mapping ``kind`` at the first seed of ``seeds`` for every attack."""
    from paperlib.config import replace
    return replace(p, mapping=replace(p.mapping, kind=kind), seeds=tuple(p.seeds[:1]), seeds_by_attack={})


def mapping_ablation_wide(p) -> pd.DataFrame:
    """AUROC / TPR / FPR of the coarse and the coarse-to-fine stage per attack, under ``p.mapping``
    and under each ablation mapping, at the first seed (the seed the ablation runs at)."""
    parts = []
    for kind in dict.fromkeys((p.mapping.kind, *p.mapping_ablation)):
        d = detection_rows(_first_seed(p, kind))
        if len(d):
            parts.append(d.assign(mapping=kind + (" (default)" if kind == p.mapping.kind else "")))
    if not parts:
        return pd.DataFrame()
    d = pd.concat(parts, ignore_index=True)
    return d[["mapping", "attack", "stage", "seed", "auroc", "tpr", "fpr", "n_benign"]].sort_values(
        ["mapping", "attack", "stage"]).reset_index(drop=True)


__all__ = ["detection_rows", "mapping_ablation", "mapping_ablation_wide"]
