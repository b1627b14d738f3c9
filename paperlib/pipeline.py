"""Cached building blocks shared by every notebook: tokens, clean base model, victims, evaluations.

Each function asks the artifact cache first (:mod:`paperlib.cache`), so the four paper notebooks
reuse each other's clean model and victims, and an interrupted training resumes from its last
checkpoint in the artifact's ``.partial`` directory.

The clean base model stands in for the papers' pre-trained CLIP (OpenAI's RN50 weights): like
those weights it is one fixed artifact (``base_seed``), and the seeds of an experiment vary what
is built on top of it (poisoning, defences).
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from paperlib.attacks import attack_key
from paperlib.cache import ArtifactCache, write_json_atomic
from paperlib.data.splits import DataConfig, RenderedSplit, get_split, split_params
from paperlib.train.loop import TrainConfig

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' -> a torch device (under torchrun: this rank's GPU)."""
    import os
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but torch sees no GPU; use 'auto' or 'cpu'")
        from paperlib.train.loop import ieee_fp32_on_cuda
        ieee_fp32_on_cuda()   # evaluation runs in fp32: the same numbers on CPU and GPU
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(device)


def device_name(device: torch.device) -> str:
    """The hardware a model trained on, as a summary records it (the GPU's or the CPU's name)."""
    from paperlib.bench import cpu_model
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


@dataclass(frozen=True)
class ModelArtifact:
    """A trained model in the cache: its architecture name and safetensors file."""

    name: str
    path: Path
    key_params: dict
    weights_file: str = "model.safetensors"

    def load(self, device="cpu"):
        from paperlib.models import load_model
        return load_model(self.name, self.path / self.weights_file, device)

    @property
    def summary(self) -> dict:
        p = self.path / "summary.json"
        return json.loads(p.read_text()) if p.is_file() else {}


def external_model(name: str, weights: str | Path) -> ModelArtifact:
    """A user-supplied pre-trained CLIP (e.g. OpenAI's RN50 converted to safetensors) as the base.

    Its cache identity is the file's size and a hash of its first and last megabyte.  Its header
    is read here, so a file that is not safetensors fails before anything is built on it.
    """
    import hashlib

    from paperlib.models import CheckpointError, check_safetensors
    path = Path(weights)
    if path.is_file() and is_shipped_record(path.with_suffix(".json")):
        return shipped_base(name, path)
    if not path.is_file():
        raise FileNotFoundError(f"base_checkpoint {str(path)!r} does not exist: convert the pre-trained "
                                "weights to safetensors first (see README, 'paper scale')")
    if path.suffix != ".safetensors":
        raise ValueError(f"base_checkpoint {str(path)!r}: only .safetensors files are loaded")
    try:
        check_safetensors(path)
    except CheckpointError as err:
        raise CheckpointError(f"base_checkpoint: {err}") from None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        fh.seek(max(0, path.stat().st_size - (1 << 20)))
        h.update(fh.read())
    key = {"role": "external", "model": name, "size": path.stat().st_size, "sha256_ends": h.hexdigest()}
    return ModelArtifact(name, path.parent, key, weights_file=path.name)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def is_shipped_record(path: Path) -> bool:
    """Whether ``path`` is a shipped base's record (other JSON beside a weights file, such as an
    open_clip model config, is not); a record that cannot be read is named."""
    from paperlib.models import CheckpointError
    if not path.is_file():
        return False
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable JSON record ({err})") from None
    return isinstance(record, dict) and {"sha256", "source_key", "model"} <= set(record)


def shipped_base(name: str, weights: Path, cache: ArtifactCache | None = None) -> ModelArtifact:
    """A clean base shipped with the project (``paperlib/bases/<name>.safetensors`` beside its record
    ``<name>.json``, written by :mod:`paperlib.experiments.ship_base`): the file's full SHA-256 must
    be the record's, the record's model must be ``name``; then it is imported into the cache under
    a key of that hash, so every machine builds on the same weights and names them the same way."""
    from paperlib.models import CheckpointError, check_safetensors
    cache = cache or ArtifactCache()
    record_path = weights.with_suffix(".json")
    record = json.loads(record_path.read_text())
    if record.get("model") != name:
        raise CheckpointError(f"{weights}: its record {record_path.name} says model {record.get('model')!r}, "
                              f"the parameters ask for {name!r}")
    key = {"role": "shipped_base", "model": name, "sha256": record.get("sha256")}
    if cache.exists("model", key):
        return ModelArtifact(name, cache.path("model", key), key)
    check_safetensors(weights)
    digest = file_sha256(weights)
    if digest != record.get("sha256"):
        raise CheckpointError(f"{weights}: SHA-256 {digest[:16]}... is not the {str(record.get('sha256'))[:16]}... "
                              f"its record {record_path.name} names: the file was changed or damaged; restore it "
                              "(git checkout) or rebuild it with python -m paperlib.experiments.ship_base")

    def build(work: Path):
        shutil.copyfile(weights, work / "model.safetensors")
        write_json_atomic(work / "summary.json", {**record.get("summary", {}), "shipped_from": str(weights.name)})
    return ModelArtifact(name, cache.get_or_build("model", key, build), key)


