"""The linear-probe datasets that exist offline (CleanerCLIP's Table 2 probes nine real ones).

Each probe gives a (train, test) pair of classification datasets in the project's protocol,
``ds[i] -> (uint8 [3, S, S], label)``:

* ``heldout_style``: the probe_train / probe_test renderings of the held-out sprite style;
* ``<style>_style`` (``openmoji_style``, ``tuxpaint_style``, ...): the same splits rendered in another
  style that the training set does not use (Tux Paint's stamps are photo cut-outs);
* ``fashion_mnist``: real grey product photos (Debian's ``dataset-fashion-mnist``);
* ``cifar10_analog``: the ten CIFAR-10 classes in the held-out style, each class's images split in
  half for training and testing;
* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 real scans), stratified in half.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

FIXED_PROBES = ("heldout_style", "fashion_mnist", "cifar10_analog", "digits")


class ArrayProbe(Dataset):
    """Images (N, S, S, 3) uint8 and labels (N,) as a classification dataset."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = np.ascontiguousarray(images), np.asarray(labels, np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return torch.from_numpy(self.images[i]).permute(2, 0, 1), int(self.labels[i])


def probe_names(styles=None) -> tuple[str, ...]:
    """Every valid probe name (the style probes for every sprite style)."""
    from paperlib.data.vocabulary import STYLES
    return FIXED_PROBES + tuple(f"{s}_style" for s in (styles or STYLES))


def half_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified half / half split (each class's images shuffled, first half trains)."""
    rng = np.random.default_rng([seed, 31])
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = (len(idx) + 1) // 2
        train.append(idx[:k])
        test.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def digits_arrays(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits (0-16 grey levels, 8x8) as (N, S, S, 3) uint8 images and labels."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) * (255.0 / 16.0))[:, None]
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = x.clamp(0, 255).round().to(torch.uint8).repeat(1, 3, 1, 1).permute(0, 2, 3, 1).numpy()
    return x, d.target.astype(np.int64)


def style_data(data, probe: str):
    """The data settings whose probe_train / probe_test splits render ``probe``'s style."""
    from paperlib.errors import ParamError
    style = probe[: -len("_style")]
    if probe == "heldout_style":
        return data
    if style in data.train_styles:
        raise ParamError(f"probe {probe!r}: {style!r} is a training style; a probe style must be unseen "
                         f"(training styles: {list(data.train_styles)})")
    return replace(data, heldout_style=style)


def probe_key(probe: str, data) -> dict | None:
    """What identifies a probe's data beyond its name (the rendered splits' parameters)."""
    from paperlib.data.splits import split_params
    if probe.endswith("_style"):
        d = style_data(data, probe)
        return {"splits": [split_params(s, d) for s in ("probe_train", "probe_test")]}
    if probe == "cifar10_analog":
        return {"splits": [split_params("cifar10_analog", data)], "half_split_seed": data.seed}
    if probe == "digits":
        return {"half_split_seed": data.seed}
    return None


def probe_datasets(probe: str, data, n_train: int, n_test: int, cache=None) -> tuple[Dataset, Dataset]:
    """(train, test) datasets of ``probe`` (``n_train`` / ``n_test``: Fashion-MNIST's sizes)."""
    from paperlib.data.splits import get_split
    if probe == "fashion_mnist":
        from paperlib.data.fashion_mnist import load_fashion_mnist
        return (load_fashion_mnist("train", data.image_size, limit=n_train, seed=data.seed),
                load_fashion_mnist("test", data.image_size, limit=n_test, seed=data.seed))
    if probe.endswith("_style"):
        d = style_data(data, probe)
        return get_split("probe_train", d, cache), get_split("probe_test", d, cache)
    if probe == "cifar10_analog":
        split = get_split("cifar10_analog", data, cache)
        images, labels = np.asarray(split.images), np.asarray(split.labels)
    elif probe == "digits":
        images, labels = digits_arrays(data.image_size)
    else:
        raise ValueError(f"unknown probe {probe!r}; valid: {', '.join(probe_names())}")
    tr, te = half_split(labels, data.seed)
    return ArrayProbe(images[tr], labels[tr]), ArrayProbe(images[te], labels[te])


__all__ = ["ArrayProbe", "FIXED_PROBES", "digits_arrays", "half_split", "probe_datasets", "probe_key", "probe_names",
           "style_data"]
