"""The named splits of the embedded benchmark and their analogues in the papers.

| split            | kind           | analogue of   | what it is                                             |
|------------------|----------------|---------------|--------------------------------------------------------|
| cc3m_analog      | captioned      | CC3M          | 1-3 objects, training styles, plain alt-text captions  |
| flickr_analog    | captioned      | Flickr30K     | 2-3 larger objects, scenery/texture backgrounds, photo |
|                  |                |               | noise and blur, descriptive sentences                  |
| imagenet_analog  | classification | ImageNet-1K   | one object, HELD-OUT style (Fluent 3D), every class    |
|                  |                |               | that has a Fluent 3D render                            |
| in_style         | classification | (diagnostic)  | as imagenet_analog but in the training styles          |
| cifar10_analog   | classification | CIFAR-10      | the ten CIFAR-10 classes, held-out style               |
| probe_train/test | classification | linear probe  | held-out style, disjoint renders, for linear probes    |

Every split is rendered once into the artifact cache as memory-mapped uint8 arrays (images,
instance maps) plus small numpy/JSON side files, keyed by the split's parameters.
"""
from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from paperlib.cache import ArtifactCache, write_json_atomic
from paperlib.data.dataconfig import MAX_OBJECTS, SPLIT_NAMES, DataConfig, split_params
from paperlib.data.dataconfig import CC3M_BACKGROUNDS, HELDOUT_STYLE, TRAIN_STYLES  # noqa: F401 (re-exported)
from paperlib.data.scenes import BACKGROUNDS, SceneStyle, render_scene, scene_captions

log = logging.getLogger(__name__)

def split_style(name: str, cfg: DataConfig) -> SceneStyle:
    """The look of each split (see module docstring)."""
    base = dict(image_size=cfg.image_size)
    if name == "cc3m_analog":
        return SceneStyle(**base, backgrounds=tuple(cfg.train_backgrounds))
    if name == "flickr_analog":
        return SceneStyle(**base, n_objects=(2, 3), scale=(0.35, 0.65), rotation=25.0,
                          backgrounds=("scenery", "noise", "stripes", "dots"), photo_noise=6.0,
                          blur=0.5, register="descriptive", max_overlap=0.2)
    # single-object classification sets: object-centred, larger, as ImageNet photos are
    return SceneStyle(**base, n_objects=(1, 1), scale=(0.5, 0.8), rotation=10.0, p_recolour=0.0,
                      backgrounds=("solid", "gradient", "noise", "scenery"))


@lru_cache(maxsize=2)
def _vocab_and_banks(styles: tuple[str, ...], sprite_size: int, max_classes: int):
    from paperlib.data.sprites import load_sprite_bank
    from paperlib.data.vocabulary import build_vocabulary
    vocab = build_vocabulary()
    banks = {s: load_sprite_bank(s, vocab, size=sprite_size) for s in styles}
    return vocab, banks


ALWAYS_KEPT = ("banana", "umbrella")  # the papers' target labels survive any class limit


def _kept_classes(vocab, cfg: "DataConfig") -> set[int] | None:
    """The classes the benchmark uses: all of them, or ``max_classes`` of them.

    A limited vocabulary keeps the papers' targets and the CIFAR-10 classes, then the classes
    seen in the most training styles that also have a held-out-style render (the zero-shot set),
    ties broken by a draw from the data seed.  Fewer classes means more examples of each in the
    same training budget: with 771 classes a 2-core, 30-minute CLIP sees each ~800 times and
    learns little object identity (measured: results/foundation, README).
    """
    if not cfg.max_classes:
        return None
    from paperlib.data.vocabulary import CIFAR10_CLASSES
    keep = {vocab.index(n) for n in list(ALWAYS_KEPT) + list(CIFAR10_CLASSES.values())}
    rng = np.random.default_rng([cfg.seed, 404])
    order = rng.permutation(len(vocab))
    def score(i):
        styles = set(vocab.styles_of(int(i)))
        return (cfg.heldout_style in styles, len(styles & set(cfg.train_styles)))
    ranked = sorted(order.tolist(), key=lambda i: score(i), reverse=True)  # stable: seeded ties
    for i in ranked:
        if len(keep) >= cfg.max_classes:
            break
        keep.add(int(i))
    return keep


def _class_index(banks, vocab, cfg: "DataConfig") -> dict[str, dict[int, np.ndarray]]:
    """For each style: class id -> indices of its sprites (restricted by ``cfg.max_classes``)."""
    keep = _kept_classes(vocab, cfg)
    out = {}
    for style, bank in banks.items():
        by_class: dict[int, list[int]] = {}
        for i, c in enumerate(bank.class_ids.tolist()):
            if keep is not None and c not in keep:
                continue
            by_class.setdefault(c, []).append(i)
        out[style] = {c: np.array(v) for c, v in by_class.items()}
    return out


