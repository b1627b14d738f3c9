"""What identifies a real split: where its files are and a hash of what they hold (part of its cache key)."""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

REAL_SPLITS = {"cc3m_analog": "train_csv", "flickr_analog": "flickr_csv", "imagenet_analog": "imagenet_dir",
               "cifar10_analog": "cifar10_dir"}
CAPTION_RULE = 3   # 3: the words and plural rule of attacks.base.mentions (part of the split's key)


_STAT_CHUNK = 4096   # image files stat-ed per thread task (one task per file would cost more than the stat)


def _image_stats(dataset, threads: int) -> np.ndarray:
    """(N, 2) int64: size and modification time (ns) of every row's image file, -1 where absent."""
    n = len(dataset)

    def chunk(start: int) -> np.ndarray:
        out = np.full((min(_STAT_CHUNK, n - start), 2), -1, np.int64)
        for j in range(len(out)):
            try:
                st = os.stat(dataset.image_path(start + j))
            except OSError:
                continue
            out[j] = st.st_size, st.st_mtime_ns
        return out
    with ThreadPoolExecutor(max(1, threads)) as pool:
        parts = list(pool.map(chunk, range(0, n, _STAT_CHUNK)))
    return np.concatenate(parts) if parts else np.empty((0, 2), np.int64)


def content_key(dataset, threads: int) -> str:
    """What a real split holds, as a hash: the SHA-256 of the CSV bytes the dataset parsed (rows,
    their order, the captions or labels, the image paths), the class names and templates of a
    zero-shot folder, and every image file's size and modification time.

    Why size and mtime and not a digest of each image: the split's key is asked for by every
    artifact built on it (tokens, models, evaluations), so it is computed each time a run needs
    it; hashing the images would read all of CC3M (hundreds of GB) every time, one ``stat`` per
    file takes seconds.  Any edit through the file system (a repaired file written or copied
    over, a file deleted or added back) changes the size or the mtime, so the split is scanned
    again; what it misses is a rewrite whose old mtime is put back on purpose (``touch -r``,
    ``cp -p`` of a file of the same size): touch such a file afterwards.  A missing file counts
    as such (size -1), so its coming back is an edit too.  Reading the files changes nothing
    here, so unchanged data keeps its key and its cached scan."""
    h = hashlib.sha256(dataset.table_sha256.encode())
    if hasattr(dataset, "classnames"):
        h.update(json.dumps([list(dataset.classnames), list(dataset.templates)]).encode())
    h.update(_image_stats(dataset, threads).tobytes())
    return h.hexdigest()[:20]


def real_dataset(name: str, cfg):
    """The dataset behind real split ``name``: its CSV read, no image opened."""
    from paperlib.config import ParamError
    from paperlib.data.realdata import CaptionCSV, ImageFolderZeroShot
    if name not in REAL_SPLITS:
        raise ParamError(f"split {name!r} has no real-data counterpart; real data provides "
                         f"{', '.join(REAL_SPLITS)} (set data.{', data.'.join(REAL_SPLITS.values())})")
    key_name = REAL_SPLITS[name]
    location = getattr(cfg, key_name)
    if not location:
        raise ParamError(f"data.{key_name} is not set: {name} needs it with data.source=real "
                         f"(a CSV of image,caption or an ImageNet-style folder with labels.csv)")
    return (CaptionCSV(location, cfg.image_size) if key_name.endswith("csv")
            else ImageFolderZeroShot(location, cfg.image_size))


def real_key(name: str, cfg, dataset=None) -> dict:
    """The part of real split ``name``'s cache key that names its data: where it is and what it
    holds (:func:`content_key` of ``dataset``, opened here when not given).  Data that cannot be
    opened has content ``None``: a key for plans and look-ups, never one a split is built under
    (opening it raises the reason)."""
    if dataset is None:
        try:
            dataset = real_dataset(name, cfg)
        except (OSError, KeyError, ValueError):
            dataset = None
    return {"real": getattr(cfg, REAL_SPLITS[name]), "caption_rule": CAPTION_RULE,
            "content": None if dataset is None else content_key(dataset, cfg.workers)}


__all__ = ["REAL_SPLITS", "CAPTION_RULE", "content_key", "real_dataset", "real_key"]
