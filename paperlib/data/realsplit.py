"""The user's real data behind the same interface as the rendered splits (``data.source: real``).

At the paper scale ``cc3m_analog`` is a CleanCLIP / open_clip CSV of ``image,caption`` (CC3M),
``imagenet_analog`` an ImageNet-style folder with ``labels.csv`` and class names + templates,
``flickr_analog`` and ``cifar10_analog`` optional further CSV / folders.  The pipeline reads a
split through ``images`` (an array-like (N, H, W, 3) uint8), ``captions``, ``objects``,
``classnames`` / ``labels`` / ``templates`` and ``batch_images``; :class:`LazyImages` decodes
image files on indexing (CLIP's resize + centre crop, a thread pool), so nothing of the size of
CC3M is ever held in memory.

Unreadable images are found once, when the split is first opened (every file decoded, in
threads), counted in the cache's ``split.json`` and left out; the scan is cached, so later runs
open the split at once.  The cache key holds what the data is, not only where it lies
(:func:`content_key`): a repaired image, a reordered or shortened CSV is a new key, scanned again.
Object labels (which vocabulary classes a caption mentions, used for the attacks' eligibility
rules) are read off the captions with whole-word matching.
"""
from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from paperlib.data.realkey import CAPTION_RULE, REAL_SPLITS, _image_stats, content_key  # noqa: F401 (re-exported)
from paperlib.data.realkey import real_dataset, real_key  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)


class LazyImages:
    """(N, H, W, 3) uint8 images of a file-backed dataset, decoded when indexed."""

    file_backed = True

    def __init__(self, dataset, rows: np.ndarray, image_size: int, threads: int = 8):
        self.dataset = dataset
        self.rows = np.asarray(rows, np.int64)
        self.shape = (len(self.rows), image_size, image_size, 3)
        self.dtype = np.uint8
        self.threads = max(1, threads)

    def __len__(self) -> int:
        return self.shape[0]

    def _one(self, i: int) -> np.ndarray:
        return self.dataset._load(int(self.rows[i])).permute(1, 2, 0).numpy()

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self._one(int(key) % len(self))
        idx = np.arange(len(self))[key] if isinstance(key, slice) else np.asarray(key, np.int64)
        out = np.empty((len(idx),) + self.shape[1:], np.uint8)
        if len(idx):
            with ThreadPoolExecutor(self.threads) as pool:
                for j, img in enumerate(pool.map(self._one, idx.tolist())):
                    out[j] = img
        return out

    def __array__(self, dtype=None, copy=None):
        raise TypeError("LazyImages would decode every image at once; index it instead (images[a:b])")


def caption_objects(captions: list[list[str]], names: list[str], max_objects: int) -> np.ndarray:
    """(N, max_objects) vocabulary ids of the classes each caption mentions (-1 padded): the words
    and the plural rule of :func:`paperlib.attacks.base.mentions`, so eligibility and poisoning
    agree on what a caption names; the first mentions win when a caption names more than
    ``max_objects`` classes.  Names are indexed by their first word, so a caption costs one
    dictionary look-up per word (CC3M has millions of captions)."""
    from paperlib.data.names import caption_words, name_at
    first: dict[str, list[tuple[int, list[str]]]] = {}
    for cid, name in enumerate(names):
        words = caption_words(name)
        if words:
            first.setdefault(words[0], []).append((cid, words))

    def candidates(token: str):
        yield from first.get(token, ())
        for suffix in ("s", "es"):      # a one-word name in the plural: "bananas" -> "banana"
            if token.endswith(suffix) and len(token) > len(suffix):
                yield from first.get(token[:-len(suffix)], ())

    out = np.full((len(captions), max_objects), -1, np.int32)
    for i, caps in enumerate(captions):
        found: list[int] = []
        for cap in caps:
            toks = caption_words(cap)
            for k in range(len(toks)):
                for cid, words in candidates(toks[k]):
                    if cid not in found and name_at(toks, k, words):
                        found.append(cid)
        out[i, :min(len(found), max_objects)] = found[:max_objects]
    return out