def split_tokens(split: RenderedSplit, split_key: dict, model_name: str,
                 cache: ArtifactCache) -> np.ndarray:
    """Token ids (N, captions_per_scene, context) of a captioned split, cached."""
    from paperlib.models import get_tokenizer

    def build(work: Path):
        tok = get_tokenizer(model_name)
        flat = [c for caps in split.captions for c in caps]
        ids = torch.cat([tok(flat[s:s + 8192]) for s in range(0, len(flat), 8192)])
        arr = ids.numpy().astype(np.int32).reshape(len(split.captions), -1, ids.shape[-1])
        np.save(work / "tokens.npy", arr)

    params = {"split": split_key, "tokenizer": model_name}
    path = cache.get_or_build("tokens", params, build)
    return np.load(path / "tokens.npy", mmap_mode="r")


def _train_artifact(kind_params: dict, model_name: str, init: ModelArtifact | None, pairs,
                    cfg: TrainConfig, device: torch.device, cache: ArtifactCache, desc: str,
                    terms=None, transforms=(), save_epochs: bool = False, info: dict | None = None
                    ) -> ModelArtifact:
    """Train (or find in the cache) one model.  ``save_epochs`` keeps the weights at every epoch
    end as ``epoch{k}.safetensors`` (ASR-per-epoch curves); ``info`` goes into the summary."""
    from paperlib.models import create_model, load_checkpoint, save_checkpoint
    from paperlib.train.loop import train
    from paperlib.train.losses import ClipLossTerm

    def build(work: Path):
        model = create_model(model_name, seed=cfg.seed)
        if init is not None:
            load_checkpoint(model, init.path / init.weights_file)
        from paperlib.cache import _rank_world
        callbacks = []
        if save_epochs:
            def keep_epoch(event, state):
                if event == "epoch_end" and _rank_world()[0] == 0:
                    save_checkpoint(state["model"], work / f"epoch{state['epoch']}.safetensors")
            callbacks.append(keep_epoch)
        summary = train(model, pairs, cfg, terms or [(ClipLossTerm(), 1.0)], work_dir=work,
                        device=device, desc=desc, transforms=transforms, callbacks=callbacks)
        summary.update(info or {})
        if _rank_world()[0] != 0:
            return
        save_checkpoint(model, work / "model.safetensors")
        summary["device"] = device_name(device)
        summary["world_size"] = _rank_world()[1]
        write_json_atomic(work / "summary.json", summary)
        for f in ("last.safetensors", "last_optimizer.safetensors", "last_terms.safetensors"):
            (work / f).unlink(missing_ok=True)

    path = cache.get_or_build("model", kind_params, build, collective=True)
    return ModelArtifact(model_name, path, kind_params)


def clean_pretrain_key(data: DataConfig, model_name: str, cfg: TrainConfig, device_type: str) -> dict:
    """The cache key of :func:`pretrain_clean`'s base (it names every victim built on the base)."""
    return {"role": "clean_pretrain", "model": model_name, "train": cfg.key(device_type),
            "split": split_params("cc3m_analog", data)}


def pretrain_clean(data: DataConfig, model_name: str, cfg: TrainConfig, device="auto",
                   cache: ArtifactCache | None = None) -> ModelArtifact:
    """The clean base CLIP, pre-trained from scratch on the CC3M analogue."""
    from paperlib.train.pairs import TensorPairs
    cache = cache or ArtifactCache()
    device = resolve_device(device)
    key = clean_pretrain_key(data, model_name, cfg, device.type)
    if cache.exists("model", key):
        return ModelArtifact(model_name, cache.path("model", key), key)
    split = get_split("cc3m_analog", data, cache)
    tokens = split_tokens(split, key["split"], model_name, cache)
    pairs = TensorPairs(split.images, tokens)
    if device.type == "cuda":
        pairs.to_device(device)
    return _train_artifact(key, model_name, None, pairs, cfg, device, cache, "pretrain clean")


