"""Loaders for the papers' own data formats, used at the "paper" scale.

The reproduced papers (via CleanCLIP's code base) train on CC3M given as a CSV
of ``image,caption`` rows and evaluate zero-shot on an ImageNet validation
folder with ``labels.csv`` plus a ``classes.py`` file of class names and prompt
templates. This module reads both formats and yields items that follow the
project's dataset protocol (see the shared design):

* captioned:      ``ds[i] -> (uint8 tensor [3, S, S], caption: str)``
* classification: ``ds[i] -> (uint8 tensor [3, S, S], label: int)`` with
  ``ds.classnames`` and ``ds.templates`` (format strings with one ``"{}"``).

Images are preprocessed like CLIP (shorter side resized to ``S`` with bicubic
interpolation, then centre-cropped to ``S x S``) but are NOT normalised:
attacks act in pixel space, and normalisation happens later on the device.

Unreadable images (chosen design)
---------------------------------
A 3M-row CSV cannot be validated up front by opening every image, and web
scraped datasets always have some missing or corrupt files. So:

1. ``ds[i]`` raises :class:`UnreadableImage` (carrying the row index, the path
   and the reason) instead of a generic PIL/OS error; nothing is opened at
   construction.
2. :class:`SkippingLoader` wraps a ``torch.utils.data.DataLoader``; the
   training/evaluation loop iterates it exactly like a DataLoader
   (``for images, captions in loader``). Bad rows are dropped from their batch
   (so a batch may be smaller than ``batch_size``), counted in the main process
   (``loader.n_skipped``: unique files, correct with worker processes too) and
   the first few are logged as warnings by file name. This works with
   ``num_workers > 0`` because the skip information travels with each batch
   rather than living in per-worker counters.
3. Optionally, ``ds.valid_indices(mode)`` scans the rows once (``"exists"``:
   cheap file check; ``"decode"``: full decode) and ``ds.select(indices)``
   returns a filtered view, for when many files are known to be missing and
   ragged batches are unwanted.

The lower-level pieces (:class:`SkipUnreadable`, :func:`collate_skipping`) are
public so a caller that builds its own DataLoader can reuse them.

``classes.py`` is never imported or executed: it is parsed with :mod:`ast` and
only literal class-name lists and simple template lambdas are accepted.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import io
import json
import logging
import os
import string
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, default_collate

log = logging.getLogger(__name__)

__all__ = [
    "UnreadableImage",
    "Unreadable",
    "CaptionCSV",
    "ImageFolderZeroShot",
    "SkipUnreadable",
    "SkippingLoader",
    "collate_skipping",
    "load_image",
    "clip_resize_crop",
    "parse_classes_py",
    "load_class_metadata",
    "default_templates",
    "check_template",
]

# Errors PIL (or the OS) raises for missing, truncated or corrupt files.
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


# --------------------------------------------------------------------------- #
# Image loading
# --------------------------------------------------------------------------- #
class UnreadableImage(Exception):
    """An image referenced by a dataset row could not be read or decoded.

    A dedicated type lets loops skip exactly this failure while letting real
    bugs (e.g. a wrong ``image_size``) propagate.
    """

    def __init__(self, path: str, reason: str, index: int | None = None):
        self.path = str(path)
        self.reason = str(reason)
        self.index = index
        where = f" (row {index})" if index is not None else ""
        super().__init__(f"unreadable image {self.path!r}{where}: {self.reason}")

    def __reduce__(self):  # keep the fields when pickled out of a worker process
        return (UnreadableImage, (self.path, self.reason, self.index))


def clip_resize_crop(img: Image.Image, image_size: int) -> torch.Tensor:
    """CLIP's geometric preprocessing without normalisation.

    Resize so the shorter side equals ``image_size`` (bicubic, as CLIP/open_clip
    do), centre-crop to a square, and return a uint8 tensor [3, S, S].
    """
    if int(image_size) <= 0:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    size = int(image_size)
    img = img.convert("RGB")
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = max(size, int(size * long / short))
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), resample=Image.Resampling.BICUBIC)
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def _pil_open(path: str):
    """PIL's own ``Image.open``.  Importing ultralytics (the EftCLIP oracle) replaces ``Image.open``
    process-wide with a wrapper that, on a file PIL cannot identify, tries to install the pi-heif
    plugin and, offline, raises ModuleNotFoundError instead of PIL's error; the original it keeps
    is used when present."""
    import sys
    original = getattr(sys.modules.get("ultralytics.utils.patches"), "_image_open", None)
    return (original or Image.open)(path)


def load_image(path: str, image_size: int, index: int | None = None) -> torch.Tensor:
    """Open ``path`` and preprocess it; failures become :class:`UnreadableImage`."""
    try:
        with _pil_open(path) as im:
            im.load()
            return clip_resize_crop(im, image_size)
    except _IMAGE_ERRORS as exc:
        raise UnreadableImage(path, f"{type(exc).__name__}: {exc}", index) from exc


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


# --------------------------------------------------------------------------- #
# Captioned CSV (CC3M as used by CleanCLIP / open_clip)
# --------------------------------------------------------------------------- #
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


# --------------------------------------------------------------------------- #
# ImageNet-style zero-shot folder (CleanCLIP's evaluation layout)
# --------------------------------------------------------------------------- #
def check_template(t: Any, where: str) -> str:
    """Validate that a template is a string with exactly one ``"{}"`` field."""
    if not isinstance(t, str):
        raise ValueError(f"{where}: template must be a string, got {type(t).__name__}: {t!r}")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(t) if f is not None]
    except ValueError as exc:
        raise ValueError(f"{where}: template {t!r} is not a valid format string: {exc}") from exc
    if fields != [""]:
        raise ValueError(
            f"{where}: template {t!r} must contain exactly one '{{}}' placeholder "
            f"(e.g. 'a photo of a {{}}.'); found fields {fields}"
        )
    return t


def default_templates() -> list[str]:
    """open_clip's 80 OpenAI ImageNet prompt templates as format strings."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]


