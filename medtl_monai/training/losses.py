"""Loss weights and losses: class weights for the weighted cross-entropy of the TruncatedTL recipe, and for
multi-label (CheXpert-style) training a binary cross-entropy per class with per-class ``pos_weight`` and a policy
for uncertain labels.

Multi-label targets are one value per class: ``1`` (present), ``0`` (absent or not mentioned) or ``-1``
(uncertain). The uncertain value is kept in the datalist and through the data pipeline; the loss applies the
policy (:data:`UNCERTAIN_POLICIES`, the CheXpert paper's U-Ones, U-Zeros and U-Ignore; Irvin et al., "CheXpert: A
Large Chest Radiograph Dataset with Uncertainty Labels and Expert Comparison", AAAI 2019):

- ``"ones"``: an uncertain finding counts as present (U-Ones). The default: in CheXpert it was as good as or better
  than the others for most observations (atelectasis, oedema), and it never discards a case.
- ``"zeros"``: counts as absent (U-Zeros); better where "uncertain" mostly means "not seen" (cardiomegaly in CheXpert).
- ``"ignore"``: the entry is masked out of the loss (U-Ignore), the case still trains the other classes.

Evaluation never applies the policy: uncertain entries are left out of a class's metrics
(:mod:`medtl_monai.evaluation.multilabel`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNCERTAIN", "UNCERTAIN_POLICIES", "MaskedBCEWithLogitsLoss", "apply_uncertain_policy", "class_weights",
           "pos_weights"]

#: the value of an uncertain finding in a multi-label target
UNCERTAIN = -1

#: how an uncertain finding enters the loss (see the module docstring)
UNCERTAIN_POLICIES: tuple[str, ...] = ("ones", "zeros", "ignore")


def _check_policy(policy: str) -> str:
    if policy not in UNCERTAIN_POLICIES:
        raise ValueError(f"uncertain-label policy must be one of {UNCERTAIN_POLICIES}, got {policy!r}.")
    return policy


def class_weights(items: Sequence[Mapping], num_classes: int, label_key: str = "label") -> torch.Tensor:
    """Inverse-frequency weights ``N / (K * n_c)`` from the training split (1 for a perfectly balanced split).

    Args:
        items: datalist entries with an integer label.
        num_classes: K.
        label_key: key of the label.

    Returns:
        A float tensor of K weights.

    Raises:
        ValueError: no items, a multi-label (list) label, a label outside ``[0, K)``, or a class absent from the split.
    """
    if any(isinstance(item[label_key], (list, tuple)) for item in items):
        raise ValueError("class_weights: the labels are lists (a multi-label datalist); train it with the multi-label "
                         "switch (configs/multi_label.json: sigmoid outputs, BCE with pos_weights).")
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


def apply_uncertain_policy(targets: torch.Tensor, policy: str = "ones") -> tuple[torch.Tensor, torch.Tensor]:
    """Targets and loss mask of multi-label targets holding ``1``, ``0`` and ``-1`` (uncertain).

    Args:
        targets: ``(B, K)`` (or any shape) targets.
        policy: ``"ones"`` (uncertain -> 1), ``"zeros"`` (uncertain -> 0) or ``"ignore"`` (uncertain -> masked).

    Returns:
        ``(float targets in {0, 1}, float mask)`` of the shape of ``targets``; the mask is 0 only for uncertain
        entries under ``"ignore"``.

    Raises:
        ValueError: an unknown policy, or a target other than 1, 0 or -1.
    """
    _check_policy(policy)
    targets = torch.as_tensor(targets).float()
    if not torch.isin(targets, torch.tensor([1.0, 0.0, float(UNCERTAIN)], device=targets.device)).all():
        found = sorted(set(torch.unique(targets).tolist()) - {1.0, 0.0, float(UNCERTAIN)})
        raise ValueError(f"multi-label targets must be 1, 0 or {UNCERTAIN} (uncertain), found {found}.")
    uncertain = targets == UNCERTAIN
    fill = 1.0 if policy == "ones" else 0.0
    mask = (~uncertain).float() if policy == "ignore" else torch.ones_like(targets)
    return torch.where(uncertain, torch.full_like(targets, fill), targets), mask


def pos_weights(items: Sequence[Mapping], num_classes: int, uncertain: str = "ones",
                label_key: str = "label") -> torch.Tensor:
    """Per-class ``pos_weight`` of :class:`MaskedBCEWithLogitsLoss`: negatives / positives of each class in the
    training split, counted as the loss sees them (uncertain entries by the same ``uncertain`` policy), so that each
    class's positives weigh as much as its negatives.

    Args:
        items: datalist entries whose label is a list of K values 1 / 0 / -1.
        num_classes: K.
        uncertain: the uncertain-label policy (:data:`UNCERTAIN_POLICIES`).
        label_key: key of the label.

    Returns:
        A float tensor of K weights.

    Raises:
        ValueError: no items, a label that is not a list of K values, or a class with no positive (or no negative)
            training case.
    """
    if not items:
        raise ValueError("pos_weights: the training split is empty.")
    bad = [item.get("id", i) for i, item in enumerate(items)
           if not isinstance(item[label_key], (list, tuple)) or len(item[label_key]) != num_classes]
    if bad:
        raise ValueError(f"pos_weights: labels of {bad[:5]} are not lists of {num_classes} values (1, 0 or -1); "
                         "is this a multi-label datalist?")
    targets, mask = apply_uncertain_policy(torch.tensor([list(item[label_key]) for item in items]), uncertain)
    positives = (targets * mask).sum(0)
    negatives = ((1 - targets) * mask).sum(0)
    for name, counts in (("positive", positives), ("negative", negatives)):
        missing = [k for k in range(num_classes) if counts[k] == 0]
        if missing:
            raise ValueError(f"pos_weights: classes {missing} have no {name} training case (uncertain entries "
                             f"counted by the policy {uncertain!r}); check the split or the class list.")
    return negatives / positives


class MaskedBCEWithLogitsLoss(nn.Module):
    """Binary cross-entropy on logits, one sigmoid per class, with per-class ``pos_weight`` and the uncertain-label
    policy applied to the targets (:func:`apply_uncertain_policy`); under ``"ignore"`` the mean runs over the entries
    that are not masked.

    Args:
        pos_weight: ``(K,)`` weight of the positive term of each class (:func:`pos_weights`), ``None`` for 1.
        uncertain: the uncertain-label policy, ``"ones"``, ``"zeros"`` or ``"ignore"``.

    Raises:
        ValueError: an unknown policy.
    """

    def __init__(self, pos_weight: torch.Tensor | Sequence[float] | None = None, uncertain: str = "ones") -> None:
        super().__init__()
        self.uncertain = _check_policy(uncertain)
        self.register_buffer("pos_weight", None if pos_weight is None else torch.as_tensor(pos_weight).float())

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean loss over the unmasked entries (0 when every entry is masked).

        Args:
            logits: ``(B, K)`` network outputs.
            targets: ``(B, K)`` targets 1 / 0 / -1.

        Raises:
            ValueError: shapes that differ, or targets other than 1, 0, -1.
        """
        if logits.shape != torch.as_tensor(targets).shape:
            raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(torch.as_tensor(targets).shape)} must "
                             "have the same shape (one target per class).")
        targets, mask = apply_uncertain_policy(torch.as_tensor(targets).to(logits.device), self.uncertain)
        loss = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight, reduction="none")
        return (loss * mask).sum() / mask.sum().clamp_min(1.0)
