"""Rank-based AUROC and average precision of one class, for many case weightings at once.

A bootstrap resample is a weighting of the original cases (how many times each case was drawn), so every resample
shares the cases' sort order: the scores are sorted once, tied scores are pooled into one group, and each resample
is a weighted sum over the groups, ``O(B n)`` for ``B`` resamples of ``n`` cases with no sort per resample. With
unit weights the AUROC is the Mann-Whitney statistic with ties counted one half (the midrank AUROC, equal to
MONAI's ``compute_roc_auc``) and the average precision is MONAI's ``compute_average_precision`` (tied scores are one
threshold).
"""

from __future__ import annotations

import numpy as np

__all__ = ["weighted_auroc", "weighted_average_precision"]


def _grouped(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights of the positive and of the negative cases summed per group of tied scores, groups in ascending score
    order: two ``(B, G)`` arrays."""
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    w = weights[:, order]
    pos = positive[order]
    return np.add.reduceat(w * pos, starts, axis=1), np.add.reduceat(w * ~pos, starts, axis=1)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, NaN where the denominator is 0."""
    ok = denominator > 0
    return np.where(ok, numerator / np.where(ok, denominator, 1.0), np.nan)


def weighted_auroc(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of one class under each row of case weights (Mann-Whitney, ties count one half).

    Args:
        positive: (N,) bool, whether each case belongs to the class.
        scores: (N,) the class's scores (any real values; only their order matters).
        weights: (B, N) non-negative case weights, e.g. bootstrap draw counts; a row of ones is the plain AUROC.

    Returns:
        (B,) AUROCs, NaN for a row with no weighted positive or no weighted negative case.
    """
    pos_w, neg_w = _grouped(np.asarray(positive, dtype=bool), np.asarray(scores, dtype=np.float64), weights)
    negatives_below = np.cumsum(neg_w, axis=1) - neg_w
    wins = (pos_w * (negatives_below + 0.5 * neg_w)).sum(axis=1)
    return _divide(wins, pos_w.sum(axis=1) * neg_w.sum(axis=1))


def weighted_average_precision(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision (area under the precision-recall curve) of one class under each row of case weights:
    the sum over thresholds, taken at each distinct score from the highest, of the recall gained times the precision
    there, as MONAI's ``compute_average_precision``.

    Args:
        positive: (N,) bool, whether each case belongs to the class.
        scores: (N,) the class's scores.
        weights: (B, N) non-negative case weights.

    Returns:
        (B,) average precisions, NaN for a row with no weighted positive case.
    """
    pos_w, neg_w = _grouped(np.asarray(positive, dtype=bool), np.asarray(scores, dtype=np.float64), weights)
    pos_w, neg_w = pos_w[:, ::-1], neg_w[:, ::-1]  # highest scores first
    true_pos = np.cumsum(pos_w, axis=1)
    called = true_pos + np.cumsum(neg_w, axis=1)
    precision = np.divide(true_pos, called, out=np.zeros_like(true_pos), where=called > 0)
    return _divide((pos_w * precision).sum(axis=1), true_pos[:, -1])
