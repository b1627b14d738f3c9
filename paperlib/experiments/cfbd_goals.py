"""CFBD's detector against the goals this reproduction set it (issue 23), per attack, read from the
results files: the coarse stage's AUROC >= 90 %, the coarse-to-fine TPR >= 90 % at an FPR <= 1 %
(the paper reports 98-100 %), and the model retrained on the kept pairs at no more than the clean
base's trigger ASR + 2 points, each goal counted over the seeds where it is met.  The goals are
asked only of attacks whose victim implants (top-1 ASR at least ``IMPLANTS_BY`` points above the
clean base's on the same trigger): a detector cannot be judged on a backdoor that is not there.
(The claims of ``results/cfbd/claims.csv`` leave out victims under an ASR of 50 %,
:data:`paperlib.claims.VICTIM_FLOOR`; this table asks its goals of SSBA's and LC's victims too.)

``goals_table(p)`` is one row per attack (``results/cfbd/goals_<scale>.csv`` when the notebook is
published); ``python -m paperlib.readme`` writes it into ``docs/deviations-cfbd.md`` from the
committed rows.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

COARSE_AUROC = 90.0     # coarse-stage AUROC goal (%)
FINE_TPR, FINE_FPR = 90.0, 1.0   # coarse-to-fine TPR goal (%) at an FPR no higher than this (%)
ASR_MARGIN = 2.0        # retrained ASR goal: the clean base's trigger ASR + this many points
IMPLANTS_BY = 20.0      # a victim implants when its top-1 ASR exceeds the clean base's by this many points

COLUMNS = ("scale", "attack", "seeds", "victim_asr", "base_asr", "implants", "coarse_auroc", "coarse_auroc_std",
           "coarse_goal", "fine_tpr", "fine_tpr_std", "fine_fpr", "fine_goal", "asr_coarse", "asr_fine",
           "asr_fine_std", "asr_goal")


def _by_seed(df: pd.DataFrame, col: str, **match) -> pd.Series:
    for k, v in match.items():
        df = df[df[k] == v]
    return df.groupby("seed")[col].mean() if len(df) else pd.Series(dtype=float)


def _met(values: pd.Series, ok) -> str:
    """``k/n``: the seeds at which ``ok`` holds, of those with a value."""
    values = values.dropna()
    return f"{int(sum(bool(ok(s, v)) for s, v in values.items()))}/{len(values)}" if len(values) else ""


def goals_table(p, det: pd.DataFrame | None = None, rows12: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each attack of ``p`` against the goals (module docstring), from the per-seed detection rows
    (``det``, :func:`paperlib.experiments.cfbd_mapping.detection_rows`) and CA / ASR rows
    (``rows12``, :func:`paperlib.experiments.cfbd_tables.ca_asr_rows`: methods ``none`` the victim,
    ``clean`` the clean base, ``cfbd_coarse`` / ``cfbd`` the retrainings); read from the results
    folder when None.  Means and stds over the seeds each attack has; a goal's column says at how
    many of them it is met (empty where the victim does not implant, ``implants`` False, or where
    its or the clean base's ASR is missing, ``implants`` None, or nothing was measured)."""
    from paperlib.experiments.cfbd_mapping import detection_rows
    from paperlib.experiments.cfbd_tables import ca_asr_rows
    det = detection_rows(p) if det is None else det
    rows12 = ca_asr_rows(p) if rows12 is None else rows12
    out = []
    for v in p.victims:
        a = v.attack
        d = det[det.attack == a] if len(det) else det
        r = rows12[rows12.attack == a] if len(rows12) else rows12
        auroc = _by_seed(d, "auroc", stage="coarse") if len(d) else pd.Series(dtype=float)
        tpr = _by_seed(d, "tpr", stage="fine") if len(d) else pd.Series(dtype=float)
        fpr = _by_seed(d, "fpr", stage="fine") if len(d) else pd.Series(dtype=float)
        victim = _by_seed(r, "asr_top1", method="none") if len(r) else pd.Series(dtype=float)
        base = _by_seed(r, "asr_top1", method="clean") if len(r) else pd.Series(dtype=float)
        coarse = _by_seed(r, "asr_top1", method="cfbd_coarse") if len(r) else pd.Series(dtype=float)
        fine = _by_seed(r, "asr_top1", method="cfbd") if len(r) else pd.Series(dtype=float)
        seeds = sorted(set(tpr.index) | set(auroc.index))
        if seeds:   # everything at the seeds the detector was measured at
            victim, base, coarse, fine = (s[s.index.isin(seeds)] for s in (victim, base, coarse, fine))
        base_mean = float(base.mean()) if len(base.dropna()) else np.nan
        # None where the victim's or the clean base's ASR is missing: not known, so no goal asked
        implants = (None if not len(victim.dropna()) or not np.isfinite(base_mean)
                    else bool(float(victim.mean()) >= base_mean + IMPLANTS_BY))

        def base_at(seed):   # the clean base's trigger ASR at that seed's trigger draw, else its mean
            return float(base[seed]) if seed in base.index and pd.notna(base[seed]) else base_mean

        both = pd.concat([tpr.rename("tpr"), fpr.rename("fpr")], axis=1).dropna()
        out.append({
            "scale": p.scale, "attack": a, "seeds": " ".join(str(int(s)) for s in seeds),
            "victim_asr": victim.mean(), "base_asr": base_mean, "implants": implants,
            "coarse_auroc": auroc.mean(), "coarse_auroc_std": auroc.std(),
            "coarse_goal": _met(auroc, lambda s, x: x >= COARSE_AUROC) if implants else "",
            "fine_tpr": tpr.mean(), "fine_tpr_std": tpr.std(), "fine_fpr": fpr.mean(),
            "fine_goal": (f"{int(((both.tpr >= FINE_TPR) & (both.fpr <= FINE_FPR)).sum())}/{len(both)}"
                          if implants and len(both) else ""),
            "asr_coarse": coarse.mean(), "asr_fine": fine.mean(), "asr_fine_std": fine.std(),
            "asr_goal": _met(fine, lambda s, x: x <= base_at(s) + ASR_MARGIN) if implants else "",
        })
    return pd.DataFrame(out, columns=list(COLUMNS))


