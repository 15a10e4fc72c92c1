"""Ignite handlers for training: stop on a low learning rate, a switchable progress bar, the loss metric's output
transform, and the handlers each process of a distributed run keeps."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events

from ..utils import as_bool
from .checkpointer import is_writer

__all__ = ["ProgressBarHandler", "StopOnLowLR", "handlers_for_this_rank", "logits_and_labels", "rank0_only_handlers"]

logger = logging.getLogger("medtl_monai.training")


class StopOnLowLR:
    """Terminate training once every parameter group's learning rate is below ``min_lr`` (TruncatedTL stops at 1e-6).

    Args:
        optimizer: the optimizer whose learning rates are watched.
        min_lr: threshold.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, min_lr: float = 1e-6) -> None:
        self.optimizer, self.min_lr = optimizer, float(min_lr)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        if lrs and max(lrs) < self.min_lr:
            logger.info("learning rate %.2e fell below %.1e at epoch %d: stopping", max(lrs), self.min_lr, engine.state.epoch)
            engine.terminate()


class ProgressBarHandler:
    """Ignite's tqdm progress bar, switchable from a config (``enabled=@progress_bar``).

    Args:
        enabled: attach the bar or do nothing.
        persist: keep the finished bar of each epoch on screen.
    """

    def __init__(self, enabled: bool | str = True, persist: bool = False) -> None:
        self.enabled = as_bool(enabled, "progress_bar")
        self.persist = as_bool(persist, "persist")

    def attach(self, engine: Engine) -> None:
        if self.enabled:
            from ignite.handlers import ProgressBar

            ProgressBar(persist=self.persist).attach(engine, output_transform=lambda output: _loss_of(output))


def _loss_of(output) -> dict:
    items = output if isinstance(output, list) else [output]
    loss = items[0].get("loss") if items and isinstance(items[0], dict) else None
    return {"loss": float(loss)} if loss is not None else {}


def logits_and_labels(output, logits_key: str = "logits", label_key: str = "label_index"):
    """Output transform for ``ignite.metrics.Loss`` on a decollated MONAI evaluator output: (logits, class indices).

    Args:
        output: ``engine.state.output``, a list of per-case dicts.
        logits_key: key holding the raw network output (copied before the softmax).
        label_key: key holding the class index (copied before one-hot encoding).

    Returns:
        ``(logits of shape (B, C), labels of shape (B,))``.
    """
    items = output if isinstance(output, list) else [output]
    logits = torch.stack([torch.as_tensor(i[logits_key]).reshape(-1) for i in items])
    labels = torch.stack([torch.as_tensor(i[label_key]).reshape(-1)[0] for i in items]).long().to(logits.device)
    return logits, labels


def rank0_only_handlers() -> tuple[type, ...]:
    """Handler types that only the writing process of a distributed run keeps: log lines, event files and progress
    bars, written once rather than once per process."""
    from monai.handlers import StatsHandler, TensorBoardStatsHandler

    from .monitor import TrainableStagesLogger

    return (StatsHandler, TensorBoardStatsHandler, ProgressBarHandler, TrainableStagesLogger)


def handlers_for_this_rank(handlers: Sequence[Any]) -> list[Any]:
    """The handlers this process runs: all of them on rank 0 (or without a process group); on the other ranks, all
    but the :func:`rank0_only_handlers`. Handlers that keep the processes in step (validation, SWFT, checkpoints,
    which write on rank 0 only by themselves) run everywhere.

    Args:
        handlers: a trainer's or evaluator's handlers.

    Returns:
        The handlers to attach here.
    """
    if is_writer():
        return list(handlers)
    return [h for h in handlers if not isinstance(h, rank0_only_handlers())]
