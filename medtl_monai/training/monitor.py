"""Log which stages train, and at which learning rates, at every epoch (log line and TensorBoard scalars)."""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from ignite.engine import Engine, Events

from ..utils import as_bool
from ._stages import check_network
from .freeze import trainable_stages

__all__ = ["TrainableStagesLogger"]

logger = logging.getLogger("medtl_monai.training")


class TrainableStagesLogger:
    """At the start of every epoch, log the trainable and frozen stages and each parameter group's learning rate.

    TensorBoard gets one scalar per stage, ``trainable/<stage>`` (1 trained, 0 frozen), and ``lr/<group>`` per
    optimizer parameter group, at the epoch number. Attach it after
    :class:`~medtl_monai.training.StepwiseFineTuning` so that an epoch shows the stages of the step it trains.

    Args:
        network: the model (a ``TransferClassifier``, possibly wrapped).
        optimizer: its optimizer (for the learning rates); optional.
        log_dir: TensorBoard folder; ``None`` logs to the Python logger only.
        enabled: ``False`` makes the handler do nothing (e.g. on ranks other than 0).
    """

    def __init__(self, network: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                 log_dir: str | os.PathLike | None = None, enabled: bool | str = True) -> None:
        self.network, self.optimizer = check_network(network), optimizer
        self.log_dir, self.enabled = log_dir, as_bool(enabled, "enabled")
        self._writer: Any = None
        #: ``{epoch: {stage: trainable}}`` as logged
        self.records: dict[int, dict[str, bool]] = {}

    def attach(self, engine: Engine) -> None:
        if self.enabled:
            engine.add_event_handler(Events.EPOCH_STARTED, self)
            engine.add_event_handler(Events.COMPLETED, self.close)

    def __call__(self, engine: Engine) -> None:
        epoch = int(engine.state.epoch)
        stages = trainable_stages(self.network)
        self.records[epoch] = stages
        lrs = {g.get("name", str(i)): float(g["lr"]) for i, g in enumerate(self.optimizer.param_groups)} if self.optimizer else {}
        logger.info(
            "epoch %d: trainable %s | frozen %s%s",
            epoch,
            ", ".join(s for s, on in stages.items() if on) or "nothing",
            ", ".join(s for s, on in stages.items() if not on) or "nothing",
            (" | lr " + ", ".join(f"{k}={v:.2e}" for k, v in lrs.items())) if lrs else "",
        )
        if self.log_dir is not None:
            if self._writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.log_dir))
            for stage, on in stages.items():
                self._writer.add_scalar(f"trainable/{stage}", float(on), epoch)
            for name, lr in lrs.items():
                self._writer.add_scalar(f"lr/{name}", lr, epoch)
            self._writer.flush()

    def close(self, engine: Engine | None = None) -> None:
        """Close the TensorBoard writer."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
