"""The defence matrix condensed: per victim recipe, attack and defence, its seeds beside the papers' band.

    python -m paperlib.experiments.matrix_summary                  # scratch results
    python -m paperlib.experiments.matrix_summary results_dir=results

The defence matrix (``results/defences/matrix.csv``) has a row per attack x defence x seed, keyed by
the victim's model; the attack suite's ``results/attacks/victims.csv`` says which recipe made each
victim model (trigger, poison count and captions, fine-tuning set, passes, lr).  Joined on the victim
model, the rows of one recipe and one defence budget (its lr and the pairs it fine-tuned on) are summarised over seeds into
``results/defences/matrix_summary.csv`` (and ``.md``):

* top-1 ASR and clean top-1, mean and std over the seeds;
* what the defence removed, **paired by seed** against the same victim's undefended row: the mean of
  ``asr(none) - asr(defence)`` and of ``ca(none) - ca(defence)`` with their standard errors of the mean
  (the two-SEM rule of ``docs/verdicts.md`` reads them);
* the lowest and highest top-1 ASR the four papers print for that attack and defence on victims
  poisoned by fine-tuning (``paperlib/papers/*.csv``), and which tables.

Matrix rows whose victim is not in the victims file (older runs) are left out: their recipe is unknown.
The defence experiment rewrites the summary after every run; this command rebuilds it from the files.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.experiments.victims_summary import RECIPE

KEY = RECIPE + ("defence", "defence_lr", "defence_samples")
COLUMNS = KEY + (
    "seeds", "n_seeds", "asr_top1_mean", "asr_top1_std", "ca_top1_mean", "ca_top1_std",
    "asr_removed_mean", "asr_removed_sem", "ca_cost_mean", "ca_cost_sem", "n_paired",
    "papers_asr_low", "papers_asr_high", "papers_sources", "devices")


def _sem(x: pd.Series) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else np.nan


def _std(x: pd.Series) -> float:
    return float(x.std(ddof=1)) if len(x) > 1 else np.nan


def joined(matrix: pd.DataFrame, victims: pd.DataFrame) -> pd.DataFrame:
    """The matrix rows whose victim model is in ``victims`` (fine-tuning victims only), with the
    victim's recipe columns beside them and the defence's budget, ``defence_lr`` and
    ``defence_samples`` (pairs seen in fine-tuning; NaN on the undefended rows)."""
    if matrix.empty or victims.empty or "victim_model" not in matrix or "victim_model" not in victims \
            or any(c not in victims for c in RECIPE):
        return pd.DataFrame(columns=list(matrix.columns) + [c for c in RECIPE if c not in matrix]
                            + ["defence_lr", "defence_samples"])
    v = victims[victims.threat_model == "finetune"]
    recipe = [c for c in RECIPE if c not in ("attack", "scale")]
    v = v.drop_duplicates("victim_model", keep="last")[["victim_model", *recipe]]
    out = matrix.merge(v, on="victim_model", how="inner")
    undefended = out.defence == "none"
    out["defence_lr"] = np.where(undefended, np.nan, out["lr"].astype(float))
    out["defence_samples"] = np.where(undefended, np.nan, out["samples"].astype(float))
    return out


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per recipe x defence x budget (lr, samples) of :func:`joined` rows; the undefended line
    per recipe has the budget NaN and nothing removed."""
    from paperlib.experiments.regime import papers_band
    if rows.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    none = rows[rows.defence == "none"].drop_duplicates("victim_model", keep="last").set_index("victim_model")
    out = []
    for key, g in rows.groupby(list(KEY), dropna=False, sort=False):
        rec = dict(zip(KEY, key))
        g = g.drop_duplicates("seed", keep="last").sort_values("seed")
        n = len(g)
        line = {**rec, "seeds": " ".join(str(int(s)) for s in g.seed), "n_seeds": n,
                "asr_top1_mean": g.asr_top1.mean(), "asr_top1_std": _std(g.asr_top1),
                "ca_top1_mean": g.ca_top1.mean(), "ca_top1_std": _std(g.ca_top1),
                "devices": "; ".join(sorted(set(g["device"].dropna().astype(str)))) if "device" in g else ""}
        if rec["defence"] != "none":
            paired = g[g.victim_model.isin(none.index)]
            removed = none.loc[paired.victim_model, "asr_top1"].to_numpy() - paired.asr_top1.to_numpy()
            cost = none.loc[paired.victim_model, "ca_top1"].to_numpy() - paired.ca_top1.to_numpy()
            line.update({"asr_removed_mean": float(np.mean(removed)) if len(removed) else np.nan,
                         "asr_removed_sem": _sem(pd.Series(removed)),
                         "ca_cost_mean": float(np.mean(cost)) if len(cost) else np.nan,
                         "ca_cost_sem": _sem(pd.Series(cost)), "n_paired": len(paired)})
        try:
            low, high, sources = papers_band(rec["attack"], defence=rec["defence"])
        except KeyError:
            low, high, sources = np.nan, np.nan, []
        line.update({"papers_asr_low": low, "papers_asr_high": high, "papers_sources": "; ".join(sources)})
        out.append(line)
    return pd.DataFrame(out, columns=list(COLUMNS))


def build(results: str | Path) -> pd.DataFrame:
    """The summary of every recipe found in ``results``' matrix and victims files (empty when either
    is missing)."""
    results = Path(results)
    m, v = results / "defences" / "matrix.csv", results / "attacks" / "victims.csv"
    if not m.is_file() or not v.is_file():
        return pd.DataFrame(columns=list(COLUMNS))
    return summarise(joined(pd.read_csv(m), pd.read_csv(v)))


def write(results: str | Path) -> pd.DataFrame:
    """Rewrite ``results/defences/matrix_summary.csv`` and its Markdown view from the files (a summary
    is derived data: it is made whole each time, never merged)."""
    from paperlib.results import to_markdown, write_csv_atomic
    df = build(results)
    path = Path(results) / "defences" / "matrix_summary.csv"
    if df.empty:
        return df
    write_csv_atomic(df, path)
    view = df[["attack", "base_model", "attack_params", "poison_count", "finetune_lr", "defence", "defence_lr", "defence_samples", "seeds",
               "asr_top1_mean", "asr_top1_std", "ca_top1_mean", "ca_top1_std", "asr_removed_mean",
               "asr_removed_sem", "ca_cost_mean", "papers_asr_low", "papers_asr_high"]]
    to_markdown(view, path.with_suffix(".md"))
    return df


def main(argv=None) -> int:
    from paperlib.results import default_results_dir, prepare_results_dir
    args = list(sys.argv[1:] if argv is None else argv)
    results = default_results_dir()
    for a in args:
        if not a.startswith("results_dir="):
            raise SystemExit(f"python -m paperlib.experiments.matrix_summary: unknown argument {a!r}; "
                             "valid: results_dir=<folder> (default: the scratch results)")
        results = a.split("=", 1)[1]
    folder = prepare_results_dir(results)
    df = write(folder)
    print(f"{folder / 'defences' / 'matrix_summary.csv'}: {len(df)} lines"
          if len(df) else f"no matrix rows with a known victim recipe under {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["KEY", "COLUMNS", "joined", "summarise", "build", "write"]
