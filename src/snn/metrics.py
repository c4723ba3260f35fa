"""Classification metrics from true and predicted labels."""

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
