"""Fashion-MNIST (real images) as a zero-shot / linear-probe classification set.

Fashion-MNIST is the one real-photo benchmark available offline (Debian package
``dataset-fashion-mnist``). It gives the small models an out-of-distribution,
real-data check next to the synthetic composite scenes. The idx files are
parsed with numpy (no torchvision download logic, no network).

Items follow the classification protocol: ``ds[i] -> (uint8 [3, S, S], label)``
where the 28x28 grey image is resized to ``S`` (bilinear) and replicated to
three channels; ``ds.classnames`` are prompt-friendly names and
``ds.templates`` are format strings with one ``"{}"``.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = [
    "FASHION_MNIST_CLASSNAMES",
    "FASHION_MNIST_TEMPLATES",
    "FASHION_MNIST_FILES",
    "DEFAULT_ROOT",
    "FashionMNIST",
    "load_fashion_mnist",
    "read_idx",
    "default_root",
]

# Lower-case, prompt-ready versions of the official label names
# (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot).
FASHION_MNIST_CLASSNAMES = [
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
]
FASHION_MNIST_TEMPLATES = [
    "a photo of a {}.",
    "a photo of the {}.",
    "a black and white photo of a {}.",
]
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
_PACKAGE = "dataset-fashion-mnist"

# idx type codes -> big-endian numpy dtypes
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an idx file (optionally gzip-compressed) into a numpy array.

    Format: two zero bytes, a type code, the number of dimensions, then one
    big-endian uint32 per dimension, then the data (big-endian).
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an idx file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: unknown idx type code 0x{code:02x}; valid: "
            + ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated idx header")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{path}: idx payload has {len(data) - header} bytes, expected {expected} for shape {shape}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def default_root() -> Path:
    """Where the Debian package puts the files (``paperlib.assets`` decides when present)."""
    try:
        from paperlib import assets
    except ImportError:
        return Path(DEFAULT_ROOT)
    fn = getattr(assets, "fashion_mnist_dir", None)
    if fn is None:
        return Path(DEFAULT_ROOT)
    return Path(fn(must_exist=False))


def _missing(path: Path) -> FileNotFoundError:
    how = f"install the Debian package `{_PACKAGE}` (apt-get install {_PACKAGE}) or run `make setup`"
    try:
        from paperlib.assets import AssetMissingError
    except ImportError:
        return FileNotFoundError(f"Fashion-MNIST file not found at {path}. To obtain it: {how}.")
    return AssetMissingError("Fashion-MNIST file", path, how)


class FashionMNIST(Dataset):
    """Fashion-MNIST split held as raw 28x28 uint8; resized per item.

    Keeping the raw arrays (47 MB for train) and resizing on access avoids
    materialising 60000 x 3 x S x S tensors.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, image_size: int,
                 indices: np.ndarray | None = None, split: str = ""):
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [N,H,W], got {images.dtype} {images.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if int(image_size) <= 0:
            raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
        self.images = images
        self.labels = labels.astype(np.int64)
        self.image_size = int(image_size)
        self.indices = np.arange(len(images)) if indices is None else np.asarray(indices)
        self.split = split
        self.classnames = list(FASHION_MNIST_CLASSNAMES)
        self.templates = list(FASHION_MNIST_TEMPLATES)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(self.images[i]).float()[None, None]
        s = self.image_size
        if x.shape[-2:] != (s, s):
            # antialias only matters when shrinking below 28 px
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        x = x.round_().clamp_(0, 255).to(torch.uint8)[0]
        return x.expand(3, s, s).contiguous(), int(self.labels[i])


def load_fashion_mnist(split: str = "train", image_size: int = 64,
                       root: str | os.PathLike | None = None,
                       limit: int | None = None, seed: int = 0) -> FashionMNIST:
    """Load a Fashion-MNIST split, optionally a deterministic random subset.

    ``limit`` keeps ``limit`` examples drawn without replacement with
    ``numpy.random.default_rng(seed)`` (kept in original order; ``ds.indices``
    records which rows).
    """
    if split not in FASHION_MNIST_FILES:
        raise ValueError(f"unknown Fashion-MNIST split {split!r}; valid: {sorted(FASHION_MNIST_FILES)}")
    base = Path(root) if root is not None else default_root()
    img_name, lab_name = FASHION_MNIST_FILES[split]
    paths = [base / img_name, base / lab_name]
    for p in paths:
        if not p.is_file():
            raise _missing(p)
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"Fashion-MNIST {split}: inconsistent files {paths[0].name} {images.shape} "
            f"and {paths[1].name} {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(FASHION_MNIST_CLASSNAMES)):
        raise ValueError(f"{paths[1]}: labels outside 0..9")
    indices = np.arange(len(images))
    if limit is not None:
        if int(limit) <= 0:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        if int(limit) < len(images):
            rng = np.random.default_rng(seed)
            indices = np.sort(rng.choice(len(images), size=int(limit), replace=False))
    if len(indices) < len(images):
        images, labels = images[indices], labels[indices]
    return FashionMNIST(images.astype(np.uint8, copy=False), labels, image_size,
                        indices=indices, split=split)
