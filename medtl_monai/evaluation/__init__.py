"""Evaluation: classification metrics from per-case probabilities, and the handler that writes an evaluation's
predictions and metrics."""

from .metrics import average_precision, classification_summary, positive_class_scores
from .predictions import PredictionWriter

__all__ = ["PredictionWriter", "average_precision", "classification_summary", "positive_class_scores"]
