"""Transfer strategies: which parts of a pretrained network train, and at which learning rate.

One name selects a strategy in every bundle (the ``strategy`` config key):

=================  ======================================================================================
``full``           every layer of the full network finetuned at one rate (standard transfer learning)
``linear``         the full network's backbone frozen, the head alone trained (a linear probe)
``truncated``      TruncatedTL (Peng et al., "Rethinking Transfer Learning for Medical Image Classification",
                   BMVC 2023): the bundle's cut (block or layer level), every kept layer finetuned
``transfusion``    TransFusion slim variant (Raghu et al., "Transfusion: Understanding Transfer Learning for
                   Medical Imaging", NeurIPS 2019): pretrained bottom, slim random top, all trained
``lwft``           layer-wise finetuning (Tajbakhsh et al., "Convolutional Neural Networks for Medical Image
                   Analysis: Full Training or Fine Tuning?", IEEE TMI 2016; the LWFT baseline of TruncatedTL):
                   the bottom ``frozen_stages`` stage groups frozen, the other pretrained stages at
                   ``pretrained_lr_ratio`` times the learning rate of the new head (0.1 by default)
``swft``           Step-Wise Fine-Tuning ("Analysis of the Two-Step Heterogeneous Transfer Learning for Laryngeal
                   Blood Vessel Classification: Issue and Improvement", arXiv:2402.19001; the THTL paper): the
                   head first, then stages unfrozen from the top down by
                   :class:`~medtl_monai.strategies.StepwiseFineTuning`
``discriminative`` per-stage learning rates (discriminative finetuning, Howard & Ruder, "Universal Language Model
                   Fine-tuning for Text Classification", ACL 2018): ``stage_lrs`` or a geometric decay from
                   the head down
``scratch``        random initialisation (no pretrained weights), every layer trained
=================  ======================================================================================

:func:`network_overrides` says how a strategy changes the network's construction (cut, weights, slim top);
:func:`configure` freezes what the strategy freezes and returns the optimizer's parameter groups, one per stage
group plus the head, each named (``"name"``) and remembering its configured rate (``"base_lr"``). Frozen parameters
get ``requires_grad=False``, are left out of every group (so the optimizer holds no state for them) and their
BatchNorm layers keep their running statistics (:class:`~medtl_monai.strategies.FreezeBatchNorm`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch.nn as nn

from ._stages import HEAD, check_network, group_name, group_parameters, stage_groups
from .freeze import freeze_batchnorm, set_trainable

__all__ = ["STRATEGIES", "check_strategy", "check_ddp_allows_freezing", "network_overrides", "configure", "param_group"]

logger = logging.getLogger("medtl_monai.strategies")

#: Every strategy name, in the order of the study table.
STRATEGIES: tuple[str, ...] = ("full", "linear", "truncated", "transfusion", "lwft", "swft", "discriminative", "scratch")

#: ULMFiT's ratio between the learning rates of consecutive layer groups.
DEFAULT_LR_DECAY = 2.6


def check_strategy(strategy: str) -> str:
    """Normalise a strategy name (case, spaces).

    Raises:
        ValueError: an unknown name; the message lists the valid ones.
    """
    name = str(strategy).strip().lower()
    if name not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is unknown; choose one of {list(STRATEGIES)}.")
    return name


def network_overrides(
    strategy: str,
    *,
    cut: str | int | None = None,
    weights: Any = None,
    slim_after: str | None = "layer3",
) -> dict[str, Any]:
    """The ``TransferClassifier`` arguments a strategy imposes on top of a bundle's settings.

    ``full`` and ``linear`` use the whole network (``cut=None``); ``transfusion`` uses the slim variant
    (``cut=None``, ``slim_after``); ``scratch`` drops the pretrained weights; the other strategies keep the bundle's
    ``cut`` and ``weights``. ``slim_after`` is ``None`` for every strategy but ``transfusion``.

    Args:
        strategy: a name from :data:`STRATEGIES`.
        cut: the bundle's cut.
        weights: the bundle's pretrained weights (path, ``"imagenet"`` or ``None``).
        slim_after: last pretrained stage of the TransFusion slim variant.

    Returns:
        ``{"cut": ..., "weights": ..., "slim_after": ...}``.

    Raises:
        ValueError: an unknown strategy, or ``transfusion`` without ``slim_after``.
    """
    name = check_strategy(strategy)
    out: dict[str, Any] = {"cut": cut, "weights": weights, "slim_after": None}
    if name in ("full", "linear"):
        out["cut"] = None
    elif name == "transfusion":
        if not slim_after:
            raise ValueError("strategy 'transfusion' needs slim_after (e.g. 'layer3').")
        out.update(cut=None, slim_after=slim_after)
    elif name == "scratch":
        out["weights"] = None
    return out


def check_ddp_allows_freezing(network: nn.Module, what: str) -> None:
    """Check that a ``DistributedDataParallel`` model tolerates parameters without gradients.

    DDP registers the parameters that require gradients when it is built and, by default, waits for a gradient
    from each of them in every backward pass. A model frozen after wrapping (as the bundles do, so that ``swft``
    can unfreeze stages later and every process keeps them in step) must therefore be wrapped with
    ``find_unused_parameters=True`` while all its parameters are still trainable (``multi_gpu_train.json`` does).

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


