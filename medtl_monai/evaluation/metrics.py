"""Classification metrics from per-case probabilities, on MONAI's metric functions.

:func:`classification_summary` gives the numbers ``metrics.json`` and the error report print (AUROC, AUPRC,
accuracy, sensitivity, specificity, per-class sensitivity and specificity), right for any number of classes; the
validation metrics of the bundles follow the same rules (:mod:`.class_rates`). :func:`positive_class_scores` is
the output transform that makes MONAI's ``AveragePrecision`` handler score a two-class problem as AUPRC of the
positive class (MONAI averages over every class column it is given).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.handlers import from_engine
from monai.metrics import compute_average_precision, compute_roc_auc

from .class_rates import per_class_rates, summarise_classes

__all__ = ["average_precision", "classification_summary", "positive_class_scores"]


def average_precision(scores: Sequence[float] | np.ndarray, targets: Sequence[int] | np.ndarray) -> float:
    """Area under the precision-recall curve of one class as average precision (MONAI's
    ``compute_average_precision``; tied scores count as one threshold).

    Args:
        scores: (N,) confidence of the class.
        targets: (N,) 0/1 ground truth.

    Returns:
        The average precision, or NaN when the class is absent or every case has it.
    """
    y = torch.as_tensor(np.asarray(targets).ravel().astype(np.int64))
    if y.numel() == 0 or int(y.sum()) in (0, y.numel()):
        return float("nan")
    return float(compute_average_precision(torch.as_tensor(np.asarray(scores, dtype=np.float64).ravel()), y))


def positive_class_scores(output: Any, keys: tuple[str, str] = ("pred", "label")) -> tuple[list, list]:
    """Output transform for MONAI's ``AveragePrecision`` (and other one-vs-rest metrics) on a decollated evaluator
    output: ``(scores, one-hot labels)`` per case, reduced to the positive class (index 1) when there are two
    classes, so that the metric is that class's AUPRC rather than the mean over both columns.

    Args:
        output: ``engine.state.output``.
        keys: the keys of the probabilities and of the one-hot labels.

    Returns:
        Two lists of per-case tensors.
    """
    preds, labels = from_engine(list(keys))(output)
    if preds and torch.as_tensor(preds[0]).numel() == 2:
        return [torch.as_tensor(p).reshape(-1)[1:] for p in preds], [torch.as_tensor(y).reshape(-1)[1:] for y in labels]
    return preds, labels


def classification_summary(
    probabilities: np.ndarray, labels: Sequence[int], threshold: float = 0.5
) -> dict[str, float | list[float]]:
    """AUROC, AUPRC, accuracy, sensitivity and specificity of single-label predictions.

    Two classes: class 1 is positive and predicted when its probability >= ``threshold``; AUROC, AUPRC,
    sensitivity and specificity are those of class 1. More classes: the prediction is the arg-max, AUROC and AUPRC
    are macro one-vs-rest averages and sensitivity / specificity the macro averages of the per-class (one-vs-rest)
    values. Accuracy is always the fraction of cases whose predicted class is right, over all classes.

    Args:
        probabilities: (N, C) class probabilities.
        labels: (N,) class indices.
        threshold: decision threshold for two classes.

    Returns:
        A dict of floats (NaN where undefined, e.g. AUROC with one class present), plus
        ``sensitivity_per_class`` and ``specificity_per_class``: lists of K floats in class order.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels).astype(int).ravel()
    n, c = probs.shape
    onehot = np.eye(c)[y]
    pred = (probs[:, 1] >= threshold).astype(int) if c == 2 else probs.argmax(1)
    classes = [1] if c == 2 else list(range(c))
    if n:
        sens, spec = per_class_rates(pred, y, c, "sensitivity"), per_class_rates(pred, y, c, "specificity")
    else:
        sens = spec = np.full(c, np.nan)
    try:
        auroc = float(compute_roc_auc(torch.as_tensor(probs), torch.as_tensor(onehot), average="macro"))
    except (AssertionError, ValueError):
        auroc = float("nan")
    per_class = [average_precision(probs[:, k], onehot[:, k]) for k in classes]
    auprc = float(np.nanmean(per_class)) if not all(np.isnan(per_class)) else float("nan")
    return {
        "auroc": auroc,
        "auprc": auprc,
        "accuracy": float(np.mean(pred == y)) if n else float("nan"),
        "sensitivity": summarise_classes(sens),
        "specificity": summarise_classes(spec),
        "sensitivity_per_class": [float(v) for v in sens],
        "specificity_per_class": [float(v) for v in spec],
        "threshold": float(threshold),
        "n_cases": int(n),
    }
