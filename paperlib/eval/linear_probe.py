"""Linear probe on frozen image features.

Linear-probe accuracy measures how much class information the (possibly
poisoned, then defended) image encoder still carries, independently of the text
tower. Following CLIP's evaluation, a logistic regression is fitted on frozen
features, with the L2 strength chosen by a sweep on a held-out validation split
of the training set, then refitted on the full training set.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import Dataset

from paperlib.data.realdata import SkippingLoader

__all__ = ["C_GRID", "extract_features", "linear_probe", "topk_accuracy"]

# Inverse regularisation strengths swept when C is None (log grid, ascending).
C_GRID: tuple[float, ...] = tuple(float(10.0 ** k) for k in range(-4, 3))


@torch.no_grad()
def extract_features(
    encode_fn: Callable[[torch.Tensor], torch.Tensor],
    dataset: Dataset,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``encode_fn`` over a classification dataset; return (X float32 [N,D], y int64 [N]).

    ``encode_fn`` receives float images in [0, 1] of shape (B, 3, H, W) on
    ``device`` and must return (B, D) features; CLIP mean/std normalisation and
    ``model.eval()`` are the caller's job (they belong with the model). Rows
    whose image cannot be read (real-data folders) are skipped with a warning.
    """
    loader = SkippingLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    feats: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for images, y in loader:
        if images.dtype != torch.uint8:
            raise TypeError(f"dataset images must be uint8 (protocol), got {images.dtype}")
        x = images.to(device, non_blocking=True).float().div_(255.0)
        f = encode_fn(x)
        if f.ndim != 2 or f.shape[0] != x.shape[0]:
            raise ValueError(f"encode_fn must return (B, D) features, got shape {tuple(f.shape)}")
        feats.append(f.detach().float().cpu().numpy())
        labels.append(torch.as_tensor(y).cpu().numpy().astype(np.int64))
    if not feats:
        raise ValueError("extract_features: dataset produced no readable items")
    return np.concatenate(feats).astype(np.float32, copy=False), np.concatenate(labels)


def topk_accuracy(proba: np.ndarray, classes: np.ndarray, y: np.ndarray, k: int) -> float:
    """Percentage of rows whose label is among the k highest-scoring classes."""
    k = min(k, proba.shape[1])
    top = classes[np.argsort(-proba, axis=1, kind="stable")[:, :k]]
    return float(100.0 * np.mean((top == np.asarray(y)[:, None]).any(axis=1)))


def _fit(X: np.ndarray, y: np.ndarray, C: float, max_iter: int, seed: int):
    clf = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter, random_state=seed),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    return clf


def _val_split(X, y, val_fraction: float, seed: int):
    n = len(y)
    classes, counts = np.unique(y, return_counts=True)
    n_val = max(1, int(round(val_fraction * n)))
    stratify = y if (counts.min() >= 2 and n_val >= len(classes) and n - n_val >= len(classes)) else None
    return train_test_split(X, y, test_size=n_val, random_state=seed, stratify=stratify)


def linear_probe(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    C: float | None = None,
    seed: int = 0,
    c_grid: Sequence[float] = C_GRID,
    val_fraction: float = 0.2,
    max_iter: int = 1000,
) -> dict:
    """Fit a standardised multinomial logistic regression; report test top-1/top-5 (%).

    With ``C=None`` each value of ``c_grid`` is fitted on a (stratified when
    possible) ``1 - val_fraction`` part of the training set and scored on the
    rest; the best (ties -> the smaller, more regularised C) is refitted on all
    training data. Returns ``dict(top1, top5, C, val_top1 (dict C->% or None),
    n_train, n_test, n_classes, converged)``.
    """
    X_train = np.asarray(X_train, dtype=np.float32)
    X_test = np.asarray(X_test, dtype=np.float32)
    y_train = np.asarray(y_train)
    y_test = np.asarray(y_test)
    if X_train.ndim != 2 or X_test.ndim != 2 or X_train.shape[1] != X_test.shape[1]:
        raise ValueError(f"features must be 2-D with equal widths, got {X_train.shape} and {X_test.shape}")
    if len(X_train) != len(y_train) or len(X_test) != len(y_test):
        raise ValueError("features and labels differ in length")
    if len(np.unique(y_train)) < 2:
        raise ValueError("linear_probe needs at least two classes in y_train")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")

    val_scores = None
    if C is None:
        grid = sorted(float(c) for c in c_grid)
        if not grid or any(c <= 0 for c in grid):
            raise ValueError(f"c_grid must hold positive values, got {list(c_grid)}")
        Xa, Xv, ya, yv = _val_split(X_train, y_train, val_fraction, seed)
        val_scores = {}
        for c in grid:
            clf = _fit(Xa, ya, c, max_iter, seed)
            val_scores[c] = float(100.0 * np.mean(clf.predict(Xv) == yv))
        C = max(grid, key=lambda c: (val_scores[c], -c))
    elif C <= 0:
        raise ValueError(f"C must be positive, got {C}")

    clf = _fit(X_train, y_train, float(C), max_iter, seed)
    lr = clf[-1]
    proba = clf.predict_proba(X_test)
    return {
        "top1": topk_accuracy(proba, lr.classes_, y_test, 1),
        "top5": topk_accuracy(proba, lr.classes_, y_test, 5),
        "C": float(C),
        "val_top1": val_scores,
        "n_train": int(len(y_train)),
        "n_test": int(len(y_test)),
        "n_classes": int(len(lr.classes_)),
        "converged": bool(np.all(np.asarray(lr.n_iter_) < max_iter)),
    }
