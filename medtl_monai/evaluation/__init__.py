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
from .curves import CurveBand, pr_band, roc_band
from .delong import DeLongAUC, DeLongResult, delong_covariance, delong_test, delong_variance
from .metrics import average_precision, classification_summary, positive_class_scores
from .multilabel import MULTILABEL_METRICS, MultiLabelMean, multilabel_summary, per_class_metric, stacked_outputs
from .operating_point import OperatingPoint, apply_threshold, choose_threshold, roc_curve
from .post_hoc import add_post_hoc_metrics, post_hoc_metrics
from .prediction_table import PredictionTable, patient_groups, read_prediction_table
from .predictions import PredictionWriter
from .tta import TTAEffectWriter, TTAInferer, TTAView, tta_effect, tta_inferer, tta_views

__all__ = [
    "METRICS",
    "MULTILABEL_METRICS",
    "ClassAveragedConfusionMatrix",
    "ClassAveragedConfusionMetric",
    "CurveBand",
    "DeLongAUC",
    "DeLongResult",
    "MultiLabelMean",
    "OperatingPoint",
    "PairedBootstrapResult",
    "PredictionTable",
    "PredictionWriter",
    "ReliabilityCurve",
    "TTAEffectWriter",
    "TTAInferer",
    "TTAView",
    "add_post_hoc_metrics",
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
    "multilabel_summary",
    "paired_bootstrap_test",
    "patient_groups",
    "per_class_metric",
    "per_class_rates",
    "positive_class_scores",
    "post_hoc_metrics",
    "pr_band",
    "prior_correction",
    "read_prediction_table",
    "reliability_curve",
    "roc_band",
    "roc_curve",
    "stacked_outputs",
    "summarise_classes",
    "summary_with_ci",
    "tta_effect",
    "tta_inferer",
    "tta_views",
]