def _geometric_lrs(groups: list[tuple[str, ...]], lr: float, decay: float) -> dict[tuple[str, ...], float]:
    """``lr / decay**k`` for the k-th stage group below the head (k = 1 for the top stage group)."""
    return {g: lr / decay ** (len(groups) - i) for i, g in enumerate(groups)}


def _stage_lr_table(groups: list[tuple[str, ...]], stage_lrs: Mapping[str, float], lr: float) -> tuple[dict, float]:
    """Per-group rates from a ``{stage: lr}`` table (a stage selects its group; ``head`` sets the head's rate)."""
    known = {s for g in groups for s in g} | {HEAD}
    unknown = sorted(set(stage_lrs) - known)
    if unknown:
        raise ValueError(f"stage_lrs names {unknown}, which are not stages of this model; it has {sorted(known)}.")
    table: dict[tuple[str, ...], float] = {}
    missing = []
    for g in groups:
        values = {float(stage_lrs[s]) for s in g if s in stage_lrs}
        if len(values) > 1:
            raise ValueError(f"stage_lrs gives different rates to {g}, which train as one group.")
        if not values:
            missing.append(group_name(g))
            continue
        table[g] = values.pop()
    if missing:
        raise ValueError(f"stage_lrs gives no rate to {missing}; give every stage a rate (0 is not allowed: use lwft).")
    return table, float(stage_lrs.get(HEAD, lr))


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
        network: a ``TransferClassifier`` built with :func:`network_overrides` (possibly DDP-wrapped).
        strategy: a name from :data:`STRATEGIES`.
        lr: the learning rate of the head (and of every trained stage unless the strategy says otherwise).
        frozen_stages: ``lwft`` only: number of bottom stage groups frozen (0 freezes nothing).
        pretrained_lr_ratio: ``lwft`` only: rate of the trained pretrained stages relative to ``lr``.
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
    name = check_strategy(strategy)
    net = check_network(network)
    lr = float(lr)
    if lr <= 0:
        raise ValueError(f"lr={lr!r} must be positive.")
    if stage_lrs and name != "discriminative":
        raise ValueError(f"stage_lrs is used by strategy 'discriminative' only, not {name!r}.")
    groups = stage_groups(net)
    rates: dict[tuple[str, ...], float] = {}
    head_lr = lr
    if name in ("full", "truncated", "transfusion", "scratch"):
        rates = {g: lr for g in groups}
    elif name in ("linear", "swft"):
        rates = {}
    elif name == "lwft":
        k = int(frozen_stages)
        if not 0 <= k <= len(groups):
            raise ValueError(f"frozen_stages={frozen_stages!r} must be in 0..{len(groups)} for stage groups {groups}.")
        if not 0 < float(pretrained_lr_ratio):
            raise ValueError(f"pretrained_lr_ratio={pretrained_lr_ratio!r} must be positive.")
        rates = {g: lr * float(pretrained_lr_ratio) for g in groups[k:]}
    else:  # discriminative
        if stage_lrs:
            rates, head_lr = _stage_lr_table(groups, stage_lrs, lr)
        else:
            if float(lr_decay) < 1:
                raise ValueError(f"lr_decay={lr_decay!r} must be >= 1.")
            rates = _geometric_lrs(groups, lr, float(lr_decay))
        if any(v <= 0 for v in [*rates.values(), head_lr]):
            raise ValueError("discriminative learning rates must be positive; to freeze a stage use lwft.")
    frozen = [s for g in groups if g not in rates for s in g]
    if frozen:
        check_ddp_allows_freezing(network, f"strategy {name!r} freezes {frozen}")
    set_trainable(net, [s for g in rates for s in g] + [HEAD], True)
    set_trainable(net, frozen, False)
    freeze_batchnorm(net).apply()
    param_groups = [param_group(net, g, rates[g]) for g in groups if g in rates]
    param_groups.append(param_group(net, (HEAD,), head_lr))
    param_groups = [g for g in param_groups if g["params"]]
    logger.info(
        "strategy %s: %s; frozen: %s",
        name,
        ", ".join(f"{g['name']} lr={g['lr']:.2e}" for g in param_groups),
        ", ".join(frozen) or "nothing",
    )
    return param_groups
