"""Operating points: a decision threshold chosen on the validation split and applied, unchanged, to the test split.

A threshold chosen on the test cases reports an optimistic sensitivity and specificity (the choice has seen the test
labels), so :func:`choose_threshold` takes the validation cases and records which cases it saw, and
:func:`apply_threshold` refuses test cases the threshold was chosen on. The rules: Youden's J (Youden, "Index for
rating diagnostic tests", Cancer 1950; the point of the ROC curve farthest above the chance line), or the most
specific threshold that reaches a target sensitivity, or the most sensitive one that keeps a target specificity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .bootstrap import bootstrap_distribution, percentile_interval, resampling_method

__all__ = ["RULES", "OperatingPoint", "apply_threshold", "choose_threshold", "roc_curve"]

#: the threshold rules of :func:`choose_threshold`
RULES: tuple[str, ...] = ("youden", "sensitivity", "specificity")


def _binary(labels: np.ndarray | Sequence[int], scores: np.ndarray | Sequence) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(int).ravel()
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2 and s.shape[1] == 2:
        s = s[:, 1]
    if s.ndim != 1 or len(s) != len(y):
        raise ValueError(f"operating points need (N,) positive-class scores for N={len(y)} labels, got {s.shape}.")
    if not set(y.tolist()) <= {0, 1}:
        raise ValueError(f"operating points are for two classes (0/1 labels), got {sorted(set(y.tolist()))}.")
    return y, s


def roc_curve(labels: np.ndarray | Sequence[int], scores: np.ndarray | Sequence) -> tuple[np.ndarray, ...]:
    """The empirical ROC curve, one point per distinct score (a case is positive when ``score >= threshold``).

    Each threshold lies half-way between the two distinct scores it separates (the last is the lowest score, the
    first lies just above the highest), so the rates are the same for any threshold in that gap.

    Args:
        labels: (N,) 0/1 labels.
        scores: (N,) positive-class scores or (N, 2) probabilities.

    Returns:
        ``(fpr, tpr, thresholds)``, from ``(0, 0)`` (threshold above every score) to ``(1, 1)``.

    Raises:
        ValueError: labels that are not 0/1, or scores of another length.
    """
    y, s = _binary(labels, scores)
    distinct = np.unique(s)[::-1]  # highest first
    pos, neg = np.sort(s[y == 1]), np.sort(s[y == 0])
    called_pos = len(pos) - np.searchsorted(pos, distinct, side="left")  # positives with score >= each distinct score
    called_neg = len(neg) - np.searchsorted(neg, distinct, side="left")
    n1, n0 = max(int(y.sum()), 1), max(int((1 - y).sum()), 1)
    tpr = np.r_[0.0, called_pos / n1] if (y == 1).any() else np.full(len(distinct) + 1, np.nan)
    fpr = np.r_[0.0, called_neg / n0] if (y == 0).any() else np.full(len(distinct) + 1, np.nan)
    top = np.nextafter(distinct[0], np.inf) if len(distinct) else np.inf
    thresholds = np.r_[top, 0.5 * (distinct[:-1] + distinct[1:]), distinct[-1:]]
    return fpr, tpr, thresholds


@dataclass(frozen=True)
class OperatingPoint:
    """A decision threshold and where it came from.

    Attributes:
        threshold: call a case positive when its score is ``>= threshold``.
        rule: ``"youden"``, ``"sensitivity"`` or ``"specificity"``.
        target: the target rate of the sensitivity / specificity rules (``None`` for Youden).
        sensitivity: the sensitivity on the cases it was chosen on.
        specificity: the specificity on the cases it was chosen on.
        n_cases: how many cases it was chosen on.
        case_ids: the ids of those cases, when given.
    """

    threshold: float
    rule: str
    target: float | None
    sensitivity: float
    specificity: float
    n_cases: int
    case_ids: tuple[str, ...] | None = None


def choose_threshold(labels: np.ndarray | Sequence[int], scores: np.ndarray | Sequence, rule: str = "youden",
                     target: float | None = None, ids: Sequence | None = None) -> OperatingPoint:
    """Choose a decision threshold on the **validation** cases.

    Args:
        labels: (N,) 0/1 validation labels.
        scores: (N,) validation positive-class scores or (N, 2) probabilities.
        rule: ``"youden"`` (maximise sensitivity + specificity - 1; among ties the highest threshold),
            ``"sensitivity"`` (the highest threshold whose sensitivity is >= ``target``: the most specific one) or
            ``"specificity"`` (the lowest threshold whose specificity is >= ``target``: the most sensitive one).
        target: the target rate in (0, 1] for the sensitivity and specificity rules.
        ids: (N,) the validation case ids, recorded so that :func:`apply_threshold` can refuse them.

    Returns:
        The :class:`OperatingPoint`.

    Raises:
        ValueError: an unknown rule, a missing or out-of-range target, a split without both classes.
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}.")
    if rule != "youden" and (target is None or not 0 < target <= 1):
        raise ValueError(f"rule {rule!r} needs a target rate in (0, 1], got {target}.")
    y, s = _binary(labels, scores)
    if len(set(y.tolist())) < 2:
        raise ValueError("choosing a threshold needs positive and negative validation cases.")
    if ids is not None and len(ids) != len(y):
        raise ValueError(f"{len(ids)} ids for {len(y)} cases.")
    fpr, tpr, thresholds = roc_curve(y, s)
    if rule == "youden":
        best = int(np.argmax(tpr - fpr))
    elif rule == "sensitivity":
        best = int(np.flatnonzero(tpr >= target - 1e-12)[0])
    else:
        best = int(np.flatnonzero(1.0 - fpr >= target - 1e-12)[-1])
    return OperatingPoint(float(thresholds[best]), rule, None if rule == "youden" else float(target),
                          float(tpr[best]), float(1.0 - fpr[best]), len(y),
                          None if ids is None else tuple(str(i) for i in ids))