# defences that can replace plain CLIP training from scratch (they need neither a victim nor a clean base)
PRETRAIN_DEFENCES = ("roclip",)


def poison_pretrain(data: DataConfig, model_name: str, attack_id: str, attack_cfg, target: str,
                    poison_count: int, cfg: TrainConfig, seed: int, trigger_base: "ModelArtifact | None" = None,
                    device="auto", cache: ArtifactCache | None = None, defence_id: str | None = None,
                    defence_cfg=None) -> ModelArtifact:
    """A victim of the pre-training threat model: CLIP trained from scratch on the CC3M analogue
    with ``poison_count`` of its pairs poisoned (EftCLIP; CFBD's training-time setting).

    ``trigger_base``: the clean model that fitted triggers (TrojanNN, BadCLIP) are fitted on;
    needed only for those attacks.  ``defence_id``: train the same poisoned set from scratch
    under a training-time defence instead of the plain CLIP loss (RoCLIP, whose memory bank holds
    the poisoned set's own captions; one of :data:`PRETRAIN_DEFENCES`).  Without it the key is the
    undefended victim's.  A defence's state that lives in its loss term (RoCLIP's memory bank) is
    not part of the loop's checkpoints: a resumed run refills the bank from its next batches (8 at
    the embedded scale) and so differs slightly from an uninterrupted one.
    """
    cache = cache or ArtifactCache()
    device = resolve_device(device)
    if defence_id is not None and defence_id not in PRETRAIN_DEFENCES:
        raise ValueError(f"defence {defence_id!r} cannot train from scratch; valid: {', '.join(PRETRAIN_DEFENCES)}")
    key = {"role": "poison_pretrain", "model": model_name, "attack": attack_id,
           "attack_cfg": attack_key(attack_id, attack_cfg), "target": target, "poison_count": poison_count,
           "train": cfg.key(device.type), "seed": seed, "split": split_params("cc3m_analog", data),
           "trigger_base": trigger_base.key_params if trigger_base is not None else None}
    if defence_id is not None:
        from paperlib.defences import defence_config_class
        defence_cfg = defence_cfg if defence_cfg is not None else defence_config_class(defence_id)()
        key.update(role="pretrain_defence", defence=defence_id, defence_cfg=asdict(defence_cfg))
    if cache.exists("model", key):
        return ModelArtifact(model_name, cache.path("model", key), key)
    split = get_split("cc3m_analog", data, cache)
    tokens = split_tokens(split, key["split"], model_name, cache)
    from paperlib.attacks import build_attack
    attack = (prepared_attack(attack_id, attack_cfg, trigger_base, data, target, device, cache)
              if trigger_base is not None else build_attack(attack_id, attack_cfg, image_side=data.image_size))
    if attack.needs_fit and trigger_base is None:
        raise ValueError(f"{attack_id} fits its trigger on a clean model: pass trigger_base")
    ps = poisoned_pairs(split, tokens, np.arange(len(split)), attack, target, poison_count, seed, model_name)
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
                           terms=terms, transforms=transforms, info=info)


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
                   encoder=None) -> PoisonedSet:
    """Pairs of ``scene_ids`` where ``poison_count`` of them are poisoned as ``attack`` says.

    The attack's hooks decide which scenes are eligible, what the poisoned images look like and
    what their captions say (defaults: BadNet's dirty-label policy, unchanged draws).  ``encoder``
    is ``(encode_fn, text_embedding)`` of a clean model, for attacks with ``needs_encoder``
    (label-consistent's adversarial perturbation); see :func:`clean_encoder`.
    """
    from paperlib.attacks.base import select_poison_rows
    from paperlib.data.vocabulary import build_vocabulary
    from paperlib.models import get_tokenizer
    from paperlib.train.pairs import TensorPairs
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
    caps = attack.poison_captions([scene_caps[r] for r in rows] if scene_caps else None, len(rows), target, rng)
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
                        finetune_scenes: int, cfg: TrainConfig, seed: int, device_type: str) -> dict:
    """The cache key of :func:`poison_finetune`'s victim (``artifact_key("model", ...)`` names it
    without training it)."""
    cfg = victim_train_config(cfg, seed)
    return {"role": "poison_finetune", "base": base.key_params, "attack": attack_id,
            "attack_cfg": attack_key(attack_id, attack_cfg), "target": target, "poison_count": poison_count,
            "finetune_scenes": finetune_scenes, "train": cfg.key(device_type), "seed": seed}


