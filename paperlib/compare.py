"""Our measurements beside the papers' numbers, and claims checked by code.

:func:`beside_paper` turns tidy result rows (one per attack x defence x seed) into one row per
(attack, defence, metric, k) with our mean, spread and seed count next to the value the paper
printed (from :mod:`paperlib.papers`, which names paper, table and row).  A paper's headline
claims are checked seed by seed by :mod:`paperlib.claims` (:class:`Claim`, :func:`claims_table`,
re-exported here; the verdict rule is in that module's docstring and docs/verdicts.md) and written
to ``results/<paper>/claims.csv`` (scale, claim, paper_value, ours, spread, n_seeds, verdict);
:func:`collect_claims` gathers the four papers' files into ``results/claims.csv``:

    python -m paperlib.compare --collect [--results DIR]     # DIR: scratch/results by default
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from paperlib.claims import CLAIM_COLUMNS, Claim, claims_table, verdict_counts  # noqa: F401  (re-exported)


def seed_summary(rows: pd.DataFrame, keys: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Long format: one row per ``keys`` x metric with mean, std (ddof 1; NaN for one seed), n."""
    long = rows.melt(id_vars=list(keys) + ["seed"], value_vars=list(metrics), var_name="column", value_name="value")
    g = long.groupby(list(keys) + ["column"])["value"]
    out = g.agg(ours_mean="mean", ours_std="std", n_seeds="count").reset_index()
    out["metric"] = out["column"].str.extract(r"^(ca|asr)")[0]
    out["k"] = out["column"].str.extract(r"top(\d+)$")[0].astype(float)
    return out.drop(columns="column")


def beside_paper(rows: pd.DataFrame, paper: str, table: str, defences: dict[str, str],
                 scale: str) -> pd.DataFrame:
    """Our seeds summarised beside ``paper``'s ``table``.

    ``defences`` maps our defence labels (the ``defence`` column of our rows) to the paper's
    defence ids (the ``defence`` column of :mod:`paperlib.papers`), e.g. ``{"abd_uap": "uap"}``.
    A paper value printed without a k (a single accuracy, as ABD prints) is compared with our top-1.
    """
    from paperlib.papers import lookup
    metrics = [c for c in rows.columns if c.startswith(("ca_top", "asr_top"))]
    ours = rows[(rows["scale"] == scale) & rows["defence"].isin(list(defences))]
    summ = seed_summary(ours, ["attack", "defence"], metrics)
    ref = lookup(paper, table, defence=list(set(defences.values())))
    ref = ref.assign(k=ref["k"].fillna(1))
    back = {}
    for ours_id, theirs in defences.items():
        back.setdefault(theirs, []).append(ours_id)
    ref = ref.assign(defence=ref["defence"].map(back)).explode("defence")
    ref = ref[["attack", "defence", "metric", "k", "value"]].rename(columns={"value": "paper"})
    out = summ.merge(ref, on=["attack", "defence", "metric", "k"], how="left")
    out.insert(0, "scale", scale)
    out["paper_source"] = f"{paper} {table}"
    return out.sort_values(["attack", "defence", "metric", "k"]).reset_index(drop=True)


def mean_std_text(mean: float, std: float, n: int) -> str:
    """``mean ± std`` (std over ``n`` seeds; none for one seed or a missing std), one decimal: how
    the tables and the README show a value over seeds."""
    return f"{mean:.1f}" + (f" ± {std:.1f}" if n > 1 and pd.notna(std) else "")


