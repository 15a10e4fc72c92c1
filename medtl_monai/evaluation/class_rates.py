"""Per-class rates (sensitivity, specificity, ...) from one-vs-rest confusion matrices, summarised the same way for
any number of classes: the positive class (index 1) of a two-class task, the macro average (the mean over the
classes) of more.

MONAI's ``ConfusionMatrix`` handler averages the confusion counts of the classes it is given before it computes the
rate (a micro average), and with ``include_background=False`` it drops class 0: right for two classes, wrong for
three. :class:`ClassAveragedConfusionMatrix` keeps MONAI's confusion matrices and handler plumbing (distributed
gathering, ``metric_details``) and changes only how the classes are summarised. Overall accuracy needs no
one-vs-rest matrix: the bundles use ``ignite.metrics.Accuracy``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.handlers import IgniteMetricHandler
from monai.metrics import ConfusionMatrixMetric, compute_confusion_matrix_metric, get_confusion_matrix

__all__ = ["ClassAveragedConfusionMatrix", "ClassAveragedConfusionMetric", "per_class_rates", "summarise_classes"]


def summarise_classes(per_class: torch.Tensor | np.ndarray | Sequence[float]) -> float:
    """One number from per-class values: class 1's for two classes, the mean over classes (NaN classes left out)
    for more.

    Args:
        per_class: (K,) values, NaN where a class's rate is undefined.

    Returns:
        The summary, NaN when it is undefined.
    """
    values = np.asarray(torch.as_tensor(per_class, dtype=torch.float64).reshape(-1))
    if values.size == 2:
        return float(values[1])
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def per_class_rates(predicted: np.ndarray | Sequence[int], labels: np.ndarray | Sequence[int], num_classes: int,
                    metric_name: str) -> np.ndarray:
    """A confusion-matrix rate of each class against the rest (MONAI's ``get_confusion_matrix`` and
    ``compute_confusion_matrix_metric``).

    Args:
        predicted: (N,) predicted class indices.
        labels: (N,) true class indices.
        num_classes: K.
        metric_name: a MONAI confusion-matrix metric, e.g. ``"sensitivity"`` or ``"specificity"``.

    Returns:
        (K,) rates, NaN for a class whose denominator is 0.
    """
    eye = torch.eye(num_classes, dtype=torch.float64)
    pred = eye[torch.as_tensor(np.asarray(predicted, dtype=np.int64).reshape(-1))]
    true = eye[torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1))]
    counts = get_confusion_matrix(pred, true, include_background=True).sum(0).double()  # (K, 4): tp, fp, tn, fn
    return compute_confusion_matrix_metric(metric_name, counts).numpy()


class ClassAveragedConfusionMetric(ConfusionMatrixMetric):
    """MONAI's confusion-matrix metric on one-hot classification outputs, each class against the rest, summarised by
    :func:`summarise_classes` (class 1 of two, the macro average of more).

    Args:
        metric_name: one MONAI confusion-matrix metric, e.g. ``"sensitivity"`` or ``"specificity"``.

    Raises:
        ValueError: ``metric_name="accuracy"``: the mean of one-vs-rest accuracies is not the accuracy; use
            ``ignite.metrics.Accuracy``.
    """

    def __init__(self, metric_name: str = "sensitivity") -> None:
        if str(metric_name).lower() == "accuracy":
            raise ValueError("metric_name='accuracy': the mean of one-vs-rest accuracies is not the accuracy; use "
                             "ignite.metrics.Accuracy (overall accuracy) instead.")
        super().__init__(include_background=True, metric_name=metric_name, reduction="sum_batch")

    def per_class(self) -> torch.Tensor:
        """(K,) rate of each class over everything seen so far (every process's cases when distributed)."""
        counts = self.get_buffer()  # (N, K, 4) per case and class
        return compute_confusion_matrix_metric(self.metric_name[0], counts.sum(0).double())

    def aggregate(self, compute_sample: bool = False, reduction: str | None = None) -> list[torch.Tensor]:  # type: ignore[override]
        """The summary of :meth:`per_class`, as MONAI's handlers read it (a one-element list)."""
        return [torch.tensor(summarise_classes(self.per_class()))]


class ClassAveragedConfusionMatrix(IgniteMetricHandler):
    """Ignite handler of :class:`ClassAveragedConfusionMetric`: sensitivity (or another rate) of the positive class
    of two, macro-averaged over more, from ``(one-hot predictions, one-hot labels)``.

    Args:
        metric_name: e.g. ``"sensitivity"`` or ``"specificity"``.
        output_transform: from ``engine.state.output`` to ``(y_pred, y)``, e.g.
            ``from_engine(["pred_label", "label"])``.
        save_details: save the per-case, per-class confusion counts in ``engine.state.metric_details``.
    """

    def __init__(self, metric_name: str = "sensitivity", output_transform: Callable = lambda x: x,
                 save_details: bool = True) -> None:
        self.metric_name = metric_name
        super().__init__(metric_fn=ClassAveragedConfusionMetric(metric_name), output_transform=output_transform,
                         save_details=save_details)
