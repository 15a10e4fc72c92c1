"""Transfer strategies: what trains and at which rate (freezing, LWFT, discriminative rates, SWFT), the cut-point
search and the strategy study.

Bundles select a strategy with one config key, ``strategy``::

    "network_def": {..., "cut": "$@strategy_network['cut']", "weights": "$@strategy_network['weights']",
                    "slim_after": "$@strategy_network['slim_after']"},
    "strategy_network": "$medtl_monai.strategies.network_overrides(@strategy, cut=@cut, weights=@weights)",
    "optimizer": {"_target_": "torch.optim.Adam", "params": "$medtl_monai.strategies.configure(@network, @strategy,
                  @learning_rate, frozen_stages=@frozen_stages, pretrained_lr_ratio=@pretrained_lr_ratio)", ...}

plus the handlers :class:`StepwiseFineTuning` (enabled for ``swft``) and :class:`TrainableStagesLogger`.
"""

from .configure import STRATEGIES, check_ddp_allows_freezing, check_strategy, configure, network_overrides, param_group
from .freeze import FreezeBatchNorm, freeze_batchnorm, frozen_batchnorms, set_trainable, trainable_stages
from .monitor import TrainableStagesLogger
from .swft import StepwiseFineTuning
from .two_step import init_from_intermediate, reset_head
from ._stages import stage_groups

__all__ = [
    "STRATEGIES",
    "check_strategy",
    "check_ddp_allows_freezing",
    "configure",
    "network_overrides",
    "param_group",
    "FreezeBatchNorm",
    "freeze_batchnorm",
    "frozen_batchnorms",
    "set_trainable",
    "trainable_stages",
    "stage_groups",
    "TrainableStagesLogger",
    "StepwiseFineTuning",
    "init_from_intermediate",
    "reset_head",
]
