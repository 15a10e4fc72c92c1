"""The strategy registry: one entry per transfer strategy says everything the strategy means.

An entry (:class:`Strategy`) says how the strategy changes the network (the bundle's cut, the full network, or the
TransFusion slim top; pretrained weights or none), which stage groups train and at which rate (its *rate rule*:
groups it gives no rate stay frozen), and whether step-wise unfreezing drives it. Bundle configs, the optimizer
set-up (:func:`~medtl_monai.training.configure`), the SWFT handler, distributed training and the strategy study all
ask the registry; adding a strategy is adding one entry to :data:`STRATEGIES`.

=================  ======================================================================================
``full``           every layer of the full network finetuned at one rate (standard transfer learning)
``linear``         the full network's backbone frozen, the head alone trained (a linear probe)
``truncated``      TruncatedTL (Peng et al., "Rethinking Transfer Learning for Medical Image Classification",
                   BMVC 2023): the bundle's cut (block or layer level), every kept layer finetuned
``transfusion``    TransFusion slim variant (Raghu et al., "Transfusion: Understanding Transfer Learning for
                   Medical Imaging", NeurIPS 2019): pretrained bottom, slim random top, all trained
``lwft_full``      layer-wise finetuning as the TruncatedTL paper compares it (Tajbakhsh et al., "Convolutional
                   Neural Networks for Medical Image Analysis: Full Training or Fine Tuning?", IEEE TMI 2016;
                   the LWFT baseline of Peng et al.): the FULL network, the bottom ``frozen_stages`` stage
                   groups frozen, every other layer and the head trained at one rate
``lwft``           this project's truncated variant of layer-wise finetuning: the bundle's CUT network, the
                   bottom ``frozen_stages`` stage groups frozen, the other pretrained stages at
                   ``pretrained_lr_ratio`` times the learning rate of the new head (0.1 by default). It is not the
                   paper's LWFT (that is ``lwft_full``); the name is kept so that existing commands and results
                   keep their meaning.
``swft``           Step-Wise Fine-Tuning ("Analysis of the Two-Step Heterogeneous Transfer Learning for Laryngeal
                   Blood Vessel Classification: Issue and Improvement", arXiv:2402.19001): the head first, then
                   stages unfrozen from the top down by :class:`~medtl_monai.training.StepwiseFineTuning`
``discriminative`` per-stage learning rates (Howard & Ruder, "Universal Language Model Fine-tuning for Text
                   Classification", ACL 2018): ``stage_lrs`` or a geometric decay from the head down
``scratch``        random initialisation (no pretrained weights), every layer trained
=================  ======================================================================================

Each entry also says, in one line, what its table row is (:attr:`Strategy.description`: which network, what is
frozen, which rates); the strategy study prints it beside the strategy's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..networks import TransferClassifier

__all__ = [
    "DEFAULT_LR_DECAY",
    "STRATEGIES",
    "RateRule",
    "Strategy",
    "get_strategy",
    "network_overrides",
    "strategy_names",
    "strategy_network",
]

#: ULMFiT's ratio between the learning rates of consecutive layer groups.
DEFAULT_LR_DECAY = 2.6

Group = tuple[str, ...]
#: ``(stage groups bottom to top, head learning rate, options) -> ({trained group: rate}, head rate)``; groups left
#: out are frozen.
RateRule = Callable[[list[Group], float, Mapping[str, Any]], tuple[dict[Group, float], float]]


def _every_group(groups: list[Group], lr: float, options: Mapping[str, Any]) -> tuple[dict[Group, float], float]:
    return {g: lr for g in groups}, lr


def _head_only(groups: list[Group], lr: float, options: Mapping[str, Any]) -> tuple[dict[Group, float], float]:
    return {}, lr


def _bottom_frozen_one_rate(groups: list[Group], lr: float,
                            options: Mapping[str, Any]) -> tuple[dict[Group, float], float]:
    """The bottom ``frozen_stages`` groups frozen, every other group and the head at ``lr`` (``lwft_full``)."""
    k = int(options["frozen_stages"])
    if not 0 <= k <= len(groups):
        raise ValueError(f"frozen_stages={options['frozen_stages']!r} must be in 0..{len(groups)} for stage groups {groups}.")
    return {g: lr for g in groups[k:]}, lr


def _bottom_frozen(groups: list[Group], lr: float, options: Mapping[str, Any]) -> tuple[dict[Group, float], float]:
    """As :func:`_bottom_frozen_one_rate`, the trained pretrained groups at ``pretrained_lr_ratio * lr`` (``lwft``)."""
    ratio = float(options["pretrained_lr_ratio"])
    if not ratio > 0:
        raise ValueError(f"pretrained_lr_ratio={options['pretrained_lr_ratio']!r} must be positive.")
    rates, head_lr = _bottom_frozen_one_rate(groups, lr, options)
    return {g: rate * ratio for g, rate in rates.items()}, head_lr


def _per_stage(groups: list[Group], lr: float, options: Mapping[str, Any]) -> tuple[dict[Group, float], float]:
    stage_lrs = options.get("stage_lrs")
    if stage_lrs:
        rates, head_lr = _stage_lr_table(groups, stage_lrs, lr)
    else:
        decay = float(options.get("lr_decay", DEFAULT_LR_DECAY))
        if decay < 1:
            raise ValueError(f"lr_decay={decay!r} must be >= 1.")
        rates, head_lr = {g: lr / decay ** (len(groups) - i) for i, g in enumerate(groups)}, lr
    if any(v <= 0 for v in [*rates.values(), head_lr]):
        raise ValueError("discriminative learning rates must be positive; to freeze a stage use lwft.")
    return rates, head_lr


def _stage_lr_table(groups: list[Group], stage_lrs: Mapping[str, float], lr: float) -> tuple[dict[Group, float], float]:
    """Per-group rates from a ``{stage: lr}`` table (a stage selects its group; ``head`` sets the head's rate)."""
    known = {s for g in groups for s in g} | {"head"}
    unknown = sorted(set(stage_lrs) - known)
    if unknown:
        raise ValueError(f"stage_lrs names {unknown}, which are not stages of this model; it has {sorted(known)}.")
    table: dict[Group, float] = {}
    missing = []
    for g in groups:
        values = {float(stage_lrs[s]) for s in g if s in stage_lrs}
        if len(values) > 1:
            raise ValueError(f"stage_lrs gives different rates to {g}, which train as one group.")
        if not values:
            missing.append("+".join(g))
            continue
        table[g] = values.pop()
    if missing:
        raise ValueError(f"stage_lrs gives no rate to {missing}; give every stage a rate (0 is not allowed: use lwft).")
    return table, float(stage_lrs.get("head", lr))


@dataclass(frozen=True)
class Strategy:
    """What one transfer strategy means.

    Attributes:
        name: the name bundles and scripts use (``--strategy NAME``).
        summary: what the strategy is, in a few words (with its origin).
        network: ``"cut"`` (the bundle's ``cut``), ``"full"`` (no cut) or ``"slim"`` (no cut, TransFusion slim top).
        pretrained: whether the bundle's pretrained weights are loaded (``False``: random initialisation).
        rates: the rate rule (see :data:`RateRule`).
        options: the :func:`~medtl_monai.training.configure` options the rate rule reads.
        freezes: whether some parameters may go without gradients during training (distributed training then
            needs ``find_unused_parameters``).
        stepwise: whether :class:`~medtl_monai.training.StepwiseFineTuning` unfreezes stages during training.
        frozen: what stays frozen, in words (``"nothing"`` for strategies that train everything).
        rate: which learning rates train what, in words.
    """

    name: str
    summary: str
    network: str = "cut"
    pretrained: bool = True
    rates: RateRule = _every_group
    options: tuple[str, ...] = field(default=())
    freezes: bool = False
    stepwise: bool = False
    frozen: str = "nothing"
    rate: str = "every layer at the learning rate"

    @property
    def description(self) -> str:
        """One line for the study table: the network, what is frozen, the rates, e.g. ``"full network; frozen: the
        bottom frozen_stages stage groups; the rest and the head at one rate"``."""
        network = {"cut": "truncated network (the bundle's cut)", "full": "full network",
                   "slim": "full network with a slim random top"}[self.network]
        if not self.pretrained:
            network += ", random initialisation"
        return f"{network}; frozen: {self.frozen}; {self.rate}"


#: Every strategy, in the order of the study table.
STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("full", "standard transfer learning", network="full"),
        Strategy("linear", "linear probe", network="full", rates=_head_only, freezes=True,
                 frozen="the whole backbone", rate="the head at the learning rate"),
        Strategy("truncated", "TruncatedTL (Peng et al., BMVC 2023)", rate="every kept layer at the learning rate"),
        Strategy("transfusion", "TransFusion slim variant (Raghu et al., NeurIPS 2019)", network="slim"),
        Strategy("lwft_full", "layer-wise finetuning as compared in TruncatedTL (Tajbakhsh et al., IEEE TMI 2016)",
                 network="full", rates=_bottom_frozen_one_rate, options=("frozen_stages",), freezes=True,
                 frozen="the bottom frozen_stages stage groups", rate="the other layers and the head at one rate"),
        Strategy("lwft", "this project's truncated layer-wise finetuning (not the paper's LWFT: see lwft_full)",
                 rates=_bottom_frozen, options=("frozen_stages", "pretrained_lr_ratio"), freezes=True,
                 frozen="the bottom frozen_stages stage groups",
                 rate="the other pretrained stages at pretrained_lr_ratio x the rate (0.1), the head at the rate"),
        Strategy("swft", "step-wise finetuning (arXiv:2402.19001)", rates=_head_only, freezes=True, stepwise=True,
                 frozen="all but the head at first, then stages unfrozen from the top down",
                 rate="every trained layer at the learning rate"),
        Strategy("discriminative", "discriminative finetuning (Howard & Ruder, ACL 2018)", rates=_per_stage,
                 options=("stage_lrs", "lr_decay"), rate="per-stage rates decaying from the head down (or stage_lrs)"),
        Strategy("scratch", "no transfer (baseline)", pretrained=False),
    )
}


