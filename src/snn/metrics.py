"""Classification metrics from true and predicted labels, and a regression's from values."""

from __future__ import annotations

import numpy as np


def accuracy(y_true, y_pred) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """``C[i, j]``: examples of true class ``i`` predicted as ``j``."""
    C = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(C, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return C


def per_class(C: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall (sensitivity) and specificity per class; 0 where undefined."""
    tp = np.diag(C).astype(float)
    predicted, actual, total = C.sum(axis=0), C.sum(axis=1), C.sum()
    tn = total - predicted - actual + tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "precision": np.nan_to_num(tp / predicted),
            "recall": np.nan_to_num(tp / actual),
            "specificity": np.nan_to_num(tn / (total - actual)),
        }


def regression_scores(y_true, y_pred) -> dict[str, np.ndarray]:
    """Per target (columns of ``(m, k)`` arrays): mean squared and absolute error, and R^2
    (1 - residual / total sum of squares; 0 for a constant target predicted exactly, else -inf)."""
    y, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    residual = ((y - p) ** 2).sum(axis=0)
    total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # a tiny total overflows to -inf: right
        r2 = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1), np.where(residual > 0, -np.inf, 0.0))
    return {"mse": residual / len(y), "mae": np.abs(y - p).mean(axis=0), "r2": r2}