def poison_finetune(base: ModelArtifact, data: DataConfig, attack_id: str, attack_cfg, target: str,
                    poison_count: int, finetune_scenes: int, cfg: TrainConfig, seed: int,
                    device="auto", cache: ArtifactCache | None = None) -> ModelArtifact:
    """A victim: the base model fine-tuned on CC3M-analogue pairs of which some are poisoned."""
    cache = cache or ArtifactCache()
    device = resolve_device(device)
    key = poison_finetune_key(base, attack_id, attack_cfg, target, poison_count, finetune_scenes, cfg, seed,
                              device.type)
    if cache.exists("model", key):
        return ModelArtifact(base.name, cache.path("model", key), key)
    split = get_split("cc3m_analog", data, cache)
    tokens = split_tokens(split, split_params("cc3m_analog", data), base.name, cache)
    attack = prepared_attack(attack_id, attack_cfg, base, data, target, device, cache)
    scene_ids = finetune_scene_ids(split, finetune_scenes, seed)
    encoder = clean_encoder(base, target, device) if attack.needs_encoder and poison_count else None
    ps = poisoned_pairs(split, tokens, scene_ids, attack, target, poison_count, seed, base.name,
                        encoder=encoder)
    if device.type == "cuda":
        ps.pairs.to_device(device)
    return _train_artifact(key, base.name, base, ps.pairs, victim_train_config(cfg, seed), device, cache,
                           f"poison {attack_id} x{poison_count}")


TEMPLATE_SETS = ("openai80", "simple7", "split")


def templates_for(name: str, split: RenderedSplit) -> list[str]:
    """Prompt templates: OpenAI's 80 (the papers, via CleanCLIP), the 7 of CLIP's ImageNet
    notebook that open_clip ships as SIMPLE_IMAGENET_TEMPLATES (cheaper on a CPU: 653 classes x 80
    prompts cost a minute per model), or the split's own list."""
    import open_clip
    if name == "openai80":
        return [t("{}") for t in open_clip.OPENAI_IMAGENET_TEMPLATES]
    if name == "simple7":
        return [t("{}") for t in open_clip.SIMPLE_IMAGENET_TEMPLATES]
    if name == "split":
        return list(split.templates)
    raise ValueError(f"unknown template set {name!r}; valid: {', '.join(TEMPLATE_SETS)}")


def classifier_for(artifact: ModelArtifact, model, classnames: list[str], templates: list[str],
                   device, cache: ArtifactCache) -> torch.Tensor:
    """The (D, K) zero-shot classifier of a model for a class list, cached per model."""
    from safetensors.torch import save_file
    from paperlib.eval.zeroshot import text_classifier
    from paperlib.models import get_tokenizer, read_safetensors
    key = {"model": artifact.key_params, "classnames": classnames, "templates": templates}

    def build(work: Path):
        w = text_classifier(model, get_tokenizer(artifact.name), classnames, templates, device).cpu()
        save_file({"classifier": w.contiguous()}, str(work / "classifier.safetensors"))

    path = cache.get_or_build("classifier", key, build)
    return read_safetensors(path / "classifier.safetensors")["classifier"]


def evaluate(artifact: ModelArtifact, data: DataConfig, split_name: str, attack=None,
             attack_key: dict | None = None, target: str | None = None,
             asr_convention: str = "exclude_target", templates: str = "simple7", device="auto",
             batch_size: int = 512, cache: ArtifactCache | None = None, clean: bool = True) -> dict:
    """CA top-k (and ASR top-k if an attack is given) of a model on a classification split.

    Cached: the key is the model's key, the split, the templates, the attack and the convention.
    ASR images are the split's images whose class is not the target (``exclude_target``), each
    with the trigger applied; the trigger's randomness is seeded, so the number is repeatable.
    ``clean=False`` measures the ASR only, encoding only the ASR images (mmPoison's source class
    in a larger rendering of the split).
    """
    from paperlib.eval.zeroshot import attack_success_rate, clean_accuracy, encode_images
    cache = cache or ArtifactCache()
    device = resolve_device(device)
    if not clean and attack is None:
        raise ValueError("evaluate(clean=False) measures an ASR: give an attack")
    key = {"model": artifact.key_params, "split": split_params(split_name, data), "attack": attack_key,
           "target": target, "asr_convention": asr_convention, "templates": templates}
    if not clean:
        key["clean"] = False      # absent otherwise, so the keys of full evaluations stay as they were

    def build(work: Path):
        t0 = time.time()
        split = get_split(split_name, data, cache)
        model = artifact.load(device)
        classifier = classifier_for(artifact, model, split.classnames, templates_for(templates, split),
                                    device, cache)
        out = {}
        if clean:
            feats = encode_images(model, split.images, batch_size, device)
            out = clean_accuracy(feats, classifier, split.labels)
        if attack is not None:
            if target not in split.classnames:
                raise ValueError(f"target {target!r} is not a class of {split_name}")
            t_idx = split.classnames.index(target)
            keep = attack.asr_rows(split.labels, split.classnames, t_idx, asr_convention)
            gen = torch.Generator().manual_seed(12345)
            trig = encode_images(model, split.images[keep], batch_size, device,
                                 transform=lambda x, s: attack.test_transform(x, gen))
            out.update(attack_success_rate(trig, classifier, split.labels[keep], t_idx, "all"))
            out["asr_images"] = int(len(keep))
        out["n_images"] = int(len(split))
        out["n_classes"] = len(split.classnames)
        out["eval_seconds"] = time.time() - t0
        write_json_atomic(work / "metrics.json", out)

    path = cache.get_or_build("eval", key, build)
    return json.loads((path / "metrics.json").read_text())


