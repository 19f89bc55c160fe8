"""Classification metrics from labels and predictions: confusion matrix, precision, recall, F1.

    cm = confusion_matrix(y_true, y_pred, 10)     # cm[t, p]: images of class t predicted p
    rows = per_class(cm)                          # precision, recall, f1, support per class
"""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """y_true, y_pred: (N,) ints in [0, K) -> (K, K) int64 counts, rows true, columns predicted."""
    flat = y_true.astype(np.int64) * num_classes + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes,
                                                                          num_classes)


def per_class(cm: np.ndarray) -> list[dict[str, Any]]:
    """(K, K) confusion matrix -> one dict per class: precision, recall, f1, support.

    precision = TP / predicted as the class, recall = TP / truly the class, F1 their harmonic
    mean; each is 0.0 when its denominator is 0 (no images predicted or present).
    """
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    actual = cm.sum(axis=1).astype(np.float64)
    rows = []
    for k in range(cm.shape[0]):
        precision = tp[k] / predicted[k] if predicted[k] else 0.0
        recall = tp[k] / actual[k] if actual[k] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": k, "precision": float(precision), "recall": float(recall),
                     "f1": float(f1), "support": int(actual[k])})
    return rows
