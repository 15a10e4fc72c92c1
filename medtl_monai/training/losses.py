"""Class weights for the weighted cross-entropy of the TruncatedTL recipe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

__all__ = ["class_weights"]


def class_weights(items: Sequence[Mapping], num_classes: int, label_key: str = "label") -> torch.Tensor:
    """Inverse-frequency weights ``N / (K * n_c)`` from the training split (1 for a perfectly balanced split).

    Args:
        items: datalist entries with an integer label.
        num_classes: K.
        label_key: key of the label.

    Returns:
        A float tensor of K weights.

    Raises:
        ValueError: no items, a label outside ``[0, K)``, or a class absent from the split.
    """
    labels = [int(item[label_key]) for item in items]
    if not labels:
        raise ValueError("class_weights: the training split is empty.")
    bad = sorted({lab for lab in labels if not 0 <= lab < num_classes})
    if bad:
        raise ValueError(f"class_weights: labels {bad} are outside 0..{num_classes - 1}.")
    counts = torch.bincount(torch.tensor(labels), minlength=num_classes).float()
    if (counts == 0).any():
        missing = [i for i, n in enumerate(counts.tolist()) if n == 0]
        raise ValueError(f"class_weights: classes {missing} have no training case; check the split.")
    return len(labels) / (num_classes * counts)