def apply_threshold(point: OperatingPoint | float, labels: np.ndarray | Sequence[int], scores: np.ndarray | Sequence,
                    ids: Sequence | None = None, groups: Sequence | None = None, n_resamples: int = 2000,
                    confidence: float = 0.95, seed: int = 0) -> dict:
    """Sensitivity and specificity of the **test** cases at a threshold chosen on validation, with bootstrap
    confidence intervals (:func:`~medtl_monai.evaluation.bootstrap_ci`; cluster bootstrap with ``groups``).

    Args:
        point: the :class:`OperatingPoint` from :func:`choose_threshold`, or a threshold.
        labels: (N,) 0/1 test labels.
        scores: (N,) test positive-class scores or (N, 2) probabilities.
        ids: (N,) test case ids, checked against the cases the threshold was chosen on.
        groups: (N,) patient ids for a cluster bootstrap.
        n_resamples: number of resamples.
        confidence: coverage of the intervals.
        seed: seed of the resampling.

    Returns:
        ``{"threshold", "rule", "target", "chosen_on_cases", "n_cases", "sensitivity": {"value", "ci_low",
        "ci_high", "method", "confidence"}, "specificity": {...}}``.

    Raises:
        ValueError: test ids that the threshold was chosen on.
    """
    if isinstance(point, OperatingPoint):
        if ids is not None and point.case_ids is not None:
            seen = sorted(set(point.case_ids) & {str(i) for i in ids})
            if seen:
                raise ValueError(f"the threshold was chosen on {len(seen)} of these test cases (e.g. {seen[:3]}); "
                                 "choose it on the validation split.")
        threshold, rule, target, chosen_on = point.threshold, point.rule, point.target, point.n_cases
    else:
        threshold, rule, target, chosen_on = float(point), "given", None, None
    y, s = _binary(labels, scores)
    estimates, resampled = bootstrap_distribution(y, [s], ["sensitivity", "specificity"], n_resamples, groups, seed,
                                                  threshold)
    result: dict = {"threshold": threshold, "rule": rule, "target": target, "chosen_on_cases": chosen_on,
                    "n_cases": len(y)}
    for i, name in enumerate(("sensitivity", "specificity")):
        low, high = percentile_interval(resampled[0, i], confidence)
        result[name] = {"value": float(estimates[0, i]), "ci_low": low, "ci_high": high,
                        "method": resampling_method(groups, n_resamples), "confidence": confidence}
    return result
