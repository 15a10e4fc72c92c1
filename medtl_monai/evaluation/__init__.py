"""Evaluation: classification metrics from per-case probabilities, their uncertainty (bootstrap intervals, DeLong's
test), operating points chosen on validation, calibration, and the handler that writes an evaluation's predictions
and metrics."""

from .bootstrap import (
    METRICS,
    PairedBootstrapResult,
    bootstrap_ci,
    bootstrap_distribution,
    paired_bootstrap_test,
    summary_with_ci,
)
from .calibration import (
    ReliabilityCurve,
    apply_temperature,
    brier_score,
    expected_calibration_error,
    fit_temperature,
    logits_from_probabilities,
    prior_correction,
    reliability_curve,
)
from .class_rates import ClassAveragedConfusionMatrix, ClassAveragedConfusionMetric, per_class_rates, summarise_classes
from .delong import DeLongAUC, DeLongResult, delong_covariance, delong_test, delong_variance
from .metrics import average_precision, classification_summary, positive_class_scores
from .operating_point import OperatingPoint, apply_threshold, choose_threshold, roc_curve
from .predictions import PredictionWriter

__all__ = [
    "METRICS",
    "ClassAveragedConfusionMatrix",
    "ClassAveragedConfusionMetric",
    "DeLongAUC",
    "DeLongResult",
    "OperatingPoint",
    "PairedBootstrapResult",
    "PredictionWriter",
    "ReliabilityCurve",
    "apply_temperature",
    "apply_threshold",
    "average_precision",
    "bootstrap_ci",
    "bootstrap_distribution",
    "brier_score",
    "choose_threshold",
    "classification_summary",
    "delong_covariance",
    "delong_test",
    "delong_variance",
    "expected_calibration_error",
    "fit_temperature",
    "logits_from_probabilities",
    "paired_bootstrap_test",
    "per_class_rates",
    "positive_class_scores",
    "prior_correction",
    "reliability_curve",
    "roc_curve",
    "summarise_classes",
    "summary_with_ci",
]
