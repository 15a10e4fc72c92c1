"""ROC and precision-recall curves with pointwise bootstrap confidence bands.

Each bootstrap resample (:func:`~medtl_monai.evaluation.bootstrap.resample_weights`: stratified by class, or whole
patients with ``groups``) is a weighting of the cases, so the curve of every resample comes from one sort of the
scores. A curve is read on a fixed grid — the true-positive rate at each false-positive rate (the best ROC point not
beyond it), the interpolated precision at each recall (the highest precision at that recall or beyond, as in Davis &
Goadrich, ICML 2006) — and the band is the pointwise percentile interval over the resamples (Macskassy, Provost &
Rosset, "ROC confidence bands", ICML 2005, discuss pointwise and simultaneous bands; these are pointwise).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .bootstrap import resample_weights

__all__ = ["CurveBand", "pr_band", "roc_band"]


@dataclass(frozen=True)
class CurveBand:
    """A curve on a grid with its pointwise confidence band.

    Attributes:
        x: (G,) the grid (false-positive rate for ROC, recall for precision-recall).
        y: (G,) the curve of all cases on the grid.
        low: (G,) lower band.
        high: (G,) upper band.
        confidence: coverage of the band at each grid point.
        n_resamples: bootstrap resamples behind the band.
    """

    x: np.ndarray
    y: np.ndarray
    low: np.ndarray
    high: np.ndarray
    confidence: float
    n_resamples: int


def _cumulative(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted true and false positives when calling positive at and above each distinct score (highest first):
    two ``(B, G)`` arrays."""
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    last = np.r_[np.flatnonzero(ranked[1:] != ranked[:-1]), len(ranked) - 1]
    w = weights[:, order]
    return np.cumsum(w * positive[order], axis=1)[:, last], np.cumsum(w * ~positive[order], axis=1)[:, last]


def _roc_rows(tp: np.ndarray, fp: np.ndarray, grid: np.ndarray) -> np.ndarray:
    out = np.full((len(tp), len(grid)), np.nan)
    for b in range(len(tp)):
        if tp[b, -1] <= 0 or fp[b, -1] <= 0:
            continue
        tpr, fpr = np.r_[0.0, tp[b] / tp[b, -1]], np.r_[0.0, fp[b] / fp[b, -1]]
        out[b] = tpr[np.searchsorted(fpr, grid, side="right") - 1]  # fpr is non-decreasing
    return out


def _pr_rows(tp: np.ndarray, fp: np.ndarray, grid: np.ndarray) -> np.ndarray:
    out = np.full((len(tp), len(grid)), np.nan)
    for b in range(len(tp)):
        if tp[b, -1] <= 0:
            continue
        called = tp[b] + fp[b]
        recall = tp[b] / tp[b, -1]
        precision = np.where(called > 0, tp[b] / np.where(called > 0, called, 1.0), 1.0)
        best_beyond = np.maximum.accumulate(precision[::-1])[::-1]  # highest precision at this recall or beyond
        index = np.searchsorted(recall, grid, side="left")  # first point with recall >= grid
        out[b] = np.where(index < len(recall), best_beyond[np.minimum(index, len(recall) - 1)], np.nan)
    return out


def _band(rows_of, labels: Sequence[int], scores: Sequence[float], groups: Sequence | None, n_resamples: int,
          confidence: float, seed: int, grid: np.ndarray) -> CurveBand:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    y = np.asarray(labels).astype(int).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if len(y) != len(s) or len(y) == 0 or (groups is not None and len(groups) != len(y)):
        raise ValueError(f"one label, one score (and one group) per case, got {len(y)} labels and {len(s)} scores.")
    if not set(y.tolist()) <= {0, 1}:
        raise ValueError(f"curve bands are for 0/1 labels (one class against the rest), got {sorted(set(y.tolist()))}.")
    positive = y == 1
    curve = rows_of(*_cumulative(positive, s, np.ones((1, len(y)))), grid)[0]
    resampled = np.concatenate([rows_of(*_cumulative(positive, s, w), grid)
                                for w in resample_weights(y, n_resamples, seed, groups)])
    with warnings.catch_warnings():  # a grid point that no resample defines stays NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(resampled, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    return CurveBand(grid, curve, low, high, confidence, n_resamples)


def roc_band(labels: Sequence[int], scores: Sequence[float], groups: Sequence | None = None, n_resamples: int = 1000,
             confidence: float = 0.95, seed: int = 0, points: int = 101) -> CurveBand:
    """The ROC curve (true-positive rate at each false-positive rate of a grid) with its pointwise bootstrap band.

    Args:
        labels: (N,) 0/1 labels (1 = the class whose curve it is).
        scores: (N,) that class's scores.
        groups: (N,) patient ids: resample whole patients.
        n_resamples: bootstrap resamples.
        confidence: coverage of the band.
        seed: seed of the resampling.
        points: grid points over [0, 1].

    Returns:
        The :class:`CurveBand` (NaN where undefined, e.g. one class absent).

    Raises:
        ValueError: labels other than 0/1, inputs of different lengths, a confidence outside (0, 1).
    """
    return _band(_roc_rows, labels, scores, groups, n_resamples, confidence, seed, np.linspace(0.0, 1.0, points))


def pr_band(labels: Sequence[int], scores: Sequence[float], groups: Sequence | None = None, n_resamples: int = 1000,
            confidence: float = 0.95, seed: int = 0, points: int = 101) -> CurveBand:
    """The interpolated precision-recall curve on a recall grid with its pointwise bootstrap band.

    Args:
        labels: (N,) 0/1 labels (1 = the class whose curve it is).
        scores: (N,) that class's scores.
        groups: (N,) patient ids: resample whole patients.
        n_resamples: bootstrap resamples.
        confidence: coverage of the band.
        seed: seed of the resampling.
        points: grid points over [0, 1].

    Returns:
        The :class:`CurveBand`.

    Raises:
        ValueError: labels other than 0/1, inputs of different lengths, a confidence outside (0, 1).
    """
    return _band(_pr_rows, labels, scores, groups, n_resamples, confidence, seed, np.linspace(0.0, 1.0, points))
