"""Bootstrap confidence intervals and paired bootstrap tests for classification metrics.

Resampling (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993):

- **stratified** (no ``groups``): the cases of each class are drawn with replacement within their class, so every
  resample has the class counts of the data and AUROC is always defined;
- **cluster** (``groups`` = patient ids): whole patients are drawn with replacement, all their images together,
  because several images of one patient are not independent (Field & Welsh, "Bootstrapping clustered data", JRSS-B
  2007). Patients are stratified by the set of classes their images hold.

Intervals are **percentile** intervals: the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the
metric over the resamples (resamples where the metric is undefined are left out). Each resample is a vector of
draw counts per case, so the metrics are computed for all resamples at once, without copying or re-sorting cases
(:mod:`._auc`); 2000 resamples of 500 cases take a few tens of milliseconds per metric.

:data:`METRICS` is the registry of metrics by name. Each entry takes ``(labels (N,), probabilities (N, K), weights
(B, N), threshold)`` and returns ``(B,)`` values; two classes use the positive class (index 1), called positive at
``probability >= threshold``; more classes use the arg-max and macro (one-vs-rest) averages, as
:func:`~medtl_monai.evaluation.classification_summary`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ._auc import weighted_auroc, weighted_average_precision
from .calibration import as_class_probabilities, per_case_brier, weighted_expected_calibration_error

__all__ = [
    "METRICS",
    "SUMMARY_METRICS",
    "PairedBootstrapResult",
    "bootstrap_ci",
    "bootstrap_distribution",
    "paired_bootstrap_test",
    "percentile_interval",
    "resample_weights",
    "resampling_method",
    "summary_with_ci",
]

MetricFunction = Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]

#: the largest number of (resample, case) weights held in memory at once
_CHUNK = 4_000_000


def _summarise(per_class: np.ndarray) -> np.ndarray:
    """(B, K) per-class values → (B,): class 1's for two classes, the mean of the defined classes for more."""
    if per_class.shape[1] == 2:
        return per_class[:, 1]
    defined = ~np.isnan(per_class)
    counts = defined.sum(axis=1)
    return np.where(counts > 0, np.where(defined, per_class, 0.0).sum(axis=1) / np.maximum(counts, 1), np.nan)


def _one_vs_rest(area: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> MetricFunction:
    def metric(labels: np.ndarray, probs: np.ndarray, weights: np.ndarray, threshold: float) -> np.ndarray:
        classes = [1] if probs.shape[1] == 2 else range(probs.shape[1])
        per_class = np.stack([area(labels == k, probs[:, k], weights) for k in classes], axis=1)
        return per_class[:, 0] if probs.shape[1] == 2 else _summarise(per_class)
    return metric


def _predicted(probs: np.ndarray, threshold: float) -> np.ndarray:
    return (probs[:, 1] >= threshold).astype(int) if probs.shape[1] == 2 else probs.argmax(axis=1)


def _rates(labels: np.ndarray, probs: np.ndarray, weights: np.ndarray, threshold: float) -> tuple[np.ndarray, ...]:
    """Per-class (one-vs-rest) weighted sensitivity and specificity, (B, K) each."""
    eye = np.eye(probs.shape[1])
    true, called = eye[labels], eye[_predicted(probs, threshold)]
    positives, negatives = weights @ true, weights @ (1.0 - true)
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = np.where(positives > 0, (weights @ (true * called)) / positives, np.nan)
        specificity = np.where(negatives > 0, (weights @ ((1 - true) * (1 - called))) / negatives, np.nan)
    return sensitivity, specificity


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=1)
    return (weights @ values) / np.where(total > 0, total, np.nan)


def _sensitivity(labels, probs, weights, threshold):
    return _summarise(_rates(labels, probs, weights, threshold)[0])


def _specificity(labels, probs, weights, threshold):
    return _summarise(_rates(labels, probs, weights, threshold)[1])


def _balanced_accuracy(labels, probs, weights, threshold):
    sensitivity, specificity = _rates(labels, probs, weights, threshold)
    if probs.shape[1] == 2:
        return 0.5 * (sensitivity[:, 1] + specificity[:, 1])
    return _summarise(sensitivity)


