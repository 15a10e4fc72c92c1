"""Calibration: how far predicted probabilities are from observed frequencies, and two ways to correct them.

What is measured: for two classes, the probability of the positive class (index 1) against the label (a risk read
as a risk); for more classes, the top-label confidence against whether the arg-max is right (Guo et al., "On
Calibration of Modern Neural Networks", ICML 2017). :func:`reliability_curve` bins the cases by that probability
(equal-width bins), :func:`expected_calibration_error` (ECE) is the case-weighted mean gap between a bin's mean
probability and its observed frequency, and :func:`brier_score` (Brier, 1950) the mean squared error of the
probabilities.

Which correction applies:

- **Temperature scaling** (:func:`fit_temperature`, :func:`apply_temperature`; Guo et al. 2017) fixes over- or
  under-confidence: one scalar ``T`` divides the logits, fitted by negative log-likelihood on the **validation**
  split, never the test split. It changes no ranking (AUROC is unchanged) and no arg-max.
- **Prior correction** (:func:`prior_correction`; Saerens, Latinne & Decaestecker, "Adjusting the outputs of a
  classifier to new a priori probabilities", Neural Computation 2002) fixes a known shift of class priors. A model
  trained with class-weighted loss (inverse-frequency weights, :func:`medtl_monai.training.class_weights`) learns the
  posteriors of a *balanced* data set, so its probabilities overstate the rare class; re-weighting them by the
  training prevalence gives probabilities for the data's own prevalence. It also moves a model to a deployment
  prevalence known to differ from training. It changes no ranking but does change the arg-max.

Apply the prior correction first when the model was trained with class weights, then fit a temperature on the
corrected validation probabilities if they are still over- or under-confident.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, softmax

__all__ = [
    "ReliabilityCurve",
    "apply_temperature",
    "brier_score",
    "expected_calibration_error",
    "fit_temperature",
    "logits_from_probabilities",
    "prior_correction",
    "reliability_curve",
]

#: number of equal-width probability bins of :func:`reliability_curve` and :func:`expected_calibration_error`
N_BINS = 10


def as_class_probabilities(probs: np.ndarray | Sequence) -> np.ndarray:
    """Probabilities as an (N, K) array; an (N,) vector is the positive-class probability of two classes."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must be (N,) or (N, K>=2), got shape {p.shape}.")
    return p


def _check_probabilities(p: np.ndarray) -> None:
    if p.size and (np.nanmin(p) < 0.0 or np.nanmax(p) > 1.0):
        raise ValueError("calibration needs probabilities in [0, 1] (got scores outside it); convert logits first.")