def _plan(name: str, cfg: DataConfig, by_style) -> dict:
    """Which classes, styles and counts a split uses (decided before rendering)."""
    train_classes = sorted(set().union(*(by_style[s].keys() for s in cfg.train_styles)))
    held_classes = sorted(c for c in by_style[cfg.heldout_style] if c in set(train_classes))
    if name == "cc3m_analog":
        return dict(kind="captioned", n=cfg.train_scenes, styles=cfg.train_styles, classes=train_classes)
    if name == "flickr_analog":
        return dict(kind="captioned", n=cfg.flickr_scenes, styles=cfg.train_styles, classes=train_classes)
    if name in ("imagenet_analog", "in_style", "probe_train", "probe_test"):
        per = {"imagenet_analog": cfg.zeroshot_per_class, "in_style": cfg.zeroshot_per_class,
               "probe_train": cfg.probe_train_per_class, "probe_test": cfg.probe_test_per_class}[name]
        styles = cfg.train_styles if name == "in_style" else (cfg.heldout_style,)
        return dict(kind="classification", per_class=per, styles=styles, classes=held_classes)
    if name == "cifar10_analog":
        from paperlib.data.vocabulary import CIFAR10_CLASSES
        return dict(kind="classification", per_class=cfg.cifar_per_class, styles=(cfg.heldout_style,),
                    cifar=True, classes=list(CIFAR10_CLASSES.items()))
    raise KeyError(f"unknown split {name!r}; valid: {', '.join(SPLIT_NAMES)}")


_SPLIT_IDS = {n: i + 1 for i, n in enumerate(SPLIT_NAMES)}


def _object_count(name: str, cfg: DataConfig, style: SceneStyle, rng) -> int:
    """How many objects a captioned scene gets (uniform unless cc3m_analog is weighted)."""
    w = np.asarray(cfg.train_object_weights, np.float64)
    if name != "cc3m_analog" or np.all(w == w[0]):
        return int(rng.integers(style.n_objects[0], style.n_objects[1] + 1))
    return int(rng.choice(len(w), p=w / w.sum())) + 1


def _render_range(args):
    """Worker: render scenes [start, stop) of a split into the memory-mapped arrays."""
    (name, cfg, plan, start, stop, out_dir) = args
    vocab, banks = _vocab_and_banks(plan["bank_styles"], cfg.sprite_size, cfg.max_classes)
    by_style = _class_index(banks, vocab, cfg)
    style = split_style(name, cfg)
    side = cfg.image_size
    n_total = plan["n_total"]
    images = np.memmap(out_dir / "images.u8", np.uint8, "r+", shape=(n_total, side, side, 3))
    instances = np.memmap(out_dir / "instances.u8", np.uint8, "r+", shape=(n_total, side, side))
    objects = np.full((stop - start, MAX_OBJECTS), -1, np.int32)
    boxes = np.zeros((stop - start, MAX_OBJECTS, 4), np.int16)
    captions = []
    styles_used = []
    classes = np.array(plan["class_ids"])
    vocab_names = vocab.names  # a property that builds a list: read once
    for j, i in enumerate(range(start, stop)):
        rng = np.random.default_rng([cfg.seed, _SPLIT_IDS[name], i])
        if plan["kind"] == "classification":
            cids = [int(plan["labels_class"][i])]
        else:
            k = _object_count(name, cfg, style, rng)
            cids = [int(c) for c in rng.choice(classes, size=k, replace=False)]
        sprites, names, used = [], [], []
        for c in cids:
            options = [s for s in plan["styles"] if c in by_style[s]]
            st = options[rng.integers(len(options))]
            idx = by_style[st][c]
            sprites.append(banks[st].images[idx[rng.integers(len(idx))]])
            names.append(vocab_names[c])
            used.append(st)
        scene = render_scene(sprites, cids, names, style, rng, centred=plan["kind"] == "classification")
        images[i] = scene.image
        instances[i] = scene.instances
        objects[j, :len(cids)] = cids
        boxes[j, :len(cids)] = scene.boxes
        styles_used.append(used)
        if plan["kind"] == "captioned":
            captions.append(scene_captions(scene, cfg.captions_per_scene, style, rng))
    images.flush()
    instances.flush()
    return start, objects, boxes, captions, styles_used


