"""Read back the labelled rows of a ``predictions.csv`` written by :class:`~medtl_monai.evaluation.PredictionWriter`.

The one reader of that file's single-label form (``id``, ``label`` = a class name, ``prob_<class>``...), used by the
post-hoc metrics (:mod:`.post_hoc`), the error report and the run comparison, so that they agree on which rows count:
rows without a label (an inference) and rows without probabilities (a skipped case) are left out.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PredictionTable", "patient_groups", "read_prediction_table"]


@dataclass(frozen=True)
class PredictionTable:
    """The labelled, predicted cases of an evaluation.

    Attributes:
        path: the file read.
        ids: (N,) case ids.
        labels: (N,) class indices.
        probs: (N, K) class probabilities.
        class_names: the K class names, in index order.
    """

    path: str
    ids: tuple[str, ...]
    labels: np.ndarray
    probs: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)


def read_prediction_table(path: str | os.PathLike) -> PredictionTable:
    """Read the labelled rows that have probabilities.

    Args:
        path: a ``predictions.csv``.

    Returns:
        The :class:`PredictionTable` (possibly empty).

    Raises:
        FileNotFoundError: no such file.
        ValueError: ``"<path>: ..."`` when the file is not a single-label predictions file (no ``id``, ``label`` or
            at least two ``prob_`` columns) or a label is not one of its classes.
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        names = [c[len("prob_"):] for c in fields if c.startswith("prob_")]
        if len(names) < 2 or "id" not in fields or "label" not in fields:
            raise ValueError(f"{path}: not a single-label predictions file (id, label, prob_<class>... columns).")
        ids, labels, probs = [], [], []
        for raw in reader:
            if not raw["label"] or not raw[f"prob_{names[0]}"]:
                continue
            if raw["label"] not in names:
                raise ValueError(f"{path}: label {raw['label']!r} of case {raw['id']!r} is not one of the classes "
                                 f"{names}.")
            ids.append(raw["id"])
            labels.append(names.index(raw["label"]))
            probs.append([float(raw[f"prob_{n}"]) for n in names])
    return PredictionTable(str(path), tuple(ids), np.asarray(labels, dtype=np.int64),
                           np.asarray(probs, dtype=np.float64).reshape(len(ids), len(names)), tuple(names))


def patient_groups(ids: Sequence[str], items: Sequence[Mapping], key: str = "patient_id") -> list[str] | None:
    """The patient of each case, from datalist items, for a cluster bootstrap.

    Args:
        ids: case ids.
        items: datalist items with ``id`` and ``key``.
        key: the items' patient key.

    Returns:
        One patient id per case, or ``None`` when a case has none (the bootstrap then resamples cases).
    """
    patient = {str(item["id"]): item.get(key) for item in items if "id" in item}
    groups = [patient.get(str(i)) for i in ids]
    return None if any(g in (None, "") for g in groups) else [str(g) for g in groups]
