"""One line per victim recipe and attack: its seeds summarised beside the papers' NoDefense band.

The attack suite writes a row per (attack, seed) to ``results/attacks/victims.csv``; this condenses
the rows of one run into ``results/attacks/victims_summary.csv`` (and ``.md``): how many pairs were
poisoned of how many, top-1 ASR and clean top-1 as mean and std over the seeds, the clean base's
numbers beside them (its clean top-1, and the trigger applied to it: ``base_asr_top1``), the share of
clean test images the victim sends to the target, and the lowest and highest NoDefense top-1 ASR that
the four papers print for the attack (victims poisoned by fine-tuning).  Rows of other runs (other
recipes, other bases) are kept: the key is the whole recipe.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

RECIPE = ("attack", "threat_model", "scale", "base_model", "attack_params", "poison_count", "poison_caption",
          "finetune_scenes", "finetune_epochs", "finetune_lr")
SUMMARY_COLUMNS = RECIPE + (
    "poison_rate", "seeds", "n_seeds", "asr_top1_mean", "asr_top1_std", "ca_top1_mean", "ca_top1_std",
    "base_ca_top1", "ca_drop_mean", "base_asr_top1", "clean_asr_top1_mean", "papers_asr_low", "papers_asr_high",
    "papers_sources")


def of_recipe(df: pd.DataFrame, v) -> pd.Series:
    """Which rows of ``df`` (columns as in victims.csv or matrix_summary.csv) were made with victim entry
    ``v``'s recipe: its attack and trigger settings, poison count and captions, fine-tuning set, passes
    and lr (fine-tuning victims only; a file without ``threat_model``, like calibration.csv, holds no other)."""
    import json
    same_trigger = df.attack_params.map(lambda t: isinstance(t, str) and json.loads(t) == v.attack_params)
    finetune = df.threat_model == "finetune" if "threat_model" in df else True
    return ((df.attack == v.attack) & finetune & same_trigger.astype(bool)
            & (df.poison_count == v.poison.poison_count) & (df.poison_caption == v.poison.caption)
            & (df.finetune_scenes == v.finetune_scenes) & (df.finetune_epochs == v.finetune.epochs)
            & np.isclose(df.finetune_lr.astype(float), v.finetune.lr, rtol=1e-6, atol=0.0))


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """The summary lines of victim ``rows`` (columns as in victims.csv), one per recipe."""
    from paperlib.experiments.regime import papers_band
    if rows.empty or any(c not in rows for c in RECIPE):   # e.g. a run of pre-training victims only
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    rows = rows[rows.threat_model == "finetune"]
    out = []
    for key, g in rows.groupby(list(RECIPE), dropna=False, sort=False):
        rec = dict(zip(RECIPE, key))
        try:
            low, high, sources = papers_band(rec["attack"])
        except KeyError:
            low, high, sources = np.nan, np.nan, []
        n = len(g)
        std = (lambda s: float(s.std(ddof=1)) if n > 1 else np.nan)
        out.append({**rec, "poison_rate": float(g.poison_rate.iloc[0]),
                    "seeds": " ".join(str(int(s)) for s in sorted(g.seed)), "n_seeds": n,
                    "asr_top1_mean": g.asr_top1.mean(), "asr_top1_std": std(g.asr_top1),
                    "ca_top1_mean": g.ca_top1.mean(), "ca_top1_std": std(g.ca_top1),
                    "base_ca_top1": float(g.base_ca_top1.iloc[0]),
                    "ca_drop_mean": float(g.base_ca_top1.iloc[0] - g.ca_top1.mean()),
                    "base_asr_top1": float(g.base_asr_top1.iloc[0]),
                    "clean_asr_top1_mean": g.clean_asr_top1.mean() if "clean_asr_top1" in g else np.nan,
                    "papers_asr_low": low, "papers_asr_high": high, "papers_sources": "; ".join(sources)})
    return pd.DataFrame(out, columns=list(SUMMARY_COLUMNS))


def write(rows: list[dict] | pd.DataFrame, results: str | Path, every: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """Upsert the summary of a run's recipes into ``results/attacks/victims_summary.csv`` and rewrite
    its Markdown view; returns the whole file (None when the run made no fine-tuning victim).  A
    recipe's line counts every seed of it in ``every`` (the whole victims file), not only the seeds
    this run made, so a run of one more seed does not shrink the line to that seed."""
    from paperlib.result_rows import _key_strings
    from paperlib.results import to_markdown, upsert_csv
    rows = pd.DataFrame(rows)
    if rows.empty or any(c not in rows for c in RECIPE):
        return None
    if every is not None and len(every) and all(c in every for c in RECIPE):
        every = every[_key_strings(every, RECIPE).isin(set(_key_strings(rows, RECIPE)))]
        rows = every if len(every) else rows
    summary = summarise(rows)
    if summary.empty:
        return None
    path = Path(results) / "attacks" / "victims_summary.csv"
    df = upsert_csv(path, summary.to_dict("records"), RECIPE, SUMMARY_COLUMNS)
    view = df[["attack", "attack_params", "scale", "base_model", "poison_count", "finetune_scenes", "poison_rate",
               "poison_caption", "finetune_epochs", "finetune_lr", "seeds", "asr_top1_mean", "asr_top1_std", "ca_top1_mean", "ca_top1_std", "base_ca_top1",
               "base_asr_top1", "clean_asr_top1_mean", "papers_asr_low", "papers_asr_high"]]
    to_markdown(view, path.with_suffix(".md"))
    return df


__all__ = ["RECIPE", "SUMMARY_COLUMNS", "of_recipe", "summarise", "write"]