def markdown(t: pd.DataFrame) -> str:
    """The goals table as the notebook and docs show it (means over seeds, goals as k/n seeds)."""
    def f(x, nd=1):
        return "" if pd.isna(x) else f"{x:.{nd}f}"

    def pm(mean, std):   # no "± std" for one seed
        return f(mean) + (f" ± {f(std)}" if pd.notna(std) else "")

    def implant(flag):
        return {True: "", False: " (does not implant)"}.get(flag, " (victim or base ASR missing)")
    lines = [f"| attack | seeds | victim ASR / clean base's | coarse AUROC (>= {COARSE_AUROC:g}) | "
             f"fine TPR / FPR (>= {FINE_TPR:g} at <= {FINE_FPR:g}) | ASR retrained coarse / fine (<= base + {ASR_MARGIN:g}) |",
             "|---|---|---|---|---|---|"]
    for r in t.itertuples(index=False):
        def goal(g):
            return f" [{g}]" if g else ""
        lines.append(f"| {r.attack} | {r.seeds} | {f(r.victim_asr)} / {f(r.base_asr, 2)}{implant(r.implants)} | "
                     f"{pm(r.coarse_auroc, r.coarse_auroc_std)}{goal(r.coarse_goal)} | "
                     f"{pm(r.fine_tpr, r.fine_tpr_std)} / {f(r.fine_fpr, 2)}{goal(r.fine_goal)} | "
                     f"{f(r.asr_coarse, 2)} / {f(r.asr_fine, 2)}{goal(r.asr_goal)} |")
    return "\n".join(lines)


__all__ = ["COLUMNS", "goals_table", "markdown"]
