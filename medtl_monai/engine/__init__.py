"""Training and evaluation pieces for MONAI's Ignite engines: metrics, checkpointing with resume, early stop on a
low learning rate, per-case prediction writing, class weights."""

from .checkpoint import TrainingCheckpointer, atomic_torch_save
from .handlers import PredictionWriter, ProgressBarHandler, StopOnLowLR, logits_and_labels
from .losses import class_weights
from .metrics import AUPRC, AveragePrecisionMetric, average_precision, classification_summary

__all__ = [
    "TrainingCheckpointer",
    "atomic_torch_save",
    "PredictionWriter",
    "StopOnLowLR",
    "ProgressBarHandler",
    "logits_and_labels",
    "class_weights",
    "AUPRC",
    "AveragePrecisionMetric",
    "average_precision",
    "classification_summary",
]
