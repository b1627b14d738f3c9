"""Why ABL isolates no poisoned pair here: where the poisoned pairs' losses lie (issue 23).

ABL (Li et al. 2021) isolates the ``isolation_ratio`` of training examples with the lowest loss
after a short training under local gradient ascent (LGA), because a model trained *from scratch*
learns a backdoor's examples first: one trigger, one label.  CFBD's Table 3 adapts it to CLIP
and finds 7.67-54.66 % of the poisoned pairs; ours isolates none in every cell
(``results/detection/abl.csv``).  Our isolation training starts from the clean pre-trained base,
as CFBD's adaptation fine-tunes a pre-trained CLIP, and a pre-trained model already fits the
benign pairs, while a poisoned pair (a trigger on some scene, captioned as the target) is the
one it fits worst.  This module measures that on the very pairs and batches ABL ranks
(:func:`paperlib.detect.abl.per_pair_losses`, the seed's batch order), under two models:

* ``clean_base``: the shipped base before any isolation training;
* ``abl_isolation``: ABL's isolation model (cached, else trained: :func:`isolation_model`) after
  ``abl.epochs`` of LGA (the CFBD file's 1; BackdoorBench tunes for 20: ``abl.epochs=5`` is the
  sensitivity run), which keys the rows as ``abl_epochs``.

and writes, per model and cell (attack, poison count, seed), the median loss of the poisoned and
of the benign pairs, ``low_loss_auroc`` (AUROC of the negated loss as a poisoned-pair score, %:
100 means every poisoned pair has a lower loss than every benign one, what ABL needs; 50 chance;
0 the reverse), the poisoned pairs' median loss percentile among all pairs (0 = lowest) and how
many of them the lowest ``isolation_ratio`` holds (ABL's TPR for the isolation model).

``python -m paperlib.experiments.abl_losses params/cfbd/embedded.yaml [rate_attacks=[badnet]]
[rate_counts=[300]] [results_dir=results]``: Table 3's attacks x counts at ``rate_abl_seeds``,
into ``<results_dir>/detection/abl_losses.csv``.  Two forward passes over 50,000 pairs a cell.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

FILE = "abl_losses.csv"
KEY = ("attack", "poison_count", "scale", "seed", "abl_epochs", "model_role", "model")
COLUMNS = (*KEY, "n_pairs", "n_poisoned", "loss_poisoned_median", "loss_benign_median", "low_loss_auroc",
           "poisoned_pct_median", "isolation_ratio", "poisoned_isolated", "tpr")


def loss_summary(losses: np.ndarray, truth: np.ndarray, isolation_ratio: float) -> dict:
    """Where the poisoned pairs' losses lie among all pairs' (see the module docstring)."""
    from scipy.stats import rankdata

    from paperlib.detect.abl import isolate
    from paperlib.detect.metrics import auroc_auprc
    losses, truth = np.asarray(losses, float), np.asarray(truth, bool)
    if losses.shape != truth.shape:
        raise ValueError(f"losses have shape {losses.shape}, truth {truth.shape}")
    pct = 100.0 * (rankdata(losses) - 1) / max(1, len(losses) - 1)   # 0 = lowest loss
    flagged = isolate(losses, isolation_ratio)
    caught = int((flagged & truth).sum())
    return {"n_pairs": int(len(losses)), "n_poisoned": int(truth.sum()),
            "loss_poisoned_median": float(np.median(losses[truth])) if truth.any() else float("nan"),
            "loss_benign_median": float(np.median(losses[~truth])) if (~truth).any() else float("nan"),
            "low_loss_auroc": auroc_auprc(truth, -losses)[0],
            "poisoned_pct_median": float(np.median(pct[truth])) if truth.any() else float("nan"),
            "isolation_ratio": isolation_ratio, "poisoned_isolated": caught,
            "tpr": 100.0 * caught / truth.sum() if truth.any() else float("nan")}


def cells(p) -> list[tuple[str, int, int]]:
    """(attack, poison count, seed): Table 3's attacks and counts at the seeds it runs ABL."""
    seeds = [s for s in p.seeds if p.rate_abl_seeds is None or s in p.rate_abl_seeds]
    return [(a, c, s) for a in p.rate_attacks for c in p.rate_counts for s in seeds]


