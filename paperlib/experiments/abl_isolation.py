"""ABL's isolation stage (Li et al. 2021, as CFBD's Table 3 adapts it) on one poisoned pair set:
local-gradient-ascent training from the clean base, then the ``isolation_ratio`` of pairs with the
lowest loss is isolated.  The isolation model is keyed by the pairs it trained on (the victim entry
at its poison count and seed), and a row of ``results/detection/abl.csv`` naming that very model
stands in for it where this cache lacks it.
"""
from __future__ import annotations

from dataclasses import asdict

from paperlib.experiments.common import published_row

# annotations only (not imported: detection imports this module): DetectionParams
# (paperlib.experiments.detection), VictimConfig (paperlib.experiments.foundation)

ABL_COLUMNS = ("attack", "poison_count", "scale", "seed", "tpr", "fpr", "isolated", "n_pairs", "model",
               "isolation_ratio")
ABL_KEY = ("attack", "poison_count", "scale", "seed", "model", "isolation_ratio")


def pairs_key(v: VictimConfig, seed: int) -> dict:
    """What determines a victim's poisoned pair set (part of the keys of models trained on it)."""
    from paperlib.attacks import attack_key
    return {"attack": v.attack, "cfg": attack_key(v.attack, v.attack_config()), "seed": seed, "poison": asdict(v.poison),
            "scenes": v.finetune_scenes}


def abl_key(p: DetectionParams, base, v: VictimConfig, seed: int, device) -> dict:
    """The cache key of ABL's isolation model on ``v``'s poisoned pairs at ``seed`` (see :func:`run_abl_on`)."""
    from paperlib import pipeline as pl
    from paperlib.config import replace
    a = p.abl
    cfg = replace(v.finetune, epochs=a.epochs, lr=a.lr, batch_size=a.batch_size)
    return {"role": "abl_isolation", "base": base.key_params, "train": cfg.key(pl.resolve_device(device).type),
            "flooding": a.flooding, "victim_pairs": pairs_key(v, seed)}


def isolation_model(p: DetectionParams, base, pairs, v: VictimConfig, seed: int, device):
    """ABL's isolation model on ``v``'s poisoned ``pairs`` at ``seed``: from the cache, else trained
    (LGA from the clean base, ``p.abl``'s epochs, lr and batch size on the victim's recipe)."""
    from paperlib import pipeline as pl
    from paperlib.config import replace
    from paperlib.detect.abl import LGATerm
    a = p.abl
    key = abl_key(p, base, v, seed, device)
    cache = pl.ArtifactCache()
    if (path := cache.cached("model", key)) is not None:
        return pl.ModelArtifact(base.name, path, key)
    cfg = replace(v.finetune, epochs=a.epochs, lr=a.lr, batch_size=a.batch_size)
    return pl._train_artifact(key, base.name, base, pairs, cfg, device, cache, f"ABL isolation {v.attack}",
                              terms=[(LGATerm(a.flooding), 1.0)])


def run_abl_on(p: DetectionParams, base, ps, v: VictimConfig, attack_cfg, seed: int, truth, device) -> dict:
    """ABL's isolation stage on one poisoned pair set: LGA training from the clean base, then the
    lowest-loss ``isolation_ratio`` of pairs is isolated."""
    from paperlib import pipeline as pl
    from paperlib.detect.abl import isolate, per_pair_losses
    from paperlib.detect.metrics import tpr_fpr
    a = p.abl
    key = abl_key(p, base, v, seed, device)
    if pl.ArtifactCache().cached("model", key) is None:
        published = published_row(p, "detection/abl.csv", key, isolation_ratio=a.isolation_ratio)
        if published is not None:   # isolated elsewhere with the very same model
            return published
    model = isolation_model(p, base, ps.pairs, v, seed, device)
    losses = per_pair_losses(model.load(device), ps.pairs, a.batch_size, device, seed)
    flagged = isolate(losses, a.isolation_ratio)
    tpr, fpr = tpr_fpr(truth, flagged)
    return {"attack": v.attack, "poison_count": v.poison.poison_count, "scale": p.scale, "seed": seed,
            "tpr": tpr, "fpr": fpr, "isolated": int(flagged.sum()), "n_pairs": int(len(truth)),
            "model": model.path.name, "isolation_ratio": a.isolation_ratio}


__all__ = ["ABL_COLUMNS", "ABL_KEY", "abl_key", "isolation_model", "pairs_key", "run_abl_on"]
