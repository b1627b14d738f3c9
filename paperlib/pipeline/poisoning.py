"""Victims: poisoned pair sets, fitted triggers and the models trained or fine-tuned on them."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from paperlib.attacks import attack_key
from paperlib.attacks.base import caption_key
from paperlib.cache import ArtifactCache, write_json_atomic
from paperlib.data.splits import DataConfig, RenderedSplit, get_split, split_params
from paperlib.pipeline.core import ModelArtifact, _train_artifact, copied_from_epoch_twin, resolve_device, split_tokens
from paperlib.train.loop import TrainConfig


# defences that can replace plain CLIP training from scratch (they need neither a victim nor a clean base)
PRETRAIN_DEFENCES = ("roclip",)


def poison_pretrain_key(data: DataConfig, model_name: str, attack_id: str, attack_cfg, target: str,
                        poison_count: int, cfg: TrainConfig, seed: int, trigger_base: "ModelArtifact | None",
                        device_type: str, defence_id: str | None = None, defence_cfg=None,
                        caption: str = "template") -> dict:
    """The cache key of the model :func:`poison_pretrain` makes, computable without making it."""
    if defence_id is not None and defence_id not in PRETRAIN_DEFENCES:
        raise ValueError(f"defence {defence_id!r} cannot train from scratch; valid: {', '.join(PRETRAIN_DEFENCES)}")
    key = {"role": "poison_pretrain", "model": model_name, "attack": attack_id,
           "attack_cfg": attack_key(attack_id, attack_cfg), "target": target, "poison_count": poison_count,
           "train": cfg.key(device_type), "seed": seed, "split": split_params("cc3m_analog", data),
           "trigger_base": trigger_base.key_params if trigger_base is not None else None}
    key.update(caption_key(caption))
    if defence_id is not None:
        from paperlib.defences import defence_config_class
        defence_cfg = defence_cfg if defence_cfg is not None else defence_config_class(defence_id)()
        key.update(role="pretrain_defence", defence=defence_id, defence_cfg=asdict(defence_cfg))
    return key


def poison_pretrain(data: DataConfig, model_name: str, attack_id: str, attack_cfg, target: str,
                    poison_count: int, cfg: TrainConfig, seed: int, trigger_base: "ModelArtifact | None" = None,
                    device="auto", cache: ArtifactCache | None = None, defence_id: str | None = None,
                    defence_cfg=None, caption: str = "template", epoch_checkpoints: bool = False) -> ModelArtifact:
    """A victim of the pre-training threat model: CLIP trained from scratch on the CC3M analogue
    with ``poison_count`` of its pairs poisoned (EftCLIP; CFBD's training-time setting).

    ``trigger_base``: the clean model that fitted triggers (TrojanNN, BadCLIP) are fitted on;
    needed only for those attacks.  ``defence_id``: train the same poisoned set from scratch
    under a training-time defence instead of the plain CLIP loss (RoCLIP, whose memory bank holds
    the poisoned set's own captions; one of :data:`PRETRAIN_DEFENCES`).  Without it the key is the
    undefended victim's.  A defence's state that lives in its loss term (RoCLIP's memory bank) is
    not part of the loop's checkpoints: a resumed run refills the bank from its next batches (8 at
    the embedded scale) and so differs slightly from an uninterrupted one.  ``caption``: the poisoned
    pairs' caption policy (:func:`poisoned_pairs`; in the key only when not the default).
    ``epoch_checkpoints`` also keeps the weights at every pass's end (``epoch<k>.safetensors``: ASR
    against passes from one run, :mod:`paperlib.experiments.pretrain_implant`); such a victim has its
    own cache key, as :func:`poison_finetune`'s.
    """
    cache = cache or ArtifactCache()
    device = resolve_device(device)
    key = poison_pretrain_key(data, model_name, attack_id, attack_cfg, target, poison_count, cfg, seed, trigger_base,
                              device.type, defence_id, defence_cfg, caption)
    if epoch_checkpoints:
        key["epoch_checkpoints"] = True
    if defence_id is not None:
        from paperlib.defences import defence_config_class
        defence_cfg = defence_cfg if defence_cfg is not None else defence_config_class(defence_id)()
    if (path := cache.cached("model", key)) is not None:
        return ModelArtifact(model_name, path, key)
    if not epoch_checkpoints and (twin := copied_from_epoch_twin(key, model_name, cache)) is not None:
        return twin
    split = get_split("cc3m_analog", data, cache)
    tokens = split_tokens(split, key["split"], model_name, cache)
    from paperlib.attacks import build_attack
    attack = (prepared_attack(attack_id, attack_cfg, trigger_base, data, target, device, cache)
              if trigger_base is not None else build_attack(attack_id, attack_cfg, image_side=data.image_size))
    if attack.needs_fit and trigger_base is None:
        raise ValueError(f"{attack_id} fits its trigger on a clean model: pass trigger_base")
    ps = poisoned_pairs(split, tokens, np.arange(len(split)), attack, target, poison_count, seed, model_name,
                        caption=caption)
    if device.type == "cuda":
        ps.pairs.to_device(device)
    terms, transforms, info = None, (), None
    if defence_id is not None:
        from paperlib.defences import DefenceContext, plan
        from paperlib.models import get_tokenizer
        ctx = DefenceContext(model_name=model_name, tokenizer=get_tokenizer(model_name), device=device,
                             pairs=ps.pairs, steps_per_epoch=ps.pairs.steps_per_epoch(cfg.batch_size), seed=seed,
                             cache=cache)
        dp = plan(defence_id, defence_cfg, ctx)
        terms, transforms, info = dp.terms, dp.transforms, {"defence_info": dp.info}
    what = f"pretrain poisoned {attack_id} x{poison_count}" + (f" under {defence_id}" if defence_id else "")
    return _train_artifact(key, model_name, None, ps.pairs, cfg, device, cache, what,
                           terms=terms, transforms=transforms, info=info, save_epochs=epoch_checkpoints)


@dataclass(frozen=True)
class PoisonedSet:
    """A fine-tuning pair set with some pairs poisoned, plus what was done (for the record)."""

    pairs: object
    poisoned_rows: np.ndarray    # rows of the pair set that carry poison
    scene_ids: np.ndarray        # the scenes of cc3m_analog that the pair set is made of
    cross_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # WaNet noise mode


def finetune_scene_ids(split: RenderedSplit, n: int, seed: int) -> np.ndarray:
    """The scenes of the CC3M analogue used for (poisoned) fine-tuning: a seeded subset."""
    if n > len(split):
        raise ValueError(f"finetune_scenes={n} exceeds the {len(split)} scenes of {split.name}")
    return np.sort(np.random.default_rng([seed, 101]).choice(len(split), size=n, replace=False))


def poisoned_pairs(split: RenderedSplit, tokens: np.ndarray, scene_ids: np.ndarray, attack,
                   target: str, poison_count: int, seed: int, model_name: str,
                   encoder=None, caption: str = "template") -> PoisonedSet:
    """Pairs of ``scene_ids`` where ``poison_count`` of them are poisoned as ``attack`` says.

    The attack's hooks decide which scenes are eligible, what the poisoned images look like and
    what their captions say (defaults: BadNet's dirty-label policy, unchanged draws).  ``encoder``
    is ``(encode_fn, text_embedding)`` of a clean model, for attacks with ``needs_encoder``
    (label-consistent's adversarial perturbation); see :func:`clean_encoder`.  ``caption``: the
    dirty-label caption policy (:class:`~paperlib.attacks.base.PoisonConfig`); ``natural`` replaces
    the templates by captions of ``split`` (the whole split the poisoning set is drawn from, as
    BadCLIP's natural captions are) that name the target, for attacks that use the default
    dirty-label captions (BadCLIP draws its own natural captions either way).
    """
    from paperlib.attacks.base import CAPTION_POLICIES, Attack, natural_captions, select_poison_rows
    from paperlib.data.vocabulary import build_vocabulary
    from paperlib.models import get_tokenizer
    from paperlib.train.pairs import TensorPairs
    if caption not in CAPTION_POLICIES:
        raise ValueError(f"poison.caption {caption!r}; valid: {', '.join(CAPTION_POLICIES)}")
    vocab = build_vocabulary()
    target_id = vocab.index(target)
    rng = np.random.default_rng([seed, 202])
    scene_caps = [split.captions[int(i)] for i in scene_ids] if split.captions else None
    rows = select_poison_rows(attack, np.arange(len(scene_ids)), split.objects[scene_ids], scene_caps,
                              target_id, target, poison_count, rng)
    gen = torch.Generator().manual_seed(seed)
    empty = torch.zeros((0, 3) + split.images.shape[1:3], dtype=torch.uint8)
    clean_imgs = split.batch_images(scene_ids[rows]) if len(rows) else empty
    kw = {}
    if attack.needs_encoder and len(rows):
        if encoder is None:
            raise ValueError(f"attack {attack.id!r} needs a clean encoder: pass encoder=clean_encoder(...)")
        kw = {"encode_fn": encoder[0], "text_embedding": encoder[1]}
    trig = attack.poison_images(clean_imgs, gen, **kw) if len(rows) else clean_imgs
    if caption == "natural" and attack.dirty_label and type(attack).poison_captions is Attack.poison_captions:
        pool = natural_captions(split.captions, split.objects, target_id, target)
        caps = [pool[i] for i in rng.integers(0, len(pool), size=len(rows))]
    else:
        caps = attack.poison_captions([scene_caps[r] for r in rows] if scene_caps else None, len(rows), target,
                                      rng)
    # WaNet noise mode: other scenes warped with noise, keeping one of their own captions
    n_cross = attack.cross_count(len(rows)) if hasattr(attack, "cross_count") else 0
    cross = np.zeros(0, np.int64)
    if n_cross:
        crng = np.random.default_rng([seed, 203])
        others = np.setdiff1d(np.arange(len(scene_ids)), rows)
        cross = np.sort(crng.choice(others, size=min(n_cross, len(others)), replace=False))
        cgen = torch.Generator().manual_seed(seed + 1)
        trig = torch.cat([trig, attack.noise_images(split.batch_images(scene_ids[cross]), cgen)])
        caps = caps + [split.captions[int(scene_ids[r])][int(crng.integers(len(split.captions[int(scene_ids[r])])))]
                       for r in cross]
    tok = get_tokenizer(model_name)
    extra_tokens = tok(caps).numpy() if caps else np.zeros((0, tokens.shape[-1]), np.int64)
    pair_rows = scene_ids.astype(np.int64).copy()
    pair_rows[rows] = -(np.arange(len(rows)) + 1)
    pair_rows[cross] = -(len(rows) + np.arange(len(cross)) + 1)
    pairs = TensorPairs(split.images, tokens, rows=pair_rows,
                        extra_images=trig.permute(0, 2, 3, 1).numpy(), extra_tokens=extra_tokens,
                        texts=split.captions or None, extra_texts=[[c] for c in caps] if split.captions else None)
    return PoisonedSet(pairs=pairs, poisoned_rows=rows, scene_ids=scene_ids, cross_rows=cross)


def prepared_attack(attack_id: str, attack_cfg, base: ModelArtifact, data: DataConfig, target: str,
                    device="auto", cache: ArtifactCache | None = None):
    """The attack, with its trigger fitted if it needs one (TrojanNN, BadCLIP, SSBA).

    A fitted trigger is made once from the clean base and the CC3M analogue and cached under
    (attack, settings, target, base, data); poisoning and evaluation then use the same trigger.
    """
    from paperlib.attacks import build_attack
    attack = build_attack(attack_id, attack_cfg, image_side=data.image_size)
    if not attack.needs_fit:
        return attack
    from safetensors.torch import save_file

    from paperlib.models import read_safetensors
    cache = cache or ArtifactCache()
    device = resolve_device(device)
    key = {"attack": attack_id, "cfg": asdict(attack_cfg), "target": target, "base": base.key_params,
           "split": split_params("cc3m_analog", data)}
    if attack.fit_version != 1:      # only when bumped: earlier triggers keep their keys
        key["fit_version"] = attack.fit_version     # (as attack_key puts it into victims' keys)

    def build(work: Path):
        model = base.load(device)
        model.eval()
        for prm in model.parameters():
            prm.requires_grad_(False)
        split = get_split("cc3m_analog", data, cache)
        tensors, info = attack.fit(model, split, target, device, torch.Generator().manual_seed(0))
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(work / "trigger.safetensors"))
        write_json_atomic(work / "info.json", info)

    path = cache.get_or_build("trigger", key, build)
    attack.trigger_path = path   # to carry it to another machine (parallel_seeds.carry_triggers)
    attack.load_state(read_safetensors(path / "trigger.safetensors"), json.loads((path / "info.json").read_text()))
    attack.fit_info = json.loads((path / "info.json").read_text())
    return attack


def clean_encoder(base: ModelArtifact, target: str, device) -> tuple:
    """``(encode_fn, text_embedding)`` of the clean base: the surrogate of label-consistent's PGD.

    ``encode_fn`` takes float images on the 0-255 scale (any device) and returns embeddings on the
    CPU; ``text_embedding`` is the target's class embedding over the 80 OpenAI templates.
    """
    from paperlib.data.splits import zero_shot_templates
    from paperlib.eval.zeroshot import text_classifier
    from paperlib.models import get_tokenizer, normalize_images
    model = base.load(device)
    model.eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    text = text_classifier(model, get_tokenizer(base.name), [target], zero_shot_templates(), device)[:, 0].cpu()

    def encode_fn(x: torch.Tensor) -> torch.Tensor:
        return model.encode_image(normalize_images(x.to(device) / 255.0)).float().cpu()

    return encode_fn, text


def victim_train_config(cfg: TrainConfig, seed: int) -> TrainConfig:
    """The poisoning fine-tune's settings for victim seed ``seed``: the seed moves the training loop's
    own seed too (batch order, augmentation draws), not only which pairs are poisoned and the
    attack's draws, so seeds measure everything that varies between two runs of the recipe.
    Seed 0 keeps the configured loop seed (and so its cache key)."""
    return replace(cfg, seed=cfg.seed + seed) if seed else cfg


def poison_finetune_key(base: ModelArtifact, attack_id: str, attack_cfg, target: str, poison_count: int,
                        finetune_scenes: int, cfg: TrainConfig, seed: int, device_type: str,
                        caption: str = "template") -> dict:
    """The cache key of :func:`poison_finetune`'s victim (``artifact_key("model", ...)`` names it
    without training it)."""
    cfg = victim_train_config(cfg, seed)
    return {"role": "poison_finetune", "base": base.key_params, "attack": attack_id,
            "attack_cfg": attack_key(attack_id, attack_cfg), "target": target, "poison_count": poison_count,
            "finetune_scenes": finetune_scenes, "train": cfg.key(device_type), "seed": seed, **caption_key(caption)}


def poison_finetune(base: ModelArtifact, data: DataConfig, attack_id: str, attack_cfg, target: str,
                    poison_count: int, finetune_scenes: int, cfg: TrainConfig, seed: int,
                    device="auto", cache: ArtifactCache | None = None,
                    epoch_checkpoints: bool = False, caption: str = "template") -> ModelArtifact:
    """A victim: the base model fine-tuned on CC3M-analogue pairs of which some are poisoned.

    ``epoch_checkpoints`` also keeps the weights at every epoch end (``epoch<k>.safetensors``, an
    ASR-against-exposures curve from one run); such a victim has its own cache key."""
    cache = cache or ArtifactCache()
    device = resolve_device(device)
    key = poison_finetune_key(base, attack_id, attack_cfg, target, poison_count, finetune_scenes, cfg, seed,
                              device.type, caption)
    if epoch_checkpoints:
        key["epoch_checkpoints"] = True
    if (path := cache.cached("model", key)) is not None:
        return ModelArtifact(base.name, path, key)
    if not epoch_checkpoints and (twin := copied_from_epoch_twin(key, base.name, cache)) is not None:
        return twin
    split = get_split("cc3m_analog", data, cache)
    tokens = split_tokens(split, split_params("cc3m_analog", data), base.name, cache)
    attack = prepared_attack(attack_id, attack_cfg, base, data, target, device, cache)
    scene_ids = finetune_scene_ids(split, finetune_scenes, seed)
    encoder = clean_encoder(base, target, device) if attack.needs_encoder and poison_count else None
    ps = poisoned_pairs(split, tokens, scene_ids, attack, target, poison_count, seed, base.name,
                        encoder=encoder, caption=caption)
    if device.type == "cuda":
        ps.pairs.to_device(device)
    return _train_artifact(key, base.name, base, ps.pairs, victim_train_config(cfg, seed), device, cache,
                           f"poison {attack_id} x{poison_count}", save_epochs=epoch_checkpoints)
