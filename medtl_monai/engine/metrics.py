"""Classification metrics that MONAI lacks as handlers (area under the precision-recall curve), and a summary of
AUROC, AUPRC, accuracy, sensitivity and specificity from per-case probabilities."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.handlers.ignite_metric import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric, compute_roc_auc

__all__ = ["average_precision", "AveragePrecisionMetric", "AUPRC", "classification_summary"]


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision: sum over thresholds of (R_n - R_{n-1}) P_n.

    Args:
        scores: (N,) confidence of the positive class.
        targets: (N,) 0/1 ground truth.

    Returns:
        The average precision, or NaN when there is no positive case.
    """
    scores, targets = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(targets).ravel().astype(bool)
    positives = targets.sum()
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    scores, targets = scores[order], targets[order]
    # evaluate at the last index of each run of tied scores, so that ties count as one threshold
    last = np.r_[np.nonzero(np.diff(scores))[0], targets.size - 1]
    tp = np.cumsum(targets)[last]
    precision = tp / (last + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


class AveragePrecisionMetric(CumulativeIterationMetric):
    """Average precision (AUPRC), accumulated over iterations, macro-averaged one-vs-rest over classes.

    Expects ``y_pred`` as (B, C) probabilities and ``y`` as (B, C) one-hot labels, like MONAI's ``ROCAUCMetric``.
    For two classes the positive class (index 1) alone is scored.
    """

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return y_pred, y

    def aggregate(self) -> float:  # type: ignore[override]
        y_pred, y = self.get_buffer()
        y_pred, y = y_pred.float().cpu().numpy(), y.float().cpu().numpy()
        if y_pred.ndim == 1 or y_pred.shape[1] == 1:
            return average_precision(y_pred.ravel(), y.ravel())
        if y_pred.shape[1] == 2:
            return average_precision(y_pred[:, 1], y[:, 1])
        values = [average_precision(y_pred[:, c], y[:, c]) for c in range(y_pred.shape[1])]
        return float(np.nanmean(values))


class AUPRC(IgniteMetricHandler):
    """Ignite handler for :class:`AveragePrecisionMetric` (use it as a MONAI evaluator metric).

    Args:
        output_transform: extracts ``(y_pred, y)`` from the engine output, e.g. ``from_engine(["pred", "label"])``.
    """

    def __init__(self, output_transform: Callable = lambda x: x) -> None:
        super().__init__(metric_fn=AveragePrecisionMetric(), output_transform=output_transform, save_details=False)


def classification_summary(
    probabilities: np.ndarray, labels: Sequence[int], threshold: float = 0.5
) -> dict[str, float]:
    """AUROC, AUPRC, accuracy, sensitivity and specificity of single-label predictions.

    Two classes: class 1 is positive and predicted when its probability >= ``threshold``. More classes: AUROC and
    AUPRC are macro one-vs-rest averages, the prediction is the arg-max, and sensitivity / specificity are
    macro-averaged per class.

    Args:
        probabilities: (N, C) class probabilities.
        labels: (N,) class indices.
        threshold: decision threshold for two classes.

    Returns:
        A dict of floats (NaN where undefined, e.g. AUROC with one class present).
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels).astype(int).ravel()
    n, c = probs.shape
    onehot = np.eye(c)[y]
    pred = (probs[:, 1] >= threshold).astype(int) if c == 2 else probs.argmax(1)
    classes = [1] if c == 2 else list(range(c))
    sens, spec = [], []
    for k in classes:
        tp = np.sum((pred == k) & (y == k))
        fn = np.sum((pred != k) & (y == k))
        tn = np.sum((pred != k) & (y != k))
        fp = np.sum((pred == k) & (y != k))
        sens.append(tp / (tp + fn) if tp + fn else float("nan"))
        spec.append(tn / (tn + fp) if tn + fp else float("nan"))
    try:
        auroc = float(compute_roc_auc(torch.as_tensor(probs), torch.as_tensor(onehot), average="macro"))
    except (AssertionError, ValueError):
        auroc = float("nan")
    auprc = average_precision(probs[:, 1], onehot[:, 1]) if c == 2 else float(
        np.nanmean([average_precision(probs[:, k], onehot[:, k]) for k in range(c)])
    )
    return {
        "auroc": auroc,
        "auprc": auprc,
        "accuracy": float(np.mean(pred == y)) if n else float("nan"),
        "sensitivity": float(np.nanmean(sens)),
        "specificity": float(np.nanmean(spec)),
        "threshold": float(threshold),
        "n_cases": int(n),
    }