def calibration_terms(labels: np.ndarray | Sequence[int], probs: np.ndarray | Sequence,
                      n_bins: int = N_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-case quantities of a reliability curve: the probability that is calibrated, the outcome it predicts
    and its bin (see the module docstring for which probability).

    Args:
        labels: (N,) class indices.
        probs: (N,) positive-class probabilities or (N, K) class probabilities.
        n_bins: equal-width bins over [0, 1].

    Returns:
        ``(confidence (N,), outcome (N,) 0/1, bin index (N,))``.

    Raises:
        ValueError: probabilities outside [0, 1] or shapes that do not match.
    """
    p = as_class_probabilities(probs)
    y = np.asarray(labels).astype(int).ravel()
    if len(y) != len(p):
        raise ValueError(f"{len(y)} labels for {len(p)} rows of probabilities.")
    _check_probabilities(p)
    if p.shape[1] == 2:
        confidence, outcome = p[:, 1], (y == 1).astype(np.float64)
    else:
        confidence, outcome = p.max(axis=1), (p.argmax(axis=1) == y).astype(np.float64)
    bins = np.clip((confidence * n_bins).astype(int), 0, n_bins - 1)  # [0, 1/n), ..., [(n-1)/n, 1]
    return confidence, outcome, bins


def weighted_expected_calibration_error(labels: np.ndarray, probs: np.ndarray, weights: np.ndarray,
                                        n_bins: int = N_BINS) -> np.ndarray:
    """ECE under each row of (B, N) case weights (bootstrap draw counts): ``sum_bins |sum_i w_i (o_i - c_i)| / sum
    w``; a row of ones is :func:`expected_calibration_error`."""
    confidence, outcome, bins = calibration_terms(labels, probs, n_bins)
    per_bin = np.zeros((len(bins), n_bins))
    per_bin[np.arange(len(bins)), bins] = outcome - confidence
    total = weights.sum(axis=1)
    return np.abs(weights @ per_bin).sum(axis=1) / np.where(total > 0, total, np.nan)


def per_case_brier(labels: np.ndarray | Sequence[int], probs: np.ndarray | Sequence) -> np.ndarray:
    """Squared error of each case: ``(p_1 - y)^2`` for two classes, ``sum_k (p_k - [y = k])^2`` for more."""
    p = as_class_probabilities(probs)
    _check_probabilities(p)
    y = np.asarray(labels).astype(int).ravel()
    if p.shape[1] == 2:
        return (p[:, 1] - (y == 1)) ** 2
    return ((p - np.eye(p.shape[1])[y]) ** 2).sum(axis=1)


@dataclass(frozen=True)
class ReliabilityCurve:
    """A reliability diagram's numbers, one entry per bin.

    Attributes:
        bin_edges: (n_bins + 1,) bin edges over [0, 1].
        confidence: (n_bins,) mean predicted probability in each bin (NaN for an empty bin).
        observed: (n_bins,) observed frequency of the predicted outcome in each bin (NaN for an empty bin).
        counts: (n_bins,) cases per bin.
    """

    bin_edges: np.ndarray
    confidence: np.ndarray
    observed: np.ndarray
    counts: np.ndarray


def reliability_curve(labels: np.ndarray | Sequence[int], probs: np.ndarray | Sequence,
                      n_bins: int = N_BINS) -> ReliabilityCurve:
    """Mean predicted probability and observed frequency per equal-width probability bin.

    Args:
        labels: (N,) class indices.
        probs: (N,) positive-class probabilities or (N, K) class probabilities.
        n_bins: number of bins.

    Returns:
        The :class:`ReliabilityCurve`; a calibrated model has ``observed`` close to ``confidence``.
    """
    confidence, outcome, bins = calibration_terms(labels, probs, n_bins)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bins, weights=confidence, minlength=n_bins) / counts
        observed = np.bincount(bins, weights=outcome, minlength=n_bins) / counts
    return ReliabilityCurve(np.linspace(0.0, 1.0, n_bins + 1), mean_conf, observed, counts)


def expected_calibration_error(labels: np.ndarray | Sequence[int], probs: np.ndarray | Sequence,
                               n_bins: int = N_BINS) -> float:
    """Expected calibration error: ``sum_b (n_b / N) |observed_b - confidence_b|`` over equal-width bins (Naeini et
    al., AAAI 2015; Guo et al., ICML 2017).

    Args:
        labels: (N,) class indices.
        probs: (N,) positive-class probabilities or (N, K) class probabilities.
        n_bins: number of bins.

    Returns:
        The ECE in [0, 1]; NaN with no case.
    """
    n = len(np.asarray(labels).ravel())
    return float(weighted_expected_calibration_error(labels, probs, np.ones((1, n)), n_bins)[0])


def brier_score(labels: np.ndarray | Sequence[int], probs: np.ndarray | Sequence) -> float:
    """Brier score (Brier, Monthly Weather Review 1950): the mean squared error of the probabilities; for two classes
    that of the positive-class probability (0 perfect, 0.25 a constant 0.5), for more the sum over classes.

    Args:
        labels: (N,) class indices.
        probs: (N,) positive-class probabilities or (N, K) class probabilities.

    Returns:
        The Brier score; NaN with no case.
    """
    errors = per_case_brier(labels, probs)
    return float(errors.mean()) if errors.size else float("nan")


def logits_from_probabilities(probs: np.ndarray | Sequence, eps: float = 1e-12) -> np.ndarray:
    """Logits that give back ``probs``: the log-odds of an (N,) positive-class probability, the log of (N, K)
    probabilities (softmax ignores the constant it leaves). For a ``predictions.csv``, which stores probabilities.

    Args:
        probs: (N,) or (N, K) probabilities.
        eps: floor that keeps 0 and 1 finite.

    Returns:
        Logits of the same shape.
    """
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p) if p.ndim == 1 else np.log(p)


def apply_temperature(logits: np.ndarray | Sequence, temperature: float) -> np.ndarray:
    """Probabilities of temperature-scaled logits: ``sigmoid(z / T)`` for (N,) binary logits, ``softmax(z / T)``
    for (N, K) logits (Guo et al., ICML 2017).

    Args:
        logits: (N,) positive-class logits or (N, K) logits.
        temperature: ``T > 0`` (> 1 softens over-confident probabilities).

    Returns:
        Probabilities of the same shape as ``logits``.

    Raises:
        ValueError: a temperature that is not positive.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    z = np.asarray(logits, dtype=np.float64) / temperature
    return expit(z) if z.ndim == 1 else softmax(z, axis=1)


def fit_temperature(logits: np.ndarray | Sequence, labels: np.ndarray | Sequence[int],
                    bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature that minimises the negative log-likelihood of the labels (Guo et al., ICML 2017). Fit it on
    the **validation** split and apply it (:func:`apply_temperature`) to the test split.

    Args:
        logits: (N,) positive-class logits or (N, K) logits (from probabilities: :func:`logits_from_probabilities`).
        labels: (N,) class indices.
        bounds: the search interval for ``T`` (searched on a log scale).

    Returns:
        The fitted temperature.

    Raises:
        ValueError: no case, or logits and labels of different lengths.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).astype(int).ravel()
    if len(z) == 0 or len(z) != len(y):
        raise ValueError(f"fit_temperature needs as many labels as logits (got {len(y)} and {len(z)}), at least one.")
    if z.ndim == 1:
        z = np.stack([np.zeros_like(z), z], axis=1)  # sigmoid(z) = softmax([0, z])[1]

    def nll(log_t: float) -> float:
        return float(-log_softmax(z / np.exp(log_t), axis=1)[np.arange(len(y)), y].mean())

    result = minimize_scalar(nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded",
                             options={"xatol": 1e-6})
    return float(np.exp(result.x))


def prior_correction(probs: np.ndarray | Sequence, train_prevalence: float | Sequence[float], balanced: bool = True,
                     target_prevalence: float | Sequence[float] | None = None) -> np.ndarray:
    """Move probabilities from the class priors a model was trained under to other priors (Saerens et al., Neural
    Computation 2002): ``p'(k|x) ∝ p(k|x) · target_k / source_k``.

    With ``balanced=True`` (a model trained with inverse-frequency class weights, whose effective training prior is
    uniform, ``1/K``) the target is the training prevalence (or ``target_prevalence`` when given): the probabilities
    become those of the data's own prevalence. With ``balanced=False`` (a model trained without class weights) the
    source is the training prevalence and ``target_prevalence`` must say where to move it.

    Args:
        probs: (N,) positive-class probabilities or (N, K) class probabilities.
        train_prevalence: the training split's prevalence: of the positive class (a float) for two classes, or K
            class fractions.
        balanced: whether the model was trained with class-weighted (balanced-prior) loss.
        target_prevalence: the prevalence to move to, same form as ``train_prevalence``.

    Returns:
        Corrected probabilities, in the shape of ``probs``.

    Raises:
        ValueError: prevalences that are not positive fractions of the right length, or ``balanced=False`` with no
            ``target_prevalence``.
    """
    p = as_class_probabilities(probs)
    k = p.shape[1]

    def fractions(value: float | Sequence[float], name: str) -> np.ndarray:
        v = np.asarray([1.0 - value, value] if np.ndim(value) == 0 else value, dtype=np.float64)
        if v.shape != (k,) or np.any(v <= 0) or not np.isclose(v.sum(), 1.0):
            raise ValueError(f"{name} must be {k} positive fractions summing to 1 (or one for two classes), "
                             f"got {value}.")
        return v

    if balanced:
        source = np.full(k, 1.0 / k)
        target = fractions(train_prevalence if target_prevalence is None else target_prevalence, "prevalence")
    else:
        if target_prevalence is None:
            raise ValueError("prior_correction(balanced=False) needs target_prevalence (the prevalence to move to).")
        source = fractions(train_prevalence, "train_prevalence")
        target = fractions(target_prevalence, "target_prevalence")
    shifted = p * (target / source)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted[:, 1] if np.ndim(probs) == 1 else shifted