def _escape(s: str) -> str:
    return s.replace("{", "{{").replace("}", "}}")


def _template_from_expr(node: ast.expr, arg: str, where: str) -> str:
    """Turn the body of ``lambda arg: ...`` into a format string.

    Accepted bodies: an f-string using ``{arg}`` (no conversion/format spec),
    a ``+`` concatenation of string literals and ``arg``, or
    ``"...{}...".format(arg)``.
    """
    if isinstance(node, ast.JoinedStr):
        out = []
        for part in node.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                out.append(_escape(part.value))
            elif (
                isinstance(part, ast.FormattedValue)
                and isinstance(part.value, ast.Name)
                and part.value.id == arg
                and part.conversion == -1
                and part.format_spec is None
            ):
                out.append("{}")
            else:
                raise ValueError(f"{where}: f-string may only interpolate {{{arg}}} plainly")
        return "".join(out)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _template_from_expr(node.left, arg, where) + _template_from_expr(node.right, arg, where)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _escape(node.value)
    if isinstance(node, ast.Name) and node.id == arg:
        return "{}"
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Constant)
        and isinstance(node.func.value.value, str)
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id == arg
    ):
        return node.func.value.value
    raise ValueError(
        f"{where}: unsupported template expression {ast.dump(node)[:80]}; use "
        f"lambda c: f\"...{{c}}...\" or a plain string with '{{}}'"
    )


def _template_from_node(node: ast.expr, where: str) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return check_template(node.value, where)
    if isinstance(node, ast.Lambda):
        a = node.args
        if len(a.args) != 1 or a.posonlyargs or a.kwonlyargs or a.vararg or a.kwarg or a.defaults:
            raise ValueError(f"{where}: template lambda must take exactly one argument")
        return check_template(_template_from_expr(node.body, a.args[0].arg, where), where)
    raise ValueError(
        f"{where}: template must be a string literal or a lambda, got {type(node).__name__}"
    )


def parse_classes_py(path: str | os.PathLike) -> tuple[list[str], list[str] | None]:
    """Safely read CleanCLIP's ``classes.py`` without executing it.

    The file may contain only a docstring/comments and the assignments
    ``classes = [<string literals>]`` and ``templates = [<lambdas or strings>]``.
    Anything else (imports, calls, other names) is rejected with the line number.
    Returns (classes, templates or None when the file defines none).
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8") as fh:
        src = fh.read()
    try:
        tree = ast.parse(src, filename=path, mode="exec")
    except SyntaxError as exc:
        raise ValueError(f"{path}: not valid Python: {exc}") from exc
    found: dict[str, ast.expr] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstring / bare literal
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id in ("classes", "templates")
        ):
            found[stmt.targets[0].id] = stmt.value
            continue
        raise ValueError(
            f"{path}:{stmt.lineno}: refusing to load classes.py: only "
            f"'classes = [...]' and 'templates = [...]' assignments are allowed, "
            f"found {type(stmt).__name__} statement (the file is parsed, never executed)"
        )
    if "classes" not in found:
        raise KeyError(f"{path}: no 'classes = [...]' assignment; valid names: classes, templates")
    try:
        classes = ast.literal_eval(found["classes"])
    except ValueError as exc:
        raise ValueError(f"{path}: 'classes' must be a literal list of strings") from exc
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{path}: 'classes' must be a list of strings")
    templates = None
    if "templates" in found:
        node = found["templates"]
        if not isinstance(node, (ast.List, ast.Tuple)):
            raise ValueError(f"{path}: 'templates' must be a list of lambdas or strings")
        templates = [
            _template_from_node(el, f"{path}: templates[{k}]") for k, el in enumerate(node.elts)
        ]
    return list(classes), templates


def _parse_classes_json(path: str) -> tuple[list[str], list[str] | None]:
    with open(path, encoding="utf-8") as fh:
        meta = json.load(fh)
    if not isinstance(meta, dict) or "classes" not in meta:
        raise KeyError(f"{path}: expected an object with key 'classes' (and optional 'templates')")
    unknown = sorted(set(meta) - {"classes", "templates"})
    if unknown:
        raise KeyError(f"{path}: unknown key(s) {unknown}; valid keys: classes, templates")
    classes = meta["classes"]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{path}: 'classes' must be a list of strings")
    templates = meta.get("templates")
    if templates is not None:
        if not isinstance(templates, list):
            raise ValueError(f"{path}: 'templates' must be a list of strings")
        templates = [check_template(t, f"{path}: templates[{k}]") for k, t in enumerate(templates)]
    return classes, templates


def load_class_metadata(root: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Class names and templates for a zero-shot folder.

    ``classes.json`` (declarative) is preferred when present, else
    ``classes.py`` (parsed safely). Missing templates default to open_clip's
    OpenAI ImageNet templates.
    """
    root = os.fspath(root)
    jpath, ppath = os.path.join(root, "classes.json"), os.path.join(root, "classes.py")
    if os.path.isfile(jpath):
        classes, templates = _parse_classes_json(jpath)
    elif os.path.isfile(ppath):
        classes, templates = parse_classes_py(ppath)
    else:
        raise FileNotFoundError(
            f"zero-shot folder {root}: needs class metadata in classes.json "
            f'({{"classes": [...], "templates": [...]}}) or classes.py '
            f"(classes = [...]; templates = [lambda c: f\"...{{c}}...\"])"
        )
    if not classes:
        raise ValueError(f"zero-shot folder {root}: class list is empty")
    if not templates:
        templates = default_templates()
    return classes, templates


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