def wide_top1(table: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """Top-1 CA / ASR per attack and defence, ours (mean +- std) beside the paper's."""
    t = table[table["k"] == 1].copy()

    def fmt(r):
        s = f"{r.ours_mean:.1f}"
        if r.n_seeds > 1 and np.isfinite(r.ours_std):
            s += f" ± {r.ours_std:.1f}"
        return s
    t["ours"] = t.apply(fmt, axis=1)
    t["paper"] = t["paper"].map(lambda v: "-" if pd.isna(v) else f"{v:.2f}")
    t["defence"] = pd.Categorical(t["defence"], categories=list(order), ordered=True)
    wide = t.pivot_table(index=["attack", "defence"], columns="metric", values=["ours", "paper"],
                         aggfunc="first", observed=True)
    wide.columns = [f"{m.upper()} top-1 ({who})" for who, m in wide.columns]
    cols = [c for m in ("CA", "ASR") for c in (f"{m} top-1 (ours)", f"{m} top-1 (paper)") if c in wide.columns]
    return wide[cols].reset_index()


def metric(table: pd.DataFrame, attack: str, defence: str, metric_name: str, k: int = 1) -> float:
    """Our mean of one cell of a :func:`beside_paper` table (KeyError if absent)."""
    sel = table[(table.attack == attack) & (table.defence == defence) & (table.metric == metric_name) & (table.k == k)]
    if sel.empty:
        raise KeyError((attack, defence, metric_name, k))
    return float(sel["ours_mean"].iloc[0])


def share_of_pairs(rows: pd.DataFrame, lower: str, higher: str, attacks: Sequence[str], scale: str,
                   column: str = "asr_top1", strict: bool = True) -> float:
    """Per-seed form of a claim "``lower`` gives a smaller ``column`` than ``higher``": the
    percentage of (attack, seed) pairs of tidy matrix ``rows`` where it does (``strict``: <, else
    <=).  Only pairs where both defences have a row count; NaN if there is none.  The papers report
    one run each, so a claim holds per seed only where this is 100."""
    r = rows[(rows["scale"] == scale) & rows["attack"].isin(list(attacks)) & rows["defence"].isin([lower, higher])]
    wide = r.pivot_table(index=["attack", "seed"], columns="defence", values=column, aggfunc="first")
    if lower not in wide or higher not in wide:
        return float("nan")
    both = wide[[lower, higher]].dropna()
    if both.empty:
        return float("nan")
    wins = both[lower] < both[higher] if strict else both[lower] <= both[higher]
    return 100.0 * float(wins.mean())


PAPERS_ORDER: tuple[str, ...] = ("eftclip", "cleanerclip", "abd", "cfbd")
COLLECTED_COLUMNS: tuple[str, ...] = ("paper",) + CLAIM_COLUMNS


def collect_claims(results_dir: str | Path, papers: Sequence[str] = PAPERS_ORDER, log=print) -> pd.DataFrame:
    """The four papers' ``<results_dir>/<paper>/claims.csv`` as one table with a ``paper`` column,
    written to ``<results_dir>/claims.csv`` (paper, scale, claim, paper_value, ours, spread,
    n_seeds, verdict).  Only files with the seed-by-seed verdicts (a ``verdict`` column) enter: a
    file of older code (yes / no ``holds``) is named and left out, so every verdict in the
    collected file follows the two-SEM rule.  Nothing is written when no paper has such a file."""
    from paperlib.results import write_csv_atomic
    root = Path(results_dir)
    frames, skipped = [], []
    for paper in papers:
        f = root / paper / "claims.csv"
        if not f.is_file():
            skipped.append(f"{paper} (no claims.csv)")
            continue
        df = pd.read_csv(f)
        if "verdict" not in df.columns:
            skipped.append(f"{paper} (old yes/no verdicts: run its notebook again)")
            continue
        for col in CLAIM_COLUMNS:
            if col not in df.columns:
                df[col] = "" if col != "n_seeds" else 0
        frames.append(df[list(CLAIM_COLUMNS)].assign(paper=paper))
    if skipped and log:
        log(f"[claims] left out: {', '.join(skipped)}")
    if not frames:
        if log:
            log(f"[claims] no claims.csv with verdicts under {root}: {root / 'claims.csv'} not written")
        return pd.DataFrame(columns=list(COLLECTED_COLUMNS))
    out = pd.concat(frames, ignore_index=True)[list(COLLECTED_COLUMNS)]
    out["n_seeds"] = out["n_seeds"].fillna(0).astype(int)
    write_csv_atomic(out, root / "claims.csv")
    if log:
        counts = verdict_counts(out)
        log(f"[claims] {root / 'claims.csv'}: {len(out)} claims of {out.paper.nunique()} papers, "
            + ", ".join(f"{n} {v}" for v, n in counts.items()))
    return out


def main(argv=None) -> int:
    import argparse

    from paperlib.results import default_results_dir
    ap = argparse.ArgumentParser(prog="python -m paperlib.compare",
                                 description="Gather the papers' claims.csv into <results>/claims.csv.")
    ap.add_argument("--collect", action="store_true", help="write <results>/claims.csv from <results>/<paper>/claims.csv")
    ap.add_argument("--results", default=None,
                    help="results folder (default: scratch/results; 'results' is the committed folder)")
    args = ap.parse_args(argv)
    if not args.collect:
        ap.print_help()
        return 2
    from paperlib.errors import ParamError
    from paperlib.results import prepare_results_dir
    try:   # the committed folder is written only from an unmodified checkout, as every run's results
        folder = prepare_results_dir(args.results or default_results_dir())
    except ParamError as err:
        print(f"python -m paperlib.compare: {err}")
        return 2
    collect_claims(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
