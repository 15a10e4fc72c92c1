"""Multi-label (CheXpert-style) metrics: one sigmoid probability per class, targets 1 / 0 / -1 (uncertain).

Each class is scored on its own cases: **uncertain entries (-1) are left out of that class's metrics**, whatever the
training policy (:data:`~medtl_monai.training.UNCERTAIN_POLICIES`), because an uncertain label is neither a positive
nor a negative to score against (the CheXpert paper, Irvin et al. AAAI 2019, evaluates on radiologist-consensus
labels that have none). A class whose scored cases lack positives or negatives has NaN AUROC; means skip NaN
classes.

- :func:`multilabel_summary`: per-class AUROC, AUPRC, sensitivity and specificity at a threshold, each with a
  percentile bootstrap CI, the mean AUROC / AUPRC over all classes and over a chosen subset (``summary_classes``,
  e.g. CheXpert's five competition tasks), with CIs from the same resamples. Resampling is of cases, or of whole
  patients (cluster bootstrap, Field & Welsh 2007) when patient ids are given; it is not stratified (with many
  classes almost every label combination is its own stratum), so a resample without a class's positives gives that
  class NaN and is left out of its interval.
- :class:`MultiLabelMean`: the validation metric (``val_auroc`` / ``val_auprc`` of ``configs/multi_label.json``),
  the mean over classes of the per-class AUROC or AUPRC, on the epoch's cases.
- :func:`stacked_outputs`: the output transform giving ``(B, K)`` predictions and targets from a decollated output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from ignite.metrics import EpochMetric

from ._auc import weighted_auroc, weighted_average_precision
from .bootstrap import percentile_interval, resample_weights

__all__ = ["MULTILABEL_METRICS", "MultiLabelMean", "multilabel_summary", "per_class_metric", "stacked_outputs"]

WeightedMetric = Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]


def _rate(positive_class: bool) -> WeightedMetric:
    """Sensitivity (``positive_class``) or specificity of one class at a threshold, under each row of weights."""
    def rate(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray, threshold: float) -> np.ndarray:
        wanted = positive if positive_class else ~positive
        called = (scores >= threshold) == positive_class
        total = weights @ wanted.astype(np.float64)
        hits = weights @ (wanted & called).astype(np.float64)
        return np.where(total > 0, hits / np.where(total > 0, total, 1.0), np.nan)
    return rate


#: per-class metrics by name: ``f(positive (n,), scores (n,), weights (B, n), threshold) -> (B,)``
MULTILABEL_METRICS: dict[str, WeightedMetric] = {
    "auroc": lambda positive, scores, weights, threshold: weighted_auroc(positive, scores, weights),
    "auprc": lambda positive, scores, weights, threshold: weighted_average_precision(positive, scores, weights),
    "sensitivity": _rate(True),
    "specificity": _rate(False),
}


def _arrays(probs: np.ndarray | Sequence, labels: np.ndarray | Sequence) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if p.ndim != 2 or p.shape != y.shape:
        raise ValueError(f"multi-label probabilities {p.shape} and labels {y.shape} must both be (cases, classes).")
    if not np.isin(y, (1.0, 0.0, -1.0)).all():
        raise ValueError(f"multi-label labels must be 1, 0 or -1 (uncertain), found {sorted(set(np.unique(y)) - {1.0, 0.0, -1.0})}.")
    return p, y


def per_class_metric(probs: np.ndarray | Sequence, labels: np.ndarray | Sequence, metric: str = "auroc",
                     threshold: float = 0.5, weights: np.ndarray | None = None) -> np.ndarray:
    """A metric of each class on its certain cases (labels 1 or 0; uncertain -1 left out).

    Args:
        probs: (N, K) probabilities.
        labels: (N, K) targets 1 / 0 / -1.
        metric: a name of :data:`MULTILABEL_METRICS`.
        threshold: decision threshold of the sensitivity and specificity.
        weights: (B, N) case weights (bootstrap draw counts); ``None`` for one row of ones.

    Returns:
        (K,) values, or (B, K) when ``weights`` is given; NaN where a class lacks positives or negatives.

    Raises:
        ValueError: an unknown metric or inputs that do not match.
    """
    if metric not in MULTILABEL_METRICS:
        raise ValueError(f"unknown multi-label metric {metric!r}; known: {', '.join(MULTILABEL_METRICS)}.")
    p, y = _arrays(probs, labels)
    w = np.ones((1, len(y))) if weights is None else np.asarray(weights, dtype=np.float64)
    columns = []
    for k in range(y.shape[1]):
        certain = y[:, k] >= 0
        if not certain.any():
            columns.append(np.full(w.shape[0], np.nan))
            continue
        columns.append(MULTILABEL_METRICS[metric](y[certain, k] == 1, p[certain, k], w[:, certain], threshold))
    values = np.stack(columns, axis=1)
    return values[0] if weights is None else values


def _nanmean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    defined = ~np.isnan(values)
    counts = defined.sum(axis=axis)
    total = np.where(defined, values, 0.0).sum(axis=axis)
    return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


def _interval(value: float, resampled: np.ndarray, confidence: float) -> dict[str, float]:
    low, high = percentile_interval(resampled, confidence)
    return {"value": float(value), "ci_low": low, "ci_high": high}


def _method(groups: Sequence | None, n_resamples: int) -> str:
    unit = "whole patients (cluster bootstrap)" if groups is not None else "cases"
    return f"percentile bootstrap over {unit}, not stratified, {n_resamples} resamples"


def multilabel_summary(probs: np.ndarray | Sequence, labels: np.ndarray | Sequence, class_names: Sequence[str],
                       *, summary_classes: Sequence[str] | None = None, threshold: float = 0.5,
                       groups: Sequence | None = None, n_resamples: int = 2000, seed: int = 0,
                       confidence: float = 0.95) -> dict[str, Any]:
    """Per-class and mean metrics of multi-label predictions, each with its bootstrap confidence interval.

    Args:
        probs: (N, K) per-class probabilities (sigmoid outputs).
        labels: (N, K) targets 1 / 0 / -1 (uncertain entries are left out of their class).
        class_names: the K class names.
        summary_classes: a subset of ``class_names`` whose mean AUROC / AUPRC is reported as well (``None``: none).
        threshold: a class is called present at ``probability >= threshold``.
        groups: (N,) patient ids: resample whole patients.
        n_resamples: bootstrap resamples (0: no intervals, NaN bounds).
        seed: seed of the resampling.
        confidence: coverage of the intervals.

    Returns:
        ``{"auroc", "auprc"`` (the means over classes, plain numbers), ``"per_class": {class: {"auroc",
        "auprc", "sensitivity", "specificity"`` (each ``{"value", "ci_low", "ci_high"}``), ``"n_positive",
        "n_negative", "n_uncertain"}}, "mean_auroc", "mean_auprc"`` (with CIs), ``"summary_classes",
        "summary_auroc", "summary_auprc"`` (with CIs; ``None`` without a subset), ``"threshold", "n_cases",
        "n_patients", "method", "confidence", "multi_label": True, "class_names"}``.

    Raises:
        ValueError: inputs that do not match, labels other than 1 / 0 / -1, or a summary class not in the list.
    """
    p, y = _arrays(probs, labels)
    names = [str(c) for c in class_names]
    if len(names) != y.shape[1]:
        raise ValueError(f"{len(names)} class names for {y.shape[1]} classes of predictions.")
    if groups is not None and len(groups) != len(y):
        raise ValueError(f"groups ({len(groups)}) must have one entry per case ({len(y)}).")
    subset = None if summary_classes is None else [str(c) for c in summary_classes]
    unknown = [c for c in subset or () if c not in names]
    if unknown:
        raise ValueError(f"summary_classes {unknown} are not among the classes {names}.")
    metrics = tuple(MULTILABEL_METRICS)
    estimates = {m: per_class_metric(p, y, m, threshold) for m in metrics}
    if n_resamples > 0 and len(y):
        chunks = list(resample_weights(np.zeros(len(y), dtype=int), n_resamples, seed, groups))
        resampled = {m: np.concatenate([per_class_metric(p, y, m, threshold, w) for w in chunks]) for m in metrics}
    else:
        resampled = {m: np.full((1, len(names)), np.nan) for m in metrics}

    per_class: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(names):
        per_class[name] = {m: _interval(estimates[m][k], resampled[m][:, k], confidence) for m in metrics}
        per_class[name].update({"n_positive": int((y[:, k] == 1).sum()), "n_negative": int((y[:, k] == 0).sum()),
                                "n_uncertain": int((y[:, k] == -1).sum())})
    summary: dict[str, Any] = {
        "multi_label": True,
        "auroc": float(_nanmean(estimates["auroc"])),
        "auprc": float(_nanmean(estimates["auprc"])),
        "mean_auroc": _interval(_nanmean(estimates["auroc"]), _nanmean(resampled["auroc"]), confidence),
        "mean_auprc": _interval(_nanmean(estimates["auprc"]), _nanmean(resampled["auprc"]), confidence),
        "summary_classes": subset,
        "summary_auroc": None,
        "summary_auprc": None,
        "per_class": per_class,
    }
    if subset:
        columns = [names.index(c) for c in subset]
        for m in ("auroc", "auprc"):
            summary[f"summary_{m}"] = _interval(_nanmean(estimates[m][columns]), _nanmean(resampled[m][:, columns]),
                                                confidence)
    summary.update({"threshold": float(threshold), "n_cases": len(y),
                    "n_patients": None if groups is None else len({str(g) for g in groups}),
                    "method": _method(groups, n_resamples), "confidence": confidence, "class_names": names})
    return summary


def stacked_outputs(output: Any, pred_key: str = "pred", label_key: str = "label") -> tuple[torch.Tensor, torch.Tensor]:
    """Output transform: ``(predictions (B, K), float targets (B, K))`` from a decollated evaluator output (a list of
    per-case dicts) or a batched one; for the validation metrics and loss of a multi-label bundle.

    Args:
        output: ``engine.state.output``.
        pred_key: key of the predictions (``"pred"``: probabilities; the logits copy for the loss).
        label_key: key of the per-class targets.

    Returns:
        Two float tensors on the predictions' device.
    """
    items = output if isinstance(output, list) else [output]
    if len(items) == 1 and torch.as_tensor(items[0][pred_key]).dim() == 2:  # a batched output
        preds, labels = torch.as_tensor(items[0][pred_key]), torch.as_tensor(items[0][label_key])
    else:
        preds = torch.stack([torch.as_tensor(i[pred_key]).reshape(-1) for i in items])
        labels = torch.stack([torch.as_tensor(i[label_key]).reshape(-1) for i in items])
    return preds.float(), labels.float().to(preds.device)


class MultiLabelMean(EpochMetric):
    """An Ignite metric: the mean over classes of a per-class metric (:func:`per_class_metric`; uncertain entries
    left out, NaN classes skipped) on all cases of an epoch. NaN when no class is defined.

    Args:
        metric: ``"auroc"`` or ``"auprc"`` (or another name of :data:`MULTILABEL_METRICS`).
        output_transform: gives ``(probabilities (B, K), targets (B, K))``; default :func:`stacked_outputs`.
        threshold: decision threshold of the sensitivity and specificity.

    Raises:
        ValueError: an unknown metric.
    """

    def __init__(self, metric: str = "auroc", output_transform: Callable = stacked_outputs,
                 threshold: float = 0.5) -> None:
        if metric not in MULTILABEL_METRICS:
            raise ValueError(f"unknown multi-label metric {metric!r}; known: {', '.join(MULTILABEL_METRICS)}.")

        def mean_over_classes(preds: torch.Tensor, targets: torch.Tensor) -> float:
            values = per_class_metric(preds.detach().cpu().numpy(), targets.detach().cpu().numpy(), metric, threshold)
            return float(_nanmean(values))

        super().__init__(mean_over_classes, output_transform=output_transform, check_compute_fn=False)