def _accuracy(labels, probs, weights, threshold):
    return _weighted_mean((_predicted(probs, threshold) == labels).astype(np.float64), weights)


def _brier(labels, probs, weights, threshold):
    return _weighted_mean(per_case_brier(labels, probs), weights)


def _ece(labels, probs, weights, threshold):
    return weighted_expected_calibration_error(labels, probs, weights)


#: metrics by name: ``f(labels (N,), probabilities (N, K), weights (B, N), threshold) -> (B,)``
METRICS: dict[str, MetricFunction] = {
    "auroc": _one_vs_rest(weighted_auroc),
    "auprc": _one_vs_rest(weighted_average_precision),
    "accuracy": _accuracy,
    "balanced_accuracy": _balanced_accuracy,
    "sensitivity": _sensitivity,
    "specificity": _specificity,
    "brier": _brier,
    "ece": _ece,
}


def _metric(metric: str | MetricFunction) -> MetricFunction:
    if callable(metric):
        return metric
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)} (or a function, see METRICS).")
    return METRICS[metric]


def _inputs(labels: np.ndarray | Sequence[int], scores: np.ndarray | Sequence,
            groups: Sequence | None) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(int).ravel()
    p = as_class_probabilities(scores)
    if len(p) != len(y) or (groups is not None and len(groups) != len(y)):
        raise ValueError(f"labels ({len(y)}), scores ({len(p)}) and groups "
                         f"({'-' if groups is None else len(groups)}) must have one entry per case.")
    if len(y) == 0:
        raise ValueError("the bootstrap needs at least one case.")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels must be class indices 0..{p.shape[1] - 1}, got {sorted(set(y.tolist()))}.")
    return y, p


def _strata(labels: np.ndarray, groups: Sequence | None) -> tuple[np.ndarray, np.ndarray]:
    """The resampling units (cases, or patients) as a unit index per case, and a stratum per unit."""
    if groups is None:
        return np.arange(len(labels)), labels
    units, unit_of_case = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    classes = np.zeros((len(units), labels.max() + 1), dtype=bool)
    classes[unit_of_case, labels] = True  # the set of classes each patient holds is its stratum
    return unit_of_case, np.unique(classes, axis=0, return_inverse=True)[1].ravel()