def run(p, log=print) -> pd.DataFrame:
    from dataclasses import replace

    from paperlib import pipeline as pl
    from paperlib.data.splits import split_params
    from paperlib.detect.abl import per_pair_losses
    from paperlib.experiments.abl_isolation import isolation_model
    from paperlib.experiments.common import clean_base, victim_config
    from paperlib.experiments.detection import poisoned_pair_set
    from paperlib.results import upsert_csv
    device = pl.resolve_device(p.device)
    base = clean_base(p)
    split = pl.get_split("cc3m_analog", p.data)
    tokens = pl.split_tokens(split, split_params("cc3m_analog", p.data), base.name, pl.ArtifactCache())
    clean = base.load(device)
    todo, rows, t0 = cells(p), [], time.time()
    for i, (attack, count, seed) in enumerate(todo):
        v = victim_config(p, attack)
        v = replace(v, poison=replace(v.poison, poison_count=count))
        ps, truth = poisoned_pair_set(p, base, split, tokens, v, seed, count, device)
        iso = isolation_model(p, base, ps.pairs, v, seed, device)
        for role, name, model in (("clean_base", base.path.name, clean), ("abl_isolation", iso.path.name,
                                                                            iso.load(device))):
            losses = per_pair_losses(model, ps.pairs, p.abl.batch_size, device, seed)
            rows.append({"attack": attack, "poison_count": count, "scale": p.scale, "seed": seed,
                         "abl_epochs": p.abl.epochs, "model_role": role, "model": name,
                         **loss_summary(losses, truth, p.abl.isolation_ratio)})
        done = time.time() - t0
        b, a = rows[-2], rows[-1]
        log(f"[{i + 1}/{len(todo)}, {done / 60:.1f} min, ~{done / (i + 1) * (len(todo) - i - 1) / 60:.0f} min left] "
            f"{attack} {count} seed {seed}: low-loss AUROC base {b['low_loss_auroc']:.1f}, "
            f"isolation {a['low_loss_auroc']:.1f}; ABL TPR {a['tpr']:.1f}")
    if not rows:
        return pd.DataFrame(columns=list(COLUMNS))
    every = upsert_csv(Path(p.results_dir) / "detection" / FILE, rows, KEY, COLUMNS)
    ours = {(r["attack"], r["poison_count"], r["seed"], float(r["abl_epochs"])) for r in rows}
    mine = np.array([t in ours for t in zip(every.attack, every.poison_count, every.seed,
                                             every.abl_epochs.astype(float))], bool)
    return every[mine & (every.scale == p.scale).to_numpy()].reset_index(drop=True)


def summary(p) -> pd.DataFrame:
    """The committed (or this run's) rows of ``<results_dir>/detection/abl_losses.csv`` at ``p.scale``
    as shown: per attack, poison count, isolation epochs and model, ``mean ± std`` over the seeds there of the
    low-loss AUROC, the poisoned pairs' median loss percentile and ABL's TPR, with the seeds; empty
    when nothing was measured (``python -m paperlib.experiments.abl_losses``)."""
    path = Path(p.results_dir) / "detection" / FILE
    if not path.is_file():
        return pd.DataFrame()
    r = pd.read_csv(path)
    r = r[r.scale == p.scale]
    if r.empty:
        return pd.DataFrame()

    from paperlib.compare import mean_std_text

    def pm(x: pd.Series) -> str:
        return mean_std_text(x.mean(), x.std(), len(x))
    g = r.groupby(["attack", "poison_count", "abl_epochs", "model_role"], sort=True)
    out = g.agg(low_loss_auroc=("low_loss_auroc", pm), poisoned_pct_median=("poisoned_pct_median", pm),
                abl_tpr=("tpr", pm), seeds=("seed", lambda s: " ".join(str(int(x)) for x in sorted(s))))
    return out.reset_index()


if __name__ == "__main__":
    from paperlib.experiments import cfbd
    from paperlib.experiments.common import cli
    raise SystemExit(cli(cfbd.load, run, description=__doc__))

__all__ = ["COLUMNS", "KEY", "cells", "loss_summary", "run", "summary"]
