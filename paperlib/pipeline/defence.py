"""Defences' plumbing: the defender's clean pairs, defended and retrained models, embeddings of pair sets."""
from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import asdict

import numpy as np
import torch

from paperlib.cache import ArtifactCache
from paperlib.data.splits import DataConfig, RenderedSplit, get_split, split_params
from paperlib.pipeline.core import ModelArtifact, _train_artifact, resolve_device, split_tokens
from paperlib.pipeline.poisoning import finetune_scene_ids
from paperlib.train.loop import TrainConfig

log = logging.getLogger(__name__)


def defence_scene_ids(split: RenderedSplit, n: int, exclude: np.ndarray, seed: int) -> np.ndarray:
    """Clean CC3M-analogue scenes for a defence's fine-tuning, disjoint from ``exclude`` (the
    victim's poisoned fine-tuning set): the defender's own clean data."""
    pool = np.setdiff1d(np.arange(len(split)), exclude)
    if n > len(pool):
        raise ValueError(f"defence clean_scenes={n} exceeds the {len(pool)} scenes outside the victim's set")
    return np.sort(np.random.default_rng([seed, 303]).choice(pool, size=n, replace=False))


def defence_context(victim: ModelArtifact, data: DataConfig, clean_scenes: int, batch_size: int, seed: int,
                    clean_base: ModelArtifact | None = None, device="auto",
                    cache: ArtifactCache | None = None):
    """What a defence of ``victim`` works with: the defender's ``clean_scenes`` clean pairs of the
    CC3M analogue (disjoint from the victim's poisoned set, with caption strings), tokenizer,
    device, class names for the caption parser (a :class:`paperlib.defences.DefenceContext`)."""
    from paperlib.data.vocabulary import build_vocabulary
    from paperlib.defences import DefenceContext
    from paperlib.models import get_tokenizer
    from paperlib.train.pairs import TensorPairs
    cache = cache or ArtifactCache()
    device = resolve_device(device)
    split = get_split("cc3m_analog", data, cache)
    tokens = split_tokens(split, split_params("cc3m_analog", data), victim.name, cache)
    vk = victim.key_params
    exclude = (finetune_scene_ids(split, vk["finetune_scenes"], vk["seed"])
               if vk.get("role") == "poison_finetune" else np.zeros(0, np.int64))
    ids = defence_scene_ids(split, clean_scenes, exclude, seed)
    pairs = TensorPairs(split.images, tokens, rows=ids, texts=split.captions)
    if device.type == "cuda":
        pairs.to_device(device)
    return DefenceContext(model_name=victim.name, tokenizer=get_tokenizer(victim.name), device=device,
                          pairs=pairs, steps_per_epoch=pairs.steps_per_epoch(batch_size), seed=seed,
                          victim=victim, clean_base=clean_base, classnames=tuple(build_vocabulary().names),
                          cache=cache)


def defence_key(victim_key: dict, defence_id: str, defence_cfg, clean_scenes: int, cfg: TrainConfig,
                seed: int, clean_base: ModelArtifact | None, device_type: str) -> dict:
    """The cache key of the model :func:`defend` makes (without a ``subset``), computable
    without the victim's weights."""
    return {"role": "defence", "victim": victim_key, "defence": defence_id,
            "defence_cfg": asdict(defence_cfg), "clean_scenes": clean_scenes, "train": cfg.key(device_type),
            "seed": seed, "clean_base": clean_base.key_params if (clean_base and defence_id == "abd") else None}


