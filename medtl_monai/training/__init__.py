"""Training: what trains and at which rate (the strategy registry, freezing, step-wise fine-tuning), and the engine
pieces around MONAI's ``SupervisedTrainer`` (checkpoints with resume, stopping on a low learning rate, class weights,
device and distributed set-up).
"""

from ._stages import check_network, stage_groups
from .checkpointer import TrainingCheckpointer, atomic_torch_save, atomic_write_text, is_writer
from .configure import check_ddp_allows_freezing, configure, param_group
from .freeze import FreezeBatchNorm, freeze_batchnorm, frozen_batchnorms, set_trainable, trainable_stages
from .handlers import ProgressBarHandler, StopOnLowLR, handlers_for_this_rank, logits_and_labels, rank0_only_handlers
from .losses import UNCERTAIN_POLICIES, MaskedBCEWithLogitsLoss, apply_uncertain_policy, class_weights, pos_weights
from .monitor import TrainableStagesLogger
from .network import close_distributed, default_device, init_distributed, prepare_network
from .strategies import STRATEGIES, Strategy, get_strategy, network_overrides, strategy_names, strategy_network
from .swft import StepwiseFineTuning
from .timing import EpochTimeBreakdown, add_time
from .tracking import MLflowRunRecord, find_mlflow_run, log_mlflow_run

__all__ = [
    "STRATEGIES",
    "UNCERTAIN_POLICIES",
    "EpochTimeBreakdown",
    "FreezeBatchNorm",
    "MLflowRunRecord",
    "MaskedBCEWithLogitsLoss",
    "ProgressBarHandler",
    "StepwiseFineTuning",
    "StopOnLowLR",
    "Strategy",
    "TrainableStagesLogger",
    "TrainingCheckpointer",
    "add_time",
    "apply_uncertain_policy",
    "atomic_torch_save",
    "atomic_write_text",
    "check_ddp_allows_freezing",
    "check_network",
    "class_weights",
    "close_distributed",
    "configure",
    "default_device",
    "find_mlflow_run",
    "freeze_batchnorm",
    "frozen_batchnorms",
    "get_strategy",
    "handlers_for_this_rank",
    "init_distributed",
    "is_writer",
    "log_mlflow_run",
    "logits_and_labels",
    "network_overrides",
    "param_group",
    "pos_weights",
    "prepare_network",
    "rank0_only_handlers",
    "set_trainable",
    "stage_groups",
    "strategy_names",
    "strategy_network",
    "trainable_stages",
]
