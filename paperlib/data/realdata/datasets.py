"""The papers' datasets: a CSV of image,caption rows (CC3M) and an ImageNet-style zero-shot folder."""
from __future__ import annotations

import copy
import hashlib
import io
import logging
import os
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from paperlib.data.realdata.classes import load_class_metadata
from paperlib.data.realdata.image import UnreadableImage, load_image

log = logging.getLogger(__name__)


def _resolve(root: str, p: str) -> str:
    return p if os.path.isabs(p) else os.path.join(root, p)


def _read_table(path: str, required: Sequence[str], delimiter: str, what: str) -> tuple[pd.DataFrame, str]:
    """Read a CSV as strings and check the required columns, naming what exists; also the
    SHA-256 of the very bytes parsed (part of a real split's cache key: a digest taken from a
    second read could describe a file edited in between)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: file not found: {path}")
    with open(path, "rb") as fh:
        raw = fh.read()
    df = pd.read_csv(io.BytesIO(raw), sep=delimiter, dtype=str, keep_default_na=False)
    present = [str(c) for c in df.columns]
    missing = [c for c in required if c not in present]
    if missing:
        raise KeyError(
            f"{what} {path}: missing column(s) {missing}; columns present: {present}"
            f" (delimiter {delimiter!r})"
        )
    return df, hashlib.sha256(raw).hexdigest()


class _ImageRows(Dataset):
    """Shared logic for datasets whose rows point at image files."""

    root: str
    image_size: int
    _images: np.ndarray  # object array of path strings as written in the file

    def __len__(self) -> int:
        return len(self._images)

    def image_path(self, i: int) -> str:
        """Absolute/resolved path of row ``i`` (relative paths are under ``root``)."""
        return _resolve(self.root, str(self._images[i]))

    def _load(self, i: int) -> torch.Tensor:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for dataset of length {n}")
        i = i % n
        return load_image(self.image_path(i), self.image_size, index=i)

    def valid_indices(self, mode: str = "exists", warn_first: int = 5) -> np.ndarray:
        """Scan all rows once and return the indices whose image is usable.

        mode ``"exists"`` only checks the file exists (fast, fine for CC3M);
        ``"decode"`` fully decodes each image (slow, catches corrupt files).
        """
        if mode not in ("exists", "decode"):
            raise ValueError(f"valid_indices mode must be 'exists' or 'decode', got {mode!r}")
        keep: list[int] = []
        bad: list[str] = []
        for i in range(len(self)):
            path = self.image_path(i)
            if mode == "exists":
                ok = os.path.isfile(path)
            else:
                try:
                    load_image(path, self.image_size, index=i)
                    ok = True
                except UnreadableImage:
                    ok = False
            if ok:
                keep.append(i)
            else:
                bad.append(path)
        if bad:
            log.warning(
                "%s: %d of %d images unusable (mode=%s); first: %s",
                type(self).__name__, len(bad), len(self), mode, bad[:warn_first],
            )
        return np.asarray(keep, dtype=np.int64)

    def select(self, indices: Sequence[int]):
        """A view restricted to ``indices`` that keeps all attributes
        (``classnames``, ``templates``), unlike ``torch.utils.data.Subset``."""
        idx = np.asarray(indices, dtype=np.int64)
        view = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray) and value.shape[:1] == self._images.shape[:1]:
                setattr(view, name, value[idx])
        return view


class CaptionCSV(_ImageRows):
    """Image-caption pairs from a CSV (CleanCLIP / open_clip ``csv`` format).

    Image paths are relative to the CSV's folder (absolute paths are used as
    is). Nothing is opened at construction; see the module docstring for how
    unreadable images are handled.
    """

    def __init__(
        self,
        csv_path: str | os.PathLike,
        image_size: int,
        image_key: str = "image",
        caption_key: str = "caption",
        delimiter: str = ",",
    ):
        self.csv_path = os.fspath(csv_path)
        self.root = os.path.dirname(os.path.abspath(self.csv_path))
        self.image_size = int(image_size)
        df, self.table_sha256 = _read_table(self.csv_path, [image_key, caption_key], delimiter, "caption CSV")
        self._images = df[image_key].to_numpy(dtype=object)
        self._captions = df[caption_key].to_numpy(dtype=object)

    def caption(self, i: int) -> str:
        return str(self._captions[i])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        return self._load(i), str(self._captions[i])


class ImageFolderZeroShot(_ImageRows):
    """ImageNet-style evaluation folder as CleanCLIP expects it.

    ``root/labels.csv`` has columns ``image,label`` (integer class index, image
    path relative to ``root``); class names/templates come from
    :func:`load_class_metadata`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int,
        image_key: str = "image",
        label_key: str = "label",
        delimiter: str = ",",
    ):
        self.root = os.path.abspath(os.fspath(root))
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"zero-shot folder not found: {self.root}")
        self.image_size = int(image_size)
        self.classnames, self.templates = load_class_metadata(self.root)
        csv_path = os.path.join(self.root, "labels.csv")
        df, self.table_sha256 = _read_table(csv_path, [image_key, label_key], delimiter, "labels CSV")
        raw = df[label_key].to_numpy(dtype=object)
        try:
            labels = np.asarray([int(str(v).strip()) for v in raw], dtype=np.int64)
        except ValueError as exc:
            raise ValueError(
                f"{csv_path}: column {label_key!r} must hold integer class indices: {exc}"
            ) from exc
        k = len(self.classnames)
        bad = np.flatnonzero((labels < 0) | (labels >= k))
        if bad.size:
            raise ValueError(
                f"{csv_path}: label {int(labels[bad[0]])} at row {int(bad[0])} is outside "
                f"0..{k - 1} (there are {k} classes)"
            )
        self._images = df[image_key].to_numpy(dtype=object)
        self.labels = labels

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self._load(i), int(self.labels[i])