def get_strategy(strategy: str | Strategy) -> Strategy:
    """The registry entry of a strategy name (case and spaces ignored).

    Raises:
        ValueError: an unknown name; the message lists the valid ones.
    """
    if isinstance(strategy, Strategy):
        return strategy
    name = str(strategy).strip().lower()
    if name not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is unknown; choose one of {list(STRATEGIES)}.")
    return STRATEGIES[name]


def network_overrides(strategy: str, *, cut: str | int | None = None, weights: Any = None,
                      slim_after: str | None = "layer3") -> dict[str, Any]:
    """The ``TransferClassifier`` arguments a strategy imposes on top of a bundle's settings.

    Args:
        strategy: a name from :data:`STRATEGIES`.
        cut: the bundle's cut.
        weights: the bundle's pretrained weights (path, ``"imagenet"`` or ``None``).
        slim_after: last pretrained stage of the TransFusion slim variant.

    Returns:
        ``{"cut": ..., "weights": ..., "slim_after": ...}`` (``slim_after`` is ``None`` unless the strategy slims).

    Raises:
        ValueError: an unknown strategy, or a slimming strategy without ``slim_after``.
    """
    entry = get_strategy(strategy)
    out: dict[str, Any] = {"cut": cut if entry.network == "cut" else None, "slim_after": None,
                           "weights": weights if entry.pretrained else None}
    if entry.network == "slim":
        if not slim_after:
            raise ValueError(f"strategy {entry.name!r} needs slim_after (e.g. 'layer3').")
        out["slim_after"] = slim_after
    return out


def strategy_network(strategy: str = "truncated", *, cut: str | int | None = None, weights: Any = None,
                     slim_after: str | None = "layer3", **network: Any) -> nn.Module:
    """Build the ``TransferClassifier`` a strategy trains: the bundle's settings with :func:`network_overrides`.

    A bundle's ``network_def``::

        {"_target_": "medtl_monai.training.strategy_network", "strategy": "@strategy", "arch": "@arch", ...}

    Args:
        strategy: a name from :data:`STRATEGIES`.
        cut: the bundle's cut.
        weights: the bundle's pretrained weights.
        slim_after: last pretrained stage of the TransFusion slim variant.
        network: the other ``TransferClassifier`` arguments (``arch``, ``spatial_dims``, ``in_channels``,
            ``num_classes``, ``inflation``, ``dropout`` ...).

    Returns:
        The network.
    """
    return TransferClassifier(**network, **network_overrides(strategy, cut=cut, weights=weights, slim_after=slim_after))


def strategy_names(names: Sequence[str] | None = None) -> list[str]:
    """Normalised strategy names (all of them, in table order, for ``None``)."""
    return list(STRATEGIES) if names is None else [get_strategy(n).name for n in names]
