"""Evaluation: classification metrics from per-case probabilities, and the handler that writes an evaluation's
predictions and metrics."""

from .class_rates import ClassAveragedConfusionMatrix, ClassAveragedConfusionMetric, per_class_rates, summarise_classes
from .metrics import average_precision, classification_summary, positive_class_scores
from .predictions import PredictionWriter

__all__ = [
    "ClassAveragedConfusionMatrix",
    "ClassAveragedConfusionMetric",
    "PredictionWriter",
    "average_precision",
    "classification_summary",
    "per_class_rates",
    "positive_class_scores",
    "summarise_classes",
]
