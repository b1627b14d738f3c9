"""Linear probe on frozen features."""

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from paperlib.eval.linear_probe import C_GRID, extract_features, linear_probe, topk_accuracy


def _blobs(n, k=5, d=16, seed=0, sep=6.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * sep
    y = rng.integers(0, k, size=n)
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


def test_separable_features_reach_100_percent():
    X, y = _blobs(600, k=8, seed=0)
    out = linear_probe(X[:400], y[:400], X[400:], y[400:], seed=0)
    assert out["top1"] >= 99.0 and out["top5"] == 100.0
    assert out["C"] in C_GRID and set(out["val_top1"]) == set(C_GRID)
    assert out["n_train"] == 400 and out["n_test"] == 200 and out["n_classes"] == 8


def test_random_labels_give_about_chance():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2400, 16)).astype(np.float32)
    y = rng.integers(0, 10, size=2400)
    out = linear_probe(X[:1200], y[:1200], X[1200:], y[1200:], seed=0)
    assert out["top1"] < 16.0  # chance is 10%
    assert 35.0 < out["top5"] < 65.0  # chance is 50%


def test_fixed_C_is_used_without_sweep_and_seed_is_deterministic():
    X, y = _blobs(300, k=4, seed=1, sep=1.0)
    a = linear_probe(X[:200], y[:200], X[200:], y[200:], C=0.5)
    assert a["C"] == 0.5 and a["val_top1"] is None
    b = linear_probe(X[:200], y[:200], X[200:], y[200:], seed=5)
    c = linear_probe(X[:200], y[:200], X[200:], y[200:], seed=5)
    assert b == c and b["C"] in C_GRID
    with pytest.raises(ValueError, match="positive"):
        linear_probe(X[:200], y[:200], X[200:], y[200:], C=0.0)


def test_c_selection_picks_best_validation_score_smaller_on_ties():
    X, y = _blobs(300, k=4, seed=2, sep=0.7)
    grid = [1e-3, 1e-2, 1e-1, 1.0, 10.0]
    out = linear_probe(X[:200], y[:200], X[200:], y[200:], c_grid=grid, seed=0)
    scores = out["val_top1"]
    assert out["C"] in grid and set(scores) == set(grid)
    best = max(scores.values())
    assert scores[out["C"]] == best
    assert out["C"] == min(c for c in grid if scores[c] == best)
    with pytest.raises(ValueError, match="positive"):
        linear_probe(X[:200], y[:200], X[200:], y[200:], c_grid=[-1.0, 1.0])


def test_topk_accuracy_counts_labels_in_top_k():
    proba = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    classes = np.array([3, 5, 9])
    assert topk_accuracy(proba, classes, np.array([5, 9]), 1) == 50.0
    assert topk_accuracy(proba, classes, np.array([5, 9]), 2) == 50.0
    assert topk_accuracy(proba, classes, np.array([9, 9]), 3) == 100.0


class _ToyImages(Dataset):
    """Class k is a solid image of grey value 40*k; labels follow."""

    def __init__(self, n):
        self.y = [i % 4 for i in range(n)]

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return torch.full((3, 8, 8), 40 * self.y[i], dtype=torch.uint8), self.y[i]


def test_extract_features_passes_unit_range_floats_and_keeps_labels():
    seen = []

    def encode(x):
        seen.append((x.dtype, float(x.min()), float(x.max())))
        return torch.stack([x.mean(dim=(1, 2, 3)), x.std(dim=(1, 2, 3))], dim=1)

    X, y = extract_features(encode, _ToyImages(10), batch_size=4, device="cpu")
    assert X.dtype == np.float32 and X.shape == (10, 2) and y.tolist() == [i % 4 for i in range(10)]
    assert all(dt == torch.float32 and lo >= 0.0 and hi <= 1.0 for dt, lo, hi in seen)
    assert len(seen) == 3
    np.testing.assert_allclose(X[:, 0], 40 * y / 255.0, atol=1e-6)


def test_extract_features_rejects_wrong_feature_shape():
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        extract_features(lambda x: x, _ToyImages(4), batch_size=2)


def test_offline_probes_split_in_half_by_class_and_refuse_training_styles():
    """The probes beyond the held-out style: a stratified half/half split, scikit-learn's digits as
    protocol images, style probes only in styles the training set never shows."""
    import numpy as np
    import pytest

    from paperlib.data.dataconfig import DataConfig
    from paperlib.data.probes import digits_arrays, half_split, probe_datasets, probe_key, probe_names
    from paperlib.errors import ParamError
    labels = np.repeat(np.arange(3), [4, 5, 1])
    tr, te = half_split(labels, 0)
    assert not set(tr) & set(te) and sorted(np.r_[tr, te]) == list(range(10))
    assert [int((labels[tr] == c).sum()) for c in range(3)] == [2, 3, 1]
    assert np.array_equal(half_split(labels, 0)[0], tr)            # repeatable
    x, y = digits_arrays(32)
    assert x.shape == (1797, 32, 32, 3) and x.dtype == np.uint8 and sorted(set(y)) == list(range(10))
    train, test = probe_datasets("digits", DataConfig(image_size=32), 0, 0)
    img, label = train[0]
    assert img.shape == (3, 32, 32) and img.dtype.is_floating_point is False and len(train) + len(test) == 1797
    data = DataConfig(train_styles=("noto", "twemoji"))
    assert {"openmoji_style", "tuxpaint_style", "digits", "cifar10_analog"} <= set(probe_names())
    assert probe_key("openmoji_style", data) != probe_key("heldout_style", data)
    with pytest.raises(ParamError, match="'noto' is a training style"):
        probe_key("noto_style", data)
