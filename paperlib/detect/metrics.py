"""Detection metrics as the papers print them (percentages 0-100).

``is_poisoned`` is the ground truth (bool per pair), ``flagged`` a detector's decision and
``score`` a detector's continuous score (higher = more likely poisoned).
"""
from __future__ import annotations

import numpy as np


def tpr_fpr(is_poisoned, flagged) -> tuple[float, float]:
    """TPR = flagged poisoned / poisoned; FPR = flagged benign / benign (NaN if a class is empty)."""
    y = np.asarray(is_poisoned, bool)
    f = np.asarray(flagged, bool)
    if y.shape != f.shape:
        raise ValueError(f"is_poisoned has shape {y.shape}, flagged {f.shape}")
    tpr = 100.0 * (f & y).sum() / y.sum() if y.any() else float("nan")
    fpr = 100.0 * (f & ~y).sum() / (~y).sum() if (~y).any() else float("nan")
    return float(tpr), float(fpr)


def auroc_auprc(is_poisoned, score) -> tuple[float, float]:
    """Area under the ROC and precision-recall curves (scikit-learn), in percent."""
    from sklearn.metrics import average_precision_score, roc_auc_score
    y = np.asarray(is_poisoned, bool)
    if y.all() or not y.any():
        return float("nan"), float("nan")
    s = np.asarray(score, np.float64)
    return 100.0 * float(roc_auc_score(y, s)), 100.0 * float(average_precision_score(y, s))
