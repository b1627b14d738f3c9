"""CFBD's Tables 1, 2, 3, 4 and 5 laid out as the paper prints them, ours beside the paper's
numbers (``results/papers``): Tables 1-2 (top-1 CA and ASR per attack and method) and Table 4
(detection AUROC) assembled from the results files (``results/attacks/victims.csv``,
``results/defences/matrix.csv``, ``results/detection/cfbd.csv``), Tables 3 and 5 from the rows of
:func:`paperlib.experiments.cfbd.rate_sweep` and :func:`paperlib.experiments.cfbd_screened.fault_tolerance`;
means, stds and seed counts over the seeds of the parameters (``CFBDParams``, annotations only).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.experiments.cfbd_mapping import detection_rows
from paperlib.experiments.cfbd_screened import at_seeds, mean_spread, seed_mask
from paperlib.experiments.common import victim_config
from paperlib.experiments.detection import cfbd_file, rows_of_these_rules

PAPER = "cfbd"
# ours -> the paper's method ids (papers/cfbd.csv)
METHODS = {"clean": "clean", "none": "none", "roclip": "roclip", "cleanclip": "cleanclip",
           "cfbd_coarse": "cfbd", "cfbd": "cfbd"}


def ca_asr_rows(p: CFBDParams) -> pd.DataFrame:
    """The per-seed rows behind Tables 1-2 (attack, method, seed, ca_top1, asr_top1), at the seeds
    of ``p`` only: the matrix file also holds other seeds (e.g. GPU seeds 1-2), and a method
    averaged over seeds the victim row does not have would not be comparable with it."""
    from paperlib.experiments.common import clean_base_unbuilt, victim_model_name
    res = Path(p.results_dir)
    attacks = [v.attack for v in p.victims]
    rows = []

    # the victims these parameters make (cache keys): the files also hold rows of other victims
    # (other trigger settings, poison counts or bases), which are not this table's
    base = clean_base_unbuilt(p)
    victims = {victim_model_name(p, base, victim_config(p, a), s) for a in attacks for s in p.seeds_for(a)}

    def read(path: Path) -> pd.DataFrame:
        df = pd.read_csv(path) if path.is_file() else pd.DataFrame()
        if len(df) and "victim_model" in df.columns:
            df = df[df.victim_model.astype(str).isin(victims)]
        return df[seed_mask(df, p)] if len(df) else df
    vic = read(res / "attacks" / "victims.csv")
    mat = read(res / "defences" / "matrix.csv")
    det = read(res / "detection" / cfbd_file(p))
    det = rows_of_these_rules(det, p) if len(det) else det
    for a in attacks:
        v = victim_config(p, a)
        victim_seeds = set()
        if len(vic):
            s = vic[(vic.attack == a) & (vic.scale == p.scale) & (vic.threat_model == "finetune")
                    & (vic.poison_count == v.poison.poison_count)]
            for _, r in s.iterrows():
                victim_seeds.add(int(r.seed))
                rows.append({"attack": a, "method": "none", "seed": r.seed, "ca_top1": r.ca_top1, "asr_top1": r.asr_top1})
                if "base_ca_top1" in s:
                    rows.append({"attack": a, "method": "clean", "seed": r.seed, "ca_top1": r.base_ca_top1,
                                 "asr_top1": r.get("base_asr_top1", np.nan)})
        if len(mat):
            # the attack suite trains seed 0's victims; the matrix's `none` rows hold every seed's.
            # They carry no poison count: they are the same victims only while the defence matrix's
            # parameters use the attack suite's victim settings (as the embedded files do).
            s = mat[(mat.attack == a) & (mat.scale == p.scale) & (mat.defence == "none")
                    & ~mat.seed.isin(sorted(victim_seeds))]
            rows += [{"attack": a, "method": "none", "seed": r.seed, "ca_top1": r.ca_top1, "asr_top1": r.asr_top1}
                     for _, r in s.iterrows()]
            s = mat[(mat.attack == a) & (mat.scale == p.scale) & mat.defence.isin(["roclip", "cleanclip"])]
            s = s[_of_matrix_settings(s, p, a)] if len(s) else s
            rows += [{"attack": a, "method": r.defence, "seed": r.seed, "ca_top1": r.ca_top1, "asr_top1": r.asr_top1}
                     for _, r in s.iterrows()]
        if len(det):
            s = det[(det.attack == a) & (det.scale == p.scale) & (det.poison_count == v.poison.poison_count)]
            rows += [{"attack": a, "method": "cfbd" if r.stage == "fine" else "cfbd_coarse", "seed": r.seed,
                      "ca_top1": r.ca_top1, "asr_top1": r.asr_top1} for _, r in s.iterrows() if pd.notna(r.ca_top1)]
    return pd.DataFrame(rows, columns=["attack", "method", "seed", "ca_top1", "asr_top1"])


def _of_matrix_settings(rows: pd.DataFrame, p: CFBDParams, attack: str) -> pd.Series:
    """Which matrix ``rows`` (one attack's) were made with the settings and lr that
    ``p.matrix_params`` gives their defence (all of them when it names no file)."""
    if p.matrix_params is None:
        return pd.Series(True, index=rows.index)
    from paperlib.assets import repo_root
    from paperlib.experiments import defences
    from paperlib.experiments.matrix_summary import of_file_settings
    path = Path(p.matrix_params)
    return of_file_settings(rows.assign(attack=attack), defences.load(path if path.is_absolute() else repo_root() / path))


def tables_ca_asr(p: CFBDParams, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tables 1-2: top-1 CA and ASR per attack and method (tidy, ours beside the paper's): the
    mean, std and count over seeds of :func:`ca_asr_rows` (or of ``rows``)."""
    from paperlib.papers import lookup
    rows = ca_asr_rows(p) if rows is None else rows
    if not len(rows):
        return pd.DataFrame()
    t = rows.groupby(["attack", "method"], sort=False)[["ca_top1", "asr_top1"]].agg(["mean", "std", "count"])
    t.columns = [f"{c}_{s}" for c, s in t.columns]
    t = t.reset_index()
    ref = lookup(PAPER, "Table 1")
    ref2 = lookup(PAPER, "Table 2")

    def paper(refdf, a, m):
        theirs = METHODS.get(m)
        sel = refdf[(refdf.attack == a) & (refdf.defence == theirs)]
        # the paper's 3,000 poisoned pairs; the label-consistent column is at its own 0.05% rate
        at_3000 = sel[sel.setting.str.contains("n_poison=3000")]
        sel = at_3000 if len(at_3000) else sel
        if theirs == "cfbd":
            stage = "stage=coarse;" if m == "cfbd_coarse" else "stage=coarse_to_fine"
            sel = sel[sel.setting.str.contains(stage, regex=False)]
        return float(sel["value"].iloc[0]) if len(sel) else np.nan
    t["ca_top1_paper"] = [paper(ref, r.attack, r.method) for r in t.itertuples()]
    t["asr_top1_paper"] = [paper(ref2, r.attack, r.method) for r in t.itertuples()]
    t.insert(0, "scale", p.scale)
    return t


def table_4(p: CFBDParams) -> pd.DataFrame:
    """Table 4: AUROC of coarse-to-fine detection per attack (ours mean over seeds) beside the paper."""
    from paperlib.papers import lookup
    det = detection_rows(p)
    if not len(det):
        return pd.DataFrame()
    t = mean_spread(det, ["attack", "stage"], ["tpr", "fpr", "auroc", "auprc"])
    ref = lookup(PAPER, "Table 4")
    # the paper prints AUROC in [0, 1]; the project's metrics are percentages
    t["auroc_paper"] = [100 * float(ref[ref.attack == a]["value"].iloc[0]) if s == "fine" and (ref.attack == a).any()
                        else np.nan for a, s in zip(t.attack, t.stage)]
    t.insert(0, "scale", p.scale)
    return t


def table_3_wide(rates: pd.DataFrame, p: CFBDParams) -> pd.DataFrame:
    """Table 3 laid out as the paper: TPR per attack x method x poison rate, ours and the paper's."""
    from paperlib.papers import lookup
    r = mean_spread(at_seeds(rates, p), ["attack", "method", "poison_count", "poison_rate"], ["tpr"])
    ref = lookup(PAPER, "Table 3")
    # the paper's columns are poison rates (0.3%..0.6%); ours match where the rate is the same
    r["paper_rate"] = [f"{rate:g}%" for rate in r.poison_rate.round(2)]
    r["tpr_paper"] = [float(ref[(ref.attack == a) & (ref.defence == m) & ref.setting.str.endswith(f"={pr}")]["value"].iloc[0])
                      if isinstance(pr, str) and len(ref[(ref.attack == a) & (ref.defence == m) & ref.setting.str.endswith(f"={pr}")])
                      else np.nan for a, m, pr in zip(r.attack, r.method, r.paper_rate)]
    r.insert(0, "scale", p.scale)
    return r


def table_5_wide(fault: pd.DataFrame, p: CFBDParams) -> pd.DataFrame:
    from paperlib.papers import lookup
    # fault ratio 0 (a seed set of poisoned pairs only) is our row; the paper starts at 20%
    t = mean_spread(at_seeds(fault, p), ["attack", "q", "fault_ratio"], ["auroc"])
    ref = lookup(PAPER, "Table 5")

    def paper(a, q, ratio):
        sel = ref[(ref.attack == a) & (ref.setting == f"q={q};fault_ratio={int(round(ratio))}%")]
        return 100 * float(sel["value"].iloc[0]) if len(sel) else np.nan   # paper: [0, 1]; ours: percent
    t["auroc_paper"] = [paper(a, q, r) for a, q, r in zip(t.attack, t.q, t.fault_ratio)]
    t.insert(0, "scale", p.scale)
    return t


__all__ = ["METHODS", "ca_asr_rows", "table_3_wide", "table_4", "table_5_wide", "tables_ca_asr"]
