"""Two-step transfer: initialise a target model from a model finetuned on an intermediate data set.

Two-step heterogeneous transfer learning (THTL; "Analysis of the Two-Step Heterogeneous Transfer Learning for
Laryngeal Blood Vessel Classification: Issue and Improvement", arXiv:2402.19001) first finetunes a source
(ImageNet) network on an intermediate domain (fundus photographs), then transfers that network to the target domain
(laryngeal endoscopy) with a new head, finetuned with any strategy (SWFT in the paper).
"""

from __future__ import annotations

import logging
import os

import torch
import torch.nn as nn

from ..bundle import initialize_from_checkpoint
from ._stages import check_network

__all__ = ["reset_head", "init_from_intermediate"]

logger = logging.getLogger("medtl_monai.strategies")


def reset_head(network: nn.Module) -> nn.Module:
    """Re-initialise the head's linear layers as a new head is (Kaiming-normal weights, zero bias).

    Args:
        network: a ``TransferClassifier`` (possibly wrapped).

    Returns:
        ``network``.
    """
    net = check_network(network)
    with torch.no_grad():
        for module in net.head.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    return network


def init_from_intermediate(network: nn.Module, checkpoint: str | os.PathLike | None, *, replace_head: bool = True) -> nn.Module:
    """Second step of two-step transfer: copy the backbone of the intermediate model, start a new head.

    The backbone must match the checkpoint tensor for tensor (a checkpoint cut deeper than ``network`` is fine);
    the head is always new when ``replace_head`` is true, even when the two tasks have the same number of classes
    (the intermediate classes mean something else).

    Args:
        network: the target model (a ``TransferClassifier``).
        checkpoint: ``model.pt`` or ``checkpoint_last.pt`` of the intermediate run; ``None`` or ``""`` does nothing.
        replace_head: re-initialise the head after loading.

    Returns:
        ``network``.

    Raises:
        ValueError: the checkpoint cannot be read or its backbone does not fit (see
            :func:`~medtl_monai.bundle.initialize_from_checkpoint`).
    """
    if not checkpoint:
        return network
    initialize_from_checkpoint(network, checkpoint)
    if replace_head:
        reset_head(network)
        logger.info("two-step transfer: backbone from %s, new head (%s classes)", checkpoint, getattr(check_network(network), "num_classes", "?"))
    return network
