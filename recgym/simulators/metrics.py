"""Feedback-prediction metrics a simulator's fit reports: F1 and ROC AUC (RecSimu Figures 6-8)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of binary ``labels`` ranked by ``scores`` (ties count half).

    Computed as the Mann-Whitney statistic over average ranks, ``O(n log n)``.

    Raises:
        ValueError: only one class is present, or the arrays differ in length.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D of equal length, got {labels.shape} "
                         f"and {scores.shape}")
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        raise ValueError("AUC needs both classes among the labels")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2)
                 / (positives * negatives))


def f1_score(labels: np.ndarray, predictions: np.ndarray, *, average: str = "binary") -> float:
    """F1 of predicted classes: of class 1 (``binary``) or the unweighted mean over classes.

    Args:
        labels: true classes, int ``(n,)``.
        predictions: predicted classes, int ``(n,)``.
        average: ``binary`` (positive class 1) or ``macro``.
    """
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ")
    if average == "binary":
        classes = [1]
    elif average == "macro":
        classes = np.union1d(labels, predictions).tolist()
    else:
        raise ValueError(f"average must be 'binary' or 'macro', got {average!r}")
    scores = []
    for cls in classes:
        true_positive = np.sum((predictions == cls) & (labels == cls))
        denominator = np.sum(predictions == cls) + np.sum(labels == cls)
        scores.append(2 * true_positive / denominator if denominator else 0.0)
    return float(np.mean(scores))