class RealSplit:
    """A split of the user's data with the rendered splits' interface."""

    def __init__(self, name: str, dataset, valid: np.ndarray, image_size: int, threads: int,
                 objects: np.ndarray | None = None):
        self.name = name
        self.dataset = dataset
        self.kind = "captioned" if hasattr(dataset, "caption") else "classification"
        self.images = LazyImages(dataset, valid, image_size, threads)
        self.meta = {"name": name, "kind": self.kind, "n": int(len(valid)), "image_size": image_size,
                     "source": "real"}
        if self.kind == "captioned":
            self.captions = [[dataset.caption(int(i))] for i in valid]
            self.labels, self.classnames, self.class_ids, self.templates = None, [], [], []
        else:
            self.captions = []
            self.labels = np.asarray(dataset.labels)[valid]
            self.classnames, self.templates = list(dataset.classnames), list(dataset.templates)
            self.class_ids = list(range(len(self.classnames)))
        from paperlib.data.dataconfig import MAX_OBJECTS
        self.objects = objects if objects is not None else np.full((len(valid), MAX_OBJECTS), -1, np.int32)
        self.boxes = None

    @property
    def instances(self):
        raise ValueError(f"{self.name}: exact object masks exist only for the embedded scenes "
                         f"(EftCLIP's exact oracle); with real data use detection.oracles: [fastsam]")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = torch.from_numpy(self.images[int(i)]).permute(2, 0, 1)
        return (img, int(self.labels[i])) if self.kind == "classification" else (img, self.captions[i][0])

    def batch_images(self, indices) -> torch.Tensor:
        return torch.from_numpy(self.images[np.asarray(indices)]).permute(0, 3, 1, 2)


def readable_rows(dataset, threads: int) -> np.ndarray:
    """Rows whose image decodes (every file opened once, ``threads`` at a time); the others are
    counted and logged, never fatal."""
    from paperlib.progress import bar as progress_bar

    from paperlib.data.realdata import UnreadableImage

    def ok(i: int) -> bool:
        try:
            dataset._load(i)
            return True
        except UnreadableImage:
            return False
    with ThreadPoolExecutor(max(1, threads)) as pool:
        flags = list(progress_bar(pool.map(ok, range(len(dataset))), total=len(dataset), desc="scan images",
                          mininterval=5))
    bad = [dataset.image_path(i) for i, f in enumerate(flags) if not f]
    if bad:
        log.warning("%d of %d images unreadable and skipped; first: %s", len(bad), len(dataset), bad[:5])
    return np.flatnonzero(flags).astype(np.int64)


def open_real_split(name: str, cfg, cache) -> RealSplit:
    """The real split ``name`` of data config ``cfg`` (its readable rows scanned once, cached
    under the key of its content: see :func:`content_key`)."""
    from paperlib.data.dataconfig import MAX_OBJECTS, split_params
    dataset = real_dataset(name, cfg)
    location = getattr(cfg, REAL_SPLITS[name])

    def build(work: Path):
        from paperlib.cache import write_json_atomic
        from paperlib.data.vocabulary import build_vocabulary
        valid = readable_rows(dataset, cfg.workers)
        np.save(work / "valid.npy", valid)
        info = {"rows": len(dataset), "readable": int(len(valid)), "skipped": int(len(dataset) - len(valid)),
                "source": str(location)}
        if hasattr(dataset, "caption"):
            caps = [[dataset.caption(int(i))] for i in valid]
            np.save(work / "objects.npy", caption_objects(caps, build_vocabulary().names, MAX_OBJECTS))
        write_json_atomic(work / "split.json", info)
        log.info("%s: %d of %d images readable (%d skipped)", name, info["readable"], info["rows"], info["skipped"])

    # the stat of the images comes before their scan: a file edited in between has a newer
    # mtime than its key says, so it is scanned again next time (never kept with a stale scan)
    path = cache.get_or_build("split", split_params(name, cfg, dataset), build)
    valid = np.load(path / "valid.npy")
    objects = np.load(path / "objects.npy") if (path / "objects.npy").is_file() else None
    split = RealSplit(name, dataset, valid, cfg.image_size, cfg.workers, objects)
    split.meta.update(json.loads((path / "split.json").read_text()))
    return split


__all__ = ["REAL_SPLITS", "LazyImages", "RealSplit", "caption_objects", "readable_rows", "content_key",
           "real_dataset", "real_key", "open_real_split"]
