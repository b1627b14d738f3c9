"""One image file read like CLIP reads it (shorter side resized, centre-cropped, not normalised), or UnreadableImage."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


# Errors PIL (or the OS) raises for missing, truncated or corrupt files.
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


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
