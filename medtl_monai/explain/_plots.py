"""Figures of the error-analysis report: ROC and precision-recall curves, confusion matrix, calibration plot.

Curves are computed here with numpy (no scikit-learn); the areas printed on them come from
:func:`medtl_monai.evaluation.classification_summary`, the numbers ``metrics.json`` holds, so the report and the
evaluation agree. Two classes: class 1 is the positive class. More classes: one-vs-rest curves per class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..evaluation import CurveBand

__all__ = ["calibration_bins", "calibration_figure", "confusion_figure", "confusion_matrix", "pr_figure", "pr_points",
           "roc_figure", "roc_points"]


def _thresholded(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives when predicting positive at and above each distinct score."""
    order = np.argsort(-scores, kind="mergesort")
    scores, targets = scores[order], targets[order].astype(bool)
    last = np.r_[np.nonzero(np.diff(scores))[0], targets.size - 1]
    tp = np.cumsum(targets)[last]
    return tp, (last + 1) - tp


def roc_points(scores: Sequence[float], targets: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of every threshold, from (0, 0) to (1, 1).

    Returns:
        ``(fpr, tpr)``; NaN arrays when one class is absent.
    """
    s, t = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(targets).ravel().astype(bool)
    positives, negatives = int(t.sum()), int((~t).sum())
    if positives == 0 or negatives == 0:
        return np.array([np.nan]), np.array([np.nan])
    tp, fp = _thresholded(s, t)
    return np.r_[0.0, fp / negatives], np.r_[0.0, tp / positives]


def pr_points(scores: Sequence[float], targets: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision of every threshold (highest threshold first).

    Returns:
        ``(recall, precision)``; NaN arrays when there is no positive case.
    """
    s, t = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(targets).ravel().astype(bool)
    if t.sum() == 0:
        return np.array([np.nan]), np.array([np.nan])
    tp, fp = _thresholded(s, t)
    return tp / t.sum(), tp / (tp + fp)


def confusion_matrix(labels: Sequence[int], predictions: Sequence[int], num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for label, pred in zip(labels, predictions):
        matrix[int(label), int(pred)] += 1
    return matrix


def calibration_bins(scores: Sequence[float], targets: Sequence[int], n_bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reliability diagram data: equal-width bins of predicted probability.

    Returns:
        ``(mean predicted probability, observed frequency, count)`` per non-empty bin.
    """
    s, t = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(targets, dtype=np.float64).ravel()
    index = np.clip((s * n_bins).astype(int), 0, n_bins - 1)
    kept = [b for b in range(n_bins) if np.any(index == b)]
    mean = np.array([s[index == b].mean() for b in kept])
    observed = np.array([t[index == b].mean() for b in kept])
    counts = np.array([int(np.sum(index == b)) for b in kept])
    return mean, observed, counts


def _one_vs_rest(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    if probs.shape[1] == 2:
        return [(class_names[1], probs[:, 1], labels == 1)]
    return [(name, probs[:, k], labels == k) for k, name in enumerate(class_names)]


def _axes(title: str, xlabel: str, ylabel: str) -> tuple[Figure, object]:
    fig = Figure(figsize=(4.2, 4.0), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    return fig, ax


def _shade(ax, band: CurveBand | None, color: str, step: bool) -> None:
    if band is not None:
        ax.fill_between(band.x, band.low, band.high, color=color, alpha=0.2, lw=0, step="post" if step else None,
                        label=f"{band.confidence:.0%} band")


def roc_figure(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str], auroc: float,
               band: CurveBand | None = None, point: tuple[float, float] | None = None) -> Figure:
    """ROC curve(s) with the chance diagonal; the title holds the AUROC. ``band``: the positive class's bootstrap
    band (two classes); ``point``: an operating point ``(fpr, tpr)`` to mark (chosen on validation)."""
    fig, ax = _axes(f"ROC  (AUROC {auroc:.3f})", "false-positive rate (1 - specificity)", "true-positive rate (sensitivity)")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    for name, scores, targets in _one_vs_rest(probs, labels, class_names):
        fpr, tpr = roc_points(scores, targets)
        line = ax.plot(fpr, tpr, lw=2, label=name)
        _shade(ax, band, line[0].get_color(), step=True)
    if point is not None:
        ax.plot(*point, marker="o", ms=8, mfc="none", mew=2, color="black", ls="none",
                label="operating point (validation)")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def pr_figure(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str], auprc: float,
              band: CurveBand | None = None) -> Figure:
    """Precision-recall curve(s) with the prevalence line; the title holds the AUPRC (average precision).
    ``band``: the positive class's bootstrap band of the interpolated precision (two classes)."""
    fig, ax = _axes(f"Precision-recall  (AUPRC {auprc:.3f})", "recall (sensitivity)", "precision (PPV)")
    for name, scores, targets in _one_vs_rest(probs, labels, class_names):
        recall, precision = pr_points(scores, targets)
        line = ax.plot(np.r_[0.0, recall], np.r_[precision[:1], precision], lw=2, drawstyle="steps-pre", label=name)
        ax.axhline(float(np.mean(targets)), ls="--", lw=1, color=line[0].get_color(), alpha=0.6)
        _shade(ax, band, line[0].get_color(), step=False)
    ax.legend(loc="lower left", fontsize=8)
    return fig


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], caption: str) -> Figure:
    """Confusion matrix as a table of counts (rows true, columns predicted)."""
    n = len(class_names)
    fig = Figure(figsize=(1.6 + 1.1 * n, 1.3 + 1.0 * n), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(int(matrix.max()), 1))
    for i in range(n):
        for j in range(n):
            dark = matrix[i, j] > 0.6 * max(int(matrix.max()), 1)
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=14, color="white" if dark else "black")
    ax.set_xticks(range(n), [str(c) for c in class_names])
    ax.set_yticks(range(n), [str(c) for c in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(caption, fontsize=10)
    return fig


def calibration_figure(scores: np.ndarray, targets: np.ndarray, what: str, n_bins: int | None = None,
                       scaled: np.ndarray | None = None, temperature: float | None = None) -> Figure:
    """Reliability diagram: observed frequency against mean predicted probability per bin (point size = cases);
    10 bins, or 5 for fewer than 50 cases. ``scaled``: the same cases' probabilities after temperature scaling
    (``temperature``, fitted on validation), drawn as a second curve."""
    n_bins = n_bins or (10 if len(scores) >= 50 else 5)
    fig, ax = _axes("Calibration", f"mean predicted {what}", "observed frequency")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    curves = [("model", scores)]
    if scaled is not None:
        curves.append((f"temperature-scaled (T = {temperature:.2f})", scaled))
    for label, values in curves if len(scores) else []:
        mean, observed, counts = calibration_bins(values, targets, n_bins)
        line = ax.plot(mean, observed, marker="o", lw=1.5, label=label)
        ax.scatter(mean, observed, s=20 + 180 * counts / counts.max(), alpha=0.35, color=line[0].get_color())
    ax.legend(loc="upper left", fontsize=8)
    return fig

