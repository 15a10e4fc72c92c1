"""Freezing that holds: no gradient, no optimizer state and no BatchNorm statistics update for frozen stages.

``requires_grad=False`` alone leaves a frozen stage's BatchNorm running statistics moving while the network trains,
because they are buffers updated in ``train()`` mode. MONAI's ``SupervisedTrainer`` calls ``network.train()`` inside
its iteration function, after Ignite's ``ITERATION_STARTED`` event, so an Ignite handler that calls ``.eval()`` on
the frozen BatchNorm layers would be undone before the forward pass. :class:`FreezeBatchNorm` therefore registers a
forward *pre-hook* on the network: it runs at the start of every forward pass, after whatever called ``train()``,
and puts every BatchNorm whose parameters are all frozen into eval mode. The rule is read from ``requires_grad`` at
each call, so stages that step-wise fine-tuning unfreezes start updating their statistics at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch.nn as nn

from ..networks import unwrap
from ._stages import HEAD, check_network, group_parameters

__all__ = ["FreezeBatchNorm", "freeze_batchnorm", "frozen_batchnorms", "set_trainable", "trainable_stages"]

logger = logging.getLogger("medtl_monai.training")


def set_trainable(network: nn.Module, stages: Iterable[str], trainable: bool) -> None:
    """Set ``requires_grad`` of every parameter of the named stages (``"head"`` for the head).

    Args:
        network: a ``TransferClassifier`` (possibly wrapped).
        stages: stage names.
        trainable: the new ``requires_grad``.
    """
    for p in group_parameters(network, list(stages)):
        p.requires_grad_(bool(trainable))


def trainable_stages(network: nn.Module) -> dict[str, bool]:
    """Which stages train: ``{stage: True when all its parameters require grad}``, bottom to top, then ``head``.

    A stage without parameters (e.g. a pooling-only stage) counts as trainable when the head is.
    """
    net = check_network(network)
    names = [name for name, _ in net.backbone.named_children()] + [HEAD]
    out: dict[str, bool] = {}
    for name in names:
        params = group_parameters(net, [name])
        out[name] = all(p.requires_grad for p in params) if params else True
    return out


def frozen_batchnorms(network: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """BatchNorm layers whose affine parameters are all frozen (these must keep their running statistics)."""
    out = []
    for module in unwrap(network).modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                out.append(module)
    return out


class FreezeBatchNorm:
    """Keep the BatchNorm layers of frozen stages in eval mode during training, whatever calls ``train()``.

    A forward pre-hook on the network (see the module notes for why not an Ignite handler). Install it once per
    network with :func:`freeze_batchnorm`; :func:`~medtl_monai.training.configure` does.

    Args:
        network: the model (a ``DistributedDataParallel`` wrapper is unwrapped: the hook goes on the inner model).
    """

    def __init__(self, network: nn.Module) -> None:
        self.network = unwrap(network)
        self._handle = self.network.register_forward_pre_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple) -> None:
        if module.training:
            for norm in frozen_batchnorms(module):
                norm.eval()

    def apply(self) -> int:
        """Put the frozen BatchNorm layers in eval mode now; returns how many there are."""
        norms = frozen_batchnorms(self.network)
        for norm in norms:
            norm.eval()
        return len(norms)

    def remove(self) -> None:
        """Remove the hook (the BatchNorm layers then follow ``train()`` / ``eval()`` again)."""
        self._handle.remove()
        if getattr(self.network, "_medtl_freeze_bn", None) is self:
            del self.network._medtl_freeze_bn


def freeze_batchnorm(network: nn.Module) -> FreezeBatchNorm:
    """Install :class:`FreezeBatchNorm` on ``network`` unless it already has one; return it."""
    net = unwrap(network)
    existing = getattr(net, "_medtl_freeze_bn", None)
    if isinstance(existing, FreezeBatchNorm):
        return existing
    hook = FreezeBatchNorm(net)
    object.__setattr__(net, "_medtl_freeze_bn", hook)  # a plain attribute, not a submodule or state
    return hook