def defend(victim: ModelArtifact, data: DataConfig, defence_id: str, defence_cfg, clean_scenes: int,
           cfg: TrainConfig, seed: int, clean_base: ModelArtifact | None = None, device="auto",
           cache: ArtifactCache | None = None, save_epochs: bool = False,
           subset: np.ndarray | None = None) -> ModelArtifact:
    """A defended model: ``victim`` fine-tuned on ``clean_scenes`` clean pairs as ``defence_id`` says.

    Every defence gets the same clean pairs, the same optimiser settings and the same number of
    epochs (the fair budget); only its loss terms and batch transforms differ.  ``clean_base`` is
    the clean pre-trained model that ABD's backdoor loss compares the victim with.  ``subset``
    (rows of the clean pair set) trains on a selection only: EftCLIP's curated set.
    """
    from paperlib.defences import plan
    cache = cache or ArtifactCache()
    device = resolve_device(device)
    key = defence_key(victim.key_params, defence_id, defence_cfg, clean_scenes, cfg, seed, clean_base, device.type)
    if subset is not None:
        subset = np.unique(np.asarray(subset, np.int64))
        if len(subset) == 0 or subset[0] < 0 or subset[-1] >= clean_scenes:
            raise ValueError(f"subset: {len(subset)} rows, must be a non-empty selection of rows 0..{clean_scenes - 1}")
        key["subset"] = hashlib.sha256(subset.tobytes()).hexdigest()[:20]
        key["subset_size"] = int(len(subset))
    stale = None
    path = cache.cached("model", key)
    if path is not None:
        # per-epoch weights exist only for whole epochs, so a shorter run is never rebuilt for them
        if not save_epochs or cfg.epochs < 1 or any(path.glob("epoch*.safetensors")):
            return ModelArtifact(victim.name, path, key)
        # Built earlier without per-epoch weights: train it again (same seed, same model on the CPU)
        # keeping them, rather than hand an ASR-per-epoch curve nothing to read.  The old model is
        # set aside (by rank 0 only) and removed once the new one is complete.
        from paperlib.cache import _barrier, _rank_world
        log.warning("defence %s: cached model %s has no per-epoch weights; rebuilding it with them",
                    defence_id, path.name)
        stale = path.with_name(path.name + ".stale")
        rank, world = _rank_world()
        if rank == 0:
            if stale.exists():
                shutil.rmtree(stale)
            path.rename(stale)
        _barrier(world)
    ctx = defence_context(victim, data, clean_scenes, cfg.batch_size, seed, clean_base, device, cache)
    if subset is not None:
        ctx.pairs = ctx.pairs.subset(subset)
        if device.type == "cuda":
            ctx.pairs.to_device(device)
        ctx.steps_per_epoch = ctx.pairs.steps_per_epoch(cfg.batch_size)
    pairs = ctx.pairs
    p = plan(defence_id, defence_cfg, ctx)
    model = _train_artifact(key, victim.name, victim, pairs, cfg, device, cache, f"defence {defence_id}",
                            terms=p.terms, transforms=p.transforms, save_epochs=save_epochs,
                            info={"defence_info": p.info, "clean_scenes": clean_scenes})
    if stale is not None and stale.exists():
        shutil.rmtree(stale, ignore_errors=True)
    return model


@torch.no_grad()
def encode_token_rows(model, tokens: np.ndarray, device, batch_size: int = 1024) -> torch.Tensor:
    """Normalised text embeddings of pre-tokenised captions (N, L) (CPU tensor)."""
    import torch.nn.functional as F
    model.eval()
    out = []
    for s in range(0, len(tokens), batch_size):
        t = torch.as_tensor(np.ascontiguousarray(tokens[s:s + batch_size])).to(device)
        out.append(F.normalize(model.encode_text(t).float(), dim=-1).cpu())
    return torch.cat(out) if out else torch.zeros(0)


def pair_embeddings(model, pairs, device, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Image and caption embeddings of every row of a pair set (first caption of each row),
    plus the caption strings (when the pair set has them)."""
    from paperlib.eval.zeroshot import encode_images
    rows = np.arange(len(pairs))
    imgs, txts, texts = [], [], []
    for s in range(0, len(rows), batch_size):
        b = pairs.fetch(rows[s:s + batch_size])
        imgs.append(encode_images(model, b["images"], batch_size, device))
        txts.append(encode_token_rows(model, b["tokens"].numpy(), device, batch_size))
        texts += b.get("texts", [])
    return torch.cat(imgs), torch.cat(txts), texts


def retrain_key(base: ModelArtifact, cfg: TrainConfig, kept: dict, device="auto") -> dict:
    """The cache key of :func:`retrain_on`'s model (``kept`` names what was kept), without training it."""
    return {"role": "retrain", "base": base.key_params, "train": cfg.key(resolve_device(device).type), **kept}


def retrain_on(base: ModelArtifact, pairs, keep: np.ndarray, cfg: TrainConfig, key: dict, device="auto",
               cache: ArtifactCache | None = None, desc: str = "retrain") -> ModelArtifact:
    """Fine-tune the clean pre-trained model on the kept rows of a pair set (CFBD's retraining);
    ``key`` names what was kept (cached under it)."""
    cache = cache or ArtifactCache()
    device = resolve_device(device)
    key = retrain_key(base, cfg, key, device)
    if (path := cache.cached("model", key)) is not None:
        return ModelArtifact(base.name, path, key)
    sub = pairs.subset(keep)
    if device.type == "cuda":
        sub.to_device(device)
    return _train_artifact(key, base.name, base, sub, cfg, device, cache, desc)
