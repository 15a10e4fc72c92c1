"""Apply a strategy to a network: freeze what its registry entry freezes and build the optimizer's parameter groups.

:func:`configure` returns one parameter group per trained stage group plus the head, each named (``"name"``) and
remembering its configured rate (``"base_lr"``). Frozen parameters get ``requires_grad=False``, are left out of every
group (so the optimizer holds no state for them) and their BatchNorm layers keep their running statistics
(:class:`~medtl_monai.training.FreezeBatchNorm`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from torch import nn

from ._stages import HEAD, check_network, group_name, group_parameters, stage_groups
from .freeze import freeze_batchnorm, set_trainable
from .strategies import DEFAULT_LR_DECAY, STRATEGIES, get_strategy

__all__ = ["check_ddp_allows_freezing", "configure", "param_group"]

logger = logging.getLogger("medtl_monai.training")


def check_ddp_allows_freezing(network: nn.Module, what: str) -> None:
    """Check that a ``DistributedDataParallel`` model tolerates parameters without gradients.

    DDP registers the parameters that require gradients when it is built and, by default, waits for a gradient
    from each of them in every backward pass. A model frozen after wrapping (as the bundles do, so that ``swft``
    can unfreeze stages later and every process keeps them in step) must therefore be wrapped with
    ``find_unused_parameters=True`` while all its parameters are still trainable
    (:func:`~medtl_monai.training.prepare_network` does, for strategies whose registry entry freezes).

    Args:
        network: the model, possibly DDP-wrapped (anything else passes).
        what: what the caller is about to do, for the message.

    Raises:
        ValueError: a DDP model built with ``find_unused_parameters=False``.
    """
    if isinstance(network, nn.parallel.DistributedDataParallel) and not network.find_unused_parameters:
        raise ValueError(
            f"{what}, but the network is wrapped in DistributedDataParallel with find_unused_parameters=False, which "
            "expects a gradient for every parameter; wrap it with find_unused_parameters=True (as "
            "configs/multi_gpu_train.json does) or train in one process."
        )


def param_group(network: nn.Module, group: tuple[str, ...], lr: float) -> dict[str, Any]:
    """One optimizer parameter group for a stage group: ``{"params", "lr", "base_lr", "name"}``."""
    return {"params": group_parameters(network, group), "lr": float(lr), "base_lr": float(lr), "name": group_name(group)}


def configure(
    network: nn.Module,
    strategy: str = "truncated",
    lr: float = 1e-4,
    *,
    frozen_stages: int = 2,
    pretrained_lr_ratio: float = 0.1,
    stage_lrs: Mapping[str, float] | None = None,
    lr_decay: float = DEFAULT_LR_DECAY,
) -> list[dict[str, Any]]:
    """Apply a strategy to a network and return the optimizer's parameter groups (``params=`` of any optimizer).

    Args:
        network: a ``TransferClassifier`` built for the strategy (:func:`~medtl_monai.training.strategy_network`),
            possibly DDP-wrapped.
        strategy: a name from :data:`~medtl_monai.training.STRATEGIES`.
        lr: the learning rate of the head (and of every trained stage unless the strategy says otherwise).
        frozen_stages: ``lwft`` and ``lwft_full`` only: number of bottom stage groups frozen (0 freezes nothing).
        pretrained_lr_ratio: ``lwft`` only: rate of the trained pretrained stages relative to ``lr`` (``lwft_full``
            trains them at ``lr``).
        stage_lrs: ``discriminative`` only: ``{stage name: lr}`` for every stage (``head`` optional, else ``lr``);
            ``None`` uses ``lr / lr_decay**k`` for the k-th stage group below the head.
        lr_decay: ``discriminative`` only: the geometric decay when ``stage_lrs`` is ``None``.

    Returns:
        Parameter groups bottom to top, the head last; frozen stages are in none of them.

    Raises:
        ValueError: unknown strategy, ``frozen_stages`` out of range, invalid ``stage_lrs``/rates, an option
            given to a strategy that does not use it, or a freezing strategy on a ``DistributedDataParallel`` model
            built without ``find_unused_parameters`` (see :func:`check_ddp_allows_freezing`).
        TypeError: the network is not a ``TransferClassifier``-like model.
    """
    entry = get_strategy(strategy)
    net = check_network(network)
    lr = float(lr)
    if lr <= 0:
        raise ValueError(f"lr={lr!r} must be positive.")
    if stage_lrs and "stage_lrs" not in entry.options:
        users = [s.name for s in STRATEGIES.values() if "stage_lrs" in s.options]
        raise ValueError(f"stage_lrs is used by strategies {users} only, not {entry.name!r}.")
    groups = stage_groups(net)
    options = {"frozen_stages": frozen_stages, "pretrained_lr_ratio": pretrained_lr_ratio, "stage_lrs": stage_lrs,
               "lr_decay": lr_decay}
    rates, head_lr = entry.rates(groups, lr, options)
    frozen = [s for g in groups if g not in rates for s in g]
    if frozen:
        check_ddp_allows_freezing(network, f"strategy {entry.name!r} freezes {frozen}")
    set_trainable(net, [s for g in rates for s in g] + [HEAD], True)
    set_trainable(net, frozen, False)
    freeze_batchnorm(net).apply()
    param_groups = [param_group(net, g, rates[g]) for g in groups if g in rates]
    param_groups.append(param_group(net, (HEAD,), head_lr))
    param_groups = [g for g in param_groups if g["params"]]
    logger.info(
        "strategy %s: %s; frozen: %s",
        entry.name,
        ", ".join(f"{g['name']} lr={g['lr']:.2e}" for g in param_groups),
        ", ".join(frozen) or "nothing",
    )
    return param_groups