# --------------------------------------------------------------------------- #
# Skipping unreadable rows inside a DataLoader
# --------------------------------------------------------------------------- #
class Unreadable(NamedTuple):
    """Marker returned in place of an item whose image could not be read."""

    path: str
    reason: str
    index: int | None


class SkipUnreadable(Dataset):
    """Dataset wrapper: unreadable items become :class:`Unreadable` markers.

    Returning a marker (instead of raising) lets a worker process keep going
    and report the bad file to the main process through the batch.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        try:
            return self.dataset[i]
        except UnreadableImage as exc:
            return Unreadable(exc.path, exc.reason, exc.index)


def collate_skipping(batch: list) -> tuple[Any, list[Unreadable]]:
    """Collate the readable items; return (collated or None, skipped markers)."""
    good = [b for b in batch if not isinstance(b, Unreadable)]
    bad = [b for b in batch if isinstance(b, Unreadable)]
    return (default_collate(good) if good else None), bad


class SkippingLoader:
    """A DataLoader that drops rows with unreadable images and counts them.

    Iterate it like a DataLoader: each batch is what ``default_collate`` makes
    of the readable items (e.g. ``[uint8 images [B,3,S,S], captions]``); a batch
    made only of bad rows is skipped. ``n_skipped`` is the number of distinct
    unreadable files seen so far (not double-counted across epochs);
    ``skipped_files`` lists them. The first ``warn_first`` are logged as
    warnings by file name, and each pass ends with a one-line summary.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool = False,
        num_workers: int = 0,
        seed: int | None = None,
        drop_last: bool = False,
        warn_first: int = 5,
        **loader_kwargs: Any,
    ):
        if "collate_fn" in loader_kwargs:
            raise ValueError("SkippingLoader sets collate_fn itself; do not pass one")
        generator = None
        if seed is not None:
            generator = torch.Generator()
            generator.manual_seed(int(seed))
        self.dataset = dataset
        self.warn_first = int(warn_first)
        self.loader = DataLoader(
            SkipUnreadable(dataset),
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=num_workers,
            drop_last=drop_last,
            generator=generator,
            collate_fn=collate_skipping,
            **loader_kwargs,
        )
        self._skipped: dict[str, str] = {}

    @property
    def n_skipped(self) -> int:
        return len(self._skipped)

    @property
    def skipped_files(self) -> list[str]:
        return list(self._skipped)

    def __len__(self) -> int:
        return len(self.loader)

    def _record(self, bad: list[Unreadable]) -> None:
        for u in bad:
            if u.path in self._skipped:
                continue
            self._skipped[u.path] = u.reason
            if len(self._skipped) <= self.warn_first:
                log.warning("skipping unreadable image %s (%s)", u.path, u.reason)
                if len(self._skipped) == self.warn_first:
                    log.warning("further unreadable images are counted without a warning each")

    def __iter__(self) -> Iterator[Any]:
        this_pass = 0
        for collated, bad in self.loader:
            this_pass += len(bad)
            self._record(bad)
            if collated is not None:
                yield collated
        if this_pass:
            log.warning(
                "skipped %d unreadable row(s) in this pass (%d distinct files so far)",
                this_pass, self.n_skipped,
            )