def resample_weights(labels: np.ndarray | Sequence[int], n_resamples: int, seed: int | np.random.Generator = 0,
                     groups: Sequence | None = None) -> Iterator[np.ndarray]:
    """Bootstrap resamples as case weights (how many times each case was drawn), in chunks.

    Args:
        labels: (N,) class indices (the strata).
        n_resamples: B, the number of resamples.
        seed: seed or generator of the draws.
        groups: (N,) patient ids: draw whole patients (cluster bootstrap) instead of cases.

    Yields:
        (b, N) float arrays of draw counts, ``b`` rows at a time, ``B`` rows in all.
    """
    y = np.asarray(labels).astype(int).ravel()
    rng = np.random.default_rng(seed)
    unit_of_case, stratum = _strata(y, groups)
    members = [np.flatnonzero(stratum == s) for s in np.unique(stratum)]
    n_units = len(stratum)
    chunk = max(1, _CHUNK // max(len(y), n_units))
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        offsets = np.arange(b)[:, None] * n_units
        drawn = [units[rng.integers(0, len(units), size=(b, len(units)))] + offsets for units in members]
        counts = np.bincount(np.concatenate(drawn, axis=1).ravel(), minlength=b * n_units).reshape(b, n_units)
        yield counts[:, unit_of_case].astype(np.float64)


def bootstrap_distribution(labels: np.ndarray | Sequence[int], score_sets: Sequence[np.ndarray | Sequence],
                           metrics: Sequence[str | MetricFunction], n_resamples: int = 2000,
                           groups: Sequence | None = None, seed: int = 0,
                           threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Metrics of several score sets on the same cases, on the full data and on the same bootstrap resamples.

    Args:
        labels: (N,) class indices.
        score_sets: S arrays of scores, each (N,) positive-class probabilities or (N, K) class probabilities.
        metrics: M names of :data:`METRICS` or functions of the same form.
        n_resamples: B.
        groups: (N,) patient ids for a cluster bootstrap.
        seed: seed of the draws.
        threshold: decision threshold of the positive class (two classes).

    Returns:
        ``(estimates (S, M), resampled (S, M, B))``.
    """
    fns = [_metric(m) for m in metrics]
    inputs = [_inputs(labels, scores, groups) for scores in score_sets]
    y = inputs[0][0]
    full = np.ones((1, len(y)))
    estimates = np.array([[fn(y, p, full, threshold)[0] for fn in fns] for _, p in inputs])
    chunks = [np.array([[fn(y, p, w, threshold) for fn in fns] for _, p in inputs])
              for w in resample_weights(y, n_resamples, seed, groups)]
    return estimates, np.concatenate(chunks, axis=2)


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` percentile interval of resampled values, non-finite ones left out (NaN, NaN when
    none is finite).

    Raises:
        ValueError: a confidence outside (0, 1).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(finite, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def bootstrap_ci(labels: np.ndarray | Sequence[int], scores: np.ndarray | Sequence,
                 metric: str | MetricFunction = "auroc", n_resamples: int = 2000, confidence: float = 0.95,
                 groups: Sequence | None = None, seed: int = 0, threshold: float = 0.5) -> tuple[float, float, float]:
    """A metric and its percentile bootstrap confidence interval, stratified by class, or over whole patients
    (cluster bootstrap) when ``groups`` is given.

    Args:
        labels: (N,) class indices.
        scores: (N,) positive-class scores or (N, K) class probabilities (Brier and ECE need probabilities).
        metric: a name of :data:`METRICS` (``auroc``, ``auprc``, ``accuracy``, ``balanced_accuracy``,
            ``sensitivity``, ``specificity``, ``brier``, ``ece``) or a function of the same form.
        n_resamples: number of bootstrap resamples.
        confidence: coverage of the interval.
        groups: (N,) patient ids: resample patients, not images.
        seed: seed of the resampling.
        threshold: decision threshold of the positive class for the threshold metrics (two classes).

    Returns:
        ``(estimate on all cases, low, high)``; NaN bounds when the metric is undefined on every resample.

    Raises:
        ValueError: an unknown metric, inputs of different lengths, labels that are not class indices, a
            confidence outside (0, 1).
    """
    estimates, resampled = bootstrap_distribution(labels, [scores], [metric], n_resamples, groups, seed, threshold)
    return (float(estimates[0, 0]), *percentile_interval(resampled[0, 0], confidence))


@dataclass(frozen=True)
class PairedBootstrapResult:
    """A paired bootstrap comparison of one metric of two models on the same cases.

    Attributes:
        metric: the metric's name.
        value_a: the metric of model A on all cases.
        value_b: the metric of model B on all cases.
        difference: ``value_b - value_a``.
        ci_low: lower percentile bound of the difference.
        ci_high: upper percentile bound of the difference.
        p_value: two-sided p-value of "no difference".
        confidence: coverage of the interval.
        n_resamples: number of resamples.
        method: how the cases were resampled.
    """

    metric: str
    value_a: float
    value_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    confidence: float
    n_resamples: int
    method: str


def resampling_method(groups: Sequence | None, n_resamples: int) -> str:
    """How the intervals were made, in words (the ``method`` of :func:`summary_with_ci`)."""
    if groups is None:
        return f"stratified percentile bootstrap, {n_resamples} resamples"
    return f"cluster bootstrap over patients (stratified by their classes), percentile, {n_resamples} resamples"


def paired_bootstrap_test(labels: np.ndarray | Sequence[int], scores_a: np.ndarray | Sequence,
                          scores_b: np.ndarray | Sequence, metric: str | MetricFunction = "auroc",
                          n_resamples: int = 2000, confidence: float = 0.95, groups: Sequence | None = None,
                          seed: int = 0, threshold: float = 0.5) -> PairedBootstrapResult:
    """Compare a metric of two models evaluated on the same cases: both are computed on the same resamples, so the
    difference keeps the pairing (the cases both models find hard).

    The interval is the percentile interval of the resampled differences; the p-value is that of the bootstrap
    distribution shifted to the null (Efron & Tibshirani 1993, ch. 16): ``(1 + #{|d* - d| >= |d|}) / (1 + B)``.

    Args:
        labels: (N,) class indices.
        scores_a: model A's scores, (N,) or (N, K).
        scores_b: model B's scores, same form.
        metric: a name of :data:`METRICS` or a function of the same form.
        n_resamples: number of resamples.
        confidence: coverage of the interval.
        groups: (N,) patient ids for a cluster bootstrap.
        seed: seed of the resampling.
        threshold: decision threshold of the positive class (two classes), the same for both models.

    Returns:
        The :class:`PairedBootstrapResult` (difference is B minus A).
    """
    estimates, resampled = bootstrap_distribution(labels, [scores_a, scores_b], [metric], n_resamples, groups, seed,
                                                  threshold)
    value_a, value_b = float(estimates[0, 0]), float(estimates[1, 0])
    difference = value_b - value_a
    deltas = resampled[1, 0] - resampled[0, 0]
    deltas = deltas[np.isfinite(deltas)]
    low, high = percentile_interval(deltas, confidence)
    if deltas.size and np.isfinite(difference):
        p_value = float((1 + np.sum(np.abs(deltas - difference) >= abs(difference) - 1e-12)) / (1 + deltas.size))
    else:
        p_value = float("nan")
    name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    return PairedBootstrapResult(name, value_a, value_b, difference, low, high, min(p_value, 1.0), confidence,
                                 n_resamples, resampling_method(groups, n_resamples))


#: the metrics :func:`summary_with_ci` reports
SUMMARY_METRICS: tuple[str, ...] = ("auroc", "auprc", "accuracy", "balanced_accuracy", "sensitivity", "specificity",
                                    "brier", "ece")


def summary_with_ci(probs: np.ndarray | Sequence, labels: np.ndarray | Sequence[int], threshold: float = 0.5,
                    groups: Sequence | None = None, n_resamples: int = 2000, seed: int = 0,
                    confidence: float = 0.95) -> dict:
    """Every metric of :data:`SUMMARY_METRICS` with its bootstrap confidence interval, all from the same resamples;
    what ``metrics.json`` records. Two classes: of the positive class at ``threshold``; more: macro one-vs-rest
    AUROC / AUPRC / sensitivity / specificity, arg-max accuracy, balanced accuracy = mean per-class sensitivity,
    multi-class Brier, top-label ECE.

    Args:
        probs: (N, K) class probabilities (or (N,) positive-class probabilities).
        labels: (N,) class indices.
        threshold: decision threshold of the positive class (two classes).
        groups: (N,) patient ids: cluster bootstrap over patients.
        n_resamples: number of resamples.
        seed: seed of the resampling.
        confidence: coverage of the intervals.

    Returns:
        ``{metric: {"value", "ci_low", "ci_high", "method", "confidence"}, ..., "threshold", "n_cases",
        "n_patients"}`` (``n_patients`` is ``None`` without ``groups``).
    """
    estimates, resampled = bootstrap_distribution(labels, [probs], SUMMARY_METRICS, n_resamples, groups, seed,
                                                  threshold)
    method = resampling_method(groups, n_resamples)
    summary: dict = {}
    for i, name in enumerate(SUMMARY_METRICS):
        low, high = percentile_interval(resampled[0, i], confidence)
        summary[name] = {"value": float(estimates[0, i]), "ci_low": low, "ci_high": high, "method": method,
                         "confidence": confidence}
    summary["threshold"] = float(threshold)
    summary["n_cases"] = len(np.asarray(labels).ravel())
    summary["n_patients"] = None if groups is None else len({str(g) for g in groups})
    return summary