def linear_probe_eval(artifact: ModelArtifact, data: DataConfig, probe: str, n_train: int, n_test: int,
                      device="auto", batch_size: int = 512, cache: ArtifactCache | None = None,
                      c_grid: tuple[float, ...] | None = None) -> dict:
    """Linear-probe accuracy (top-1/5, %) of a model's frozen image features, cached.

    ``probe``: ``fashion_mnist`` (real grey product photos; ``n_train`` / ``n_test`` images drawn
    from its train / test files) or ``heldout_style`` (the probe_train / probe_test splits).
    """
    from paperlib.eval.linear_probe import extract_features, linear_probe
    from paperlib.models import normalize_images
    cache = cache or ArtifactCache()
    device = resolve_device(device)
    key = {"model": artifact.key_params, "probe": probe, "n_train": n_train, "n_test": n_test,
           "image_size": data.image_size,
           "splits": [split_params(s, data) for s in ("probe_train", "probe_test")] if probe == "heldout_style" else None}
    if c_grid:   # a custom grid of inverse regularisation strengths (default: the probe's own)
        key["c_grid"] = [float(c) for c in c_grid]

    def build(work: Path):
        t0 = time.time()
        if probe == "fashion_mnist":
            from paperlib.data.fashion_mnist import load_fashion_mnist
            train_ds = load_fashion_mnist("train", data.image_size, limit=n_train, seed=data.seed)
            test_ds = load_fashion_mnist("test", data.image_size, limit=n_test, seed=data.seed)
        elif probe == "heldout_style":
            train_ds, test_ds = get_split("probe_train", data, cache), get_split("probe_test", data, cache)
        else:
            raise ValueError(f"unknown probe {probe!r}; valid: fashion_mnist, heldout_style")
        model = artifact.load(device).eval()
        encode = lambda x: model.encode_image(normalize_images(x.to(device))).float()  # noqa: E731
        Xtr, ytr = extract_features(encode, train_ds, batch_size, device)
        Xte, yte = extract_features(encode, test_ds, batch_size, device)
        out = linear_probe(Xtr, ytr, Xte, yte, seed=data.seed, **({"c_grid": c_grid} if c_grid else {}))
        out = {k: v for k, v in out.items() if not isinstance(v, dict)}
        out["eval_seconds"] = time.time() - t0
        write_json_atomic(work / "metrics.json", out)

    path = cache.get_or_build("eval", key, build)
    return json.loads((path / "metrics.json").read_text())


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
    if cache.exists("model", key):
        path = cache.path("model", key)
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


def retrain_on(base: ModelArtifact, pairs, keep: np.ndarray, cfg: TrainConfig, key: dict, device="auto",
               cache: ArtifactCache | None = None, desc: str = "retrain") -> ModelArtifact:
    """Fine-tune the clean pre-trained model on the kept rows of a pair set (CFBD's retraining);
    ``key`` names what was kept (cached under it)."""
    cache = cache or ArtifactCache()
    device = resolve_device(device)
    key = {"role": "retrain", "base": base.key_params, "train": cfg.key(device.type), **key}
    if cache.exists("model", key):
        return ModelArtifact(base.name, cache.path("model", key), key)
    sub = pairs.subset(keep)
    if device.type == "cuda":
        sub.to_device(device)
    return _train_artifact(key, base.name, base, sub, cfg, device, cache, desc)