class RenderedSplit(torch.utils.data.Dataset):
    """A rendered split read back from the cache (memory-mapped; cheap to open)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        meta = json.loads((self.path / "split.json").read_text())
        self.meta = meta
        self.name = meta["name"]
        self.kind = meta["kind"]
        n, side = meta["n"], meta["image_size"]
        self.images = np.memmap(self.path / "images.u8", np.uint8, "r", shape=(n, side, side, 3))
        self.instances = np.memmap(self.path / "instances.u8", np.uint8, "r", shape=(n, side, side))
        self.objects = np.load(self.path / "objects.npy")
        self.boxes = np.load(self.path / "boxes.npy")
        self.captions: list[list[str]] = meta.get("captions") or []
        self.labels = np.load(self.path / "labels.npy") if self.kind == "classification" else None
        self.classnames: list[str] = meta.get("classnames", [])
        self.class_ids: list[int] = meta.get("class_ids", [])
        self.templates: list[str] = meta.get("templates", [])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = torch.from_numpy(np.array(self.images[i])).permute(2, 0, 1)   # a copy: the split is a read-only memmap
        if self.kind == "classification":
            return img, int(self.labels[i])
        return img, self.captions[i][0]

    def batch_images(self, indices) -> torch.Tensor:
        """uint8 (B, 3, H, W) for an index array (sorted reads are fastest on a memmap)."""
        idx = np.asarray(indices)
        order = np.argsort(idx)
        out = np.empty((len(idx),) + self.images.shape[1:], np.uint8)
        out[order] = self.images[idx[order]]
        return torch.from_numpy(out).permute(0, 3, 1, 2)


def zero_shot_templates() -> list[str]:
    """The 80 OpenAI ImageNet prompt templates as format strings (from open_clip)."""
    from open_clip import OPENAI_IMAGENET_TEMPLATES
    return [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]


def _build(name: str, cfg: DataConfig, out_dir: Path) -> None:
    bank_styles = tuple(sorted(set(cfg.train_styles) | {cfg.heldout_style}))
    vocab, banks = _vocab_and_banks(bank_styles, cfg.sprite_size, cfg.max_classes)
    by_style = _class_index(banks, vocab, cfg)
    plan = _plan(name, cfg, by_style)
    plan["bank_styles"] = bank_styles
    meta = {"name": name, "kind": plan["kind"], "image_size": cfg.image_size,
            "styles": list(plan["styles"]), "data": asdict(cfg)}
    if plan["kind"] == "classification":
        if plan.get("cifar"):
            classnames = [k for k, _ in plan["classes"]]
            class_ids = [vocab.index(v) for _, v in plan["classes"]]
        else:
            class_ids = list(plan["classes"])
            classnames = [vocab.names[c] for c in class_ids]
        labels = np.repeat(np.arange(len(class_ids)), plan["per_class"])
        plan["labels_class"] = np.array(class_ids)[labels]
        plan["class_ids"] = class_ids
        n = len(labels)
        meta.update(classnames=classnames, class_ids=class_ids, templates=zero_shot_templates())
        np.save(out_dir / "labels.npy", labels)
    else:
        plan["class_ids"] = plan["classes"]
        n = plan["n"]
    plan["n_total"] = n
    meta["n"] = n
    side = cfg.image_size
    np.memmap(out_dir / "images.u8", np.uint8, "w+", shape=(n, side, side, 3)).flush()
    np.memmap(out_dir / "instances.u8", np.uint8, "w+", shape=(n, side, side)).flush()
    chunk = max(1, min(2000, n // (cfg.workers * 4) or 1))
    jobs = [(name, cfg, plan, s, min(n, s + chunk), out_dir) for s in range(0, n, chunk)]
    objects = np.full((n, MAX_OBJECTS), -1, np.int32)
    boxes = np.zeros((n, MAX_OBJECTS, 4), np.int16)
    captions: list = [None] * n
    styles_used: list = [None] * n
    t0 = time.time()
    from paperlib.progress import bar as progress_bar
    bar = progress_bar(total=n, desc=f"render {name}", unit="scene", mininterval=2)
    if cfg.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(cfg.workers, mp_context=get_context("fork")) as pool:
            results = pool.map(_render_range, jobs)
            for start, obj, box, caps, used in results:
                _store(start, obj, box, caps, used, objects, boxes, captions, styles_used)
                bar.update(len(obj))
    else:
        for job in jobs:
            start, obj, box, caps, used = _render_range(job)
            _store(start, obj, box, caps, used, objects, boxes, captions, styles_used)
            bar.update(len(obj))
    bar.close()
    seconds = time.time() - t0
    np.save(out_dir / "objects.npy", objects)
    np.save(out_dir / "boxes.npy", boxes)
    meta["captions"] = captions if plan["kind"] == "captioned" else []
    meta["sprite_styles"] = styles_used
    meta["render_seconds"] = seconds
    meta["scenes_per_second"] = n / max(seconds, 1e-9)
    write_json_atomic(out_dir / "split.json", meta)
    log.info("rendered %s: %d scenes in %.1fs (%.0f scenes/s)", name, n, seconds, n / max(seconds, 1e-9))


def _store(start, obj, box, caps, used, objects, boxes, captions, styles_used):
    stop = start + len(obj)
    objects[start:stop] = obj
    boxes[start:stop] = box
    styles_used[start:stop] = used
    if caps:
        captions[start:stop] = caps


def get_split(name: str, cfg: DataConfig, cache: ArtifactCache | None = None) -> RenderedSplit:
    """The rendered split ``name`` (rendering it into the cache the first time)."""
    if name not in SPLIT_NAMES:
        raise KeyError(f"unknown split {name!r}; valid: {', '.join(SPLIT_NAMES)}")
    cache = cache or ArtifactCache()
    if cfg.source == "real":
        from paperlib.data.realsplit import open_real_split
        return open_real_split(name, cfg, cache)
    path = cache.get_or_build("split", split_params(name, cfg), lambda d: _build(name, cfg, d))
    return RenderedSplit(path)


__all__ = ["DataConfig", "RenderedSplit", "get_split", "SPLIT_NAMES", "BACKGROUNDS",
           "TRAIN_STYLES", "HELDOUT_STYLE", "zero_shot_templates"]
_ = os
