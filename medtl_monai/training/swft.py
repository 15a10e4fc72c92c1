"""Step-Wise Fine-Tuning (SWFT) as an Ignite handler.

SWFT is the finetuning of the second step of two-step heterogeneous transfer learning (THTL) in "Analysis of the
Two-Step Heterogeneous Transfer Learning for Laryngeal Blood Vessel Classification: Issue and Improvement"
(arXiv:2402.19001, 2024; journal version: "Investigating the key principles in two-step heterogeneous transfer
learning for early laryngeal cancer identification", Scientific Reports 2025). The head is trained first; then the
stages are unfrozen from the back to the front (``layer4``, ``layer3``, ..., ``stem``), each step continuing from the
best model of the step before, so that the top layers can learn target features (the twisted, tangled vessels of
the malignant class) that the intermediate domain (radial fundus vessels) did not teach.

Start from :func:`~medtl_monai.training.configure` with ``strategy="swft"`` (head only in the optimizer) and
attach :class:`StepwiseFineTuning` to the trainer after the validation handler and the checkpointer.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from torch import nn

from ..networks import read_checkpoint, unwrap
from ._stages import HEAD, check_network, group_name, resolve_groups, stage_groups
from .checkpointer import atomic_torch_save, is_writer
from .configure import check_ddp_allows_freezing, param_group
from .freeze import freeze_batchnorm, set_trainable
from .strategies import get_strategy

__all__ = ["StepwiseFineTuning"]

logger = logging.getLogger("medtl_monai.training")


class StepwiseFineTuning:
    """Unfreeze stage groups from the top down on a schedule, each step restarting from the previous step's best.

    Step 0 trains what the optimizer holds at the start (the head, with ``strategy="swft"``). A step ends after
    ``step_epochs`` epochs, or earlier when ``patience`` validations pass without a better ``key_metric``.
    Only validated epochs count: with validation every ``val_interval > 1`` epochs the evaluator's metrics between
    two validations describe older weights, so an epoch is ranked only when the evaluator completed a run after the
    epoch's last training iteration (the evaluator's ``COMPLETED`` event, stamped with the trainer's iteration; an
    evaluator that is not an Ignite engine, with no events to tell, is read every epoch). A step without any
    validated epoch continues from its last weights. The next step starts at the following epoch
    (``EPOCH_STARTED``): the network is reloaded from the best weights of the step that ended (by ``key_metric``;
    the last weights when there was no validation), the next stage group is unfrozen (``requires_grad``, one new
    optimizer parameter group named after it, BatchNorm statistics updating again), every group's learning rate is
    reset to its configured ``base_lr``, the optimizer's moments are cleared and a ``ReduceLROnPlateau`` scheduler
    restarts its patience, as for a fresh finetuning run.

    With ``state_dir`` the step's best weights (``swft_step_best.pt``) and the schedule's position
    (``swft_state.json``) are kept on disk, and a resumed run (``checkpoint_last.pt`` in ``state_dir``, restored by
    :class:`~medtl_monai.training.TrainingCheckpointer`) rebuilds the optimizer groups of the saved epoch when this
    handler is constructed, before the checkpointer loads the optimizer state.

    Args:
        network: the model (a ``TransferClassifier``).
        optimizer: its optimizer, built from ``configure(network, "swft", lr)``.
        evaluator: validation engine whose ``state.metrics[key_metric]`` ranks a step's validated epochs; ``None``
            keeps the last weights of each step and disables ``patience``.
        key_metric: the metric, e.g. ``"val_auroc"``.
        mode: ``"max"`` or ``"min"``.
        step_epochs: epochs per step: an int, a list (one per step, starting with the head-only step; the last
            value repeats), or ``None`` (plateau only).
        patience: end a step after this many validations without improvement; ``None`` disables it.
        order: stage names (or lists of names, one list per step) to unfreeze, first to last; a name unfreezes its
            whole stage group. Default: every stage group from the top down.
        lr: learning rate of newly unfrozen stages; default: the rate of the optimizer's last group (the head).
        lr_scheduler: a scheduler to restart at each step (``ReduceLROnPlateau``'s patience and best value).
        state_dir: folder for the resumable state (the bundle's ``models/``); ``None`` keeps it in memory.
        checkpoint_name: the checkpointer's last-state file inside ``state_dir``.
        strategy: the run's strategy; the handler acts only when the strategy's registry entry is step-wise
            (``swft``), so that a bundle can list it for every strategy.

    Raises:
        ValueError: an invalid schedule, order or mode, or a ``DistributedDataParallel`` network built without
            ``find_unused_parameters=True`` (the set of trained parameters changes during the run).

    Distributed training: every process runs its own handler. They take the same decisions because the validation
    metric is gathered over all processes and DDP keeps the weights equal; only rank 0 writes ``state_dir``.
    """

    STATE_FILE = "swft_state.json"
    BEST_FILE = "swft_step_best.pt"

    def __init__(
        self,
        network: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        evaluator: Engine | None = None,
        key_metric: str = "val_auroc",
        mode: str = "max",
        step_epochs: int | Sequence[int] | None = 2,
        patience: int | None = None,
        order: Sequence[str | Sequence[str]] | None = None,
        lr: float | None = None,
        lr_scheduler: Any = None,
        state_dir: str | os.PathLike | None = None,
        checkpoint_name: str = "checkpoint_last.pt",
        strategy: str = "swft",
    ) -> None:
        self.enabled = get_strategy(strategy).stepwise
        if not self.enabled:
            return
        check_ddp_allows_freezing(network, "strategy 'swft' changes which parameters train during the run")
        if mode not in ("max", "min"):
            raise ValueError(f"mode={mode!r} must be 'max' or 'min'.")
        self.network, self.optimizer, self.evaluator = check_network(network), optimizer, evaluator
        self.key_metric, self.mode, self.lr_scheduler = key_metric, mode, lr_scheduler
        self.steps = resolve_groups(self.network, order) if order else list(reversed(stage_groups(self.network)))
        if step_epochs is None and patience is None:
            raise ValueError("give step_epochs, patience or both: SWFT needs a rule to end a step.")
        if isinstance(step_epochs, (int, str)):
            step_epochs = [int(step_epochs)]
        self.step_epochs = None if step_epochs is None else [int(e) for e in step_epochs]
        if self.step_epochs is not None and (not self.step_epochs or min(self.step_epochs) < 1):
            raise ValueError(f"step_epochs={step_epochs!r} must be positive.")
        self.patience = None if patience is None else int(patience)
        self.lr = float(lr) if lr is not None else float(optimizer.param_groups[-1].get("base_lr", optimizer.param_groups[-1]["lr"]))
        self.state_dir = Path(state_dir) if state_dir else None
        self.checkpoint_name = checkpoint_name
        self.step = 0
        self.epochs_in_step = 0
        self.bad_epochs = 0
        self.pending = False
        self.step_best: float | None = None
        self.step_best_epoch = 0
        self._best_state: dict[str, torch.Tensor] | None = None
        self._trainer: Engine | None = None
        #: ``(trainer iteration, key_metric)`` of the evaluator's last completed run while attached
        self._last_validation: tuple[int, float | None] | None = None
        #: ``[(epoch, step, [trainable stage groups])]``, one entry per transition (for logs and tests)
        self.history: list[tuple[int, int, list[str]]] = []
        self._restore()

    # ---- schedule ---------------------------------------------------------------------------------------------
    def _epochs_for(self, step: int) -> int | None:
        if self.step_epochs is None:
            return None
        return self.step_epochs[min(step, len(self.step_epochs) - 1)]

    def _better(self, value: float) -> bool:
        if value is None or math.isnan(value):
            return False
        if self.step_best is None:
            return True
        return value > self.step_best if self.mode == "max" else value < self.step_best

    @property
    def unfrozen(self) -> list[tuple[str, ...]]:
        """Stage groups unfrozen so far, in unfreezing order."""
        return self.steps[: self.step]

    # ---- events -----------------------------------------------------------------------------------------------
    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        self._trainer = engine
        engine.add_event_handler(Events.EPOCH_STARTED, self.epoch_started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)
        if isinstance(self.evaluator, Engine):
            self.evaluator.add_event_handler(Events.COMPLETED, self._validation_completed)

    def _validation_completed(self, evaluator: Engine) -> None:
        """Remember when (at which trainer iteration) the evaluator last finished, and its metric."""
        value = (evaluator.state.metrics or {}).get(self.key_metric)
        iteration = int(self._trainer.state.iteration) if self._trainer is not None else -1
        self._last_validation = (iteration, None if value is None else float(value))

    def _epoch_metric(self, engine: Engine) -> float | None:
        """The key metric of the weights this epoch ended with; ``None`` when they were not validated."""
        if isinstance(self.evaluator, Engine):
            validated = self._last_validation is not None and self._last_validation[0] == int(engine.state.iteration)
            return self._last_validation[1] if validated else None
        metrics = getattr(getattr(self.evaluator, "state", None), "metrics", None) or {}
        value = metrics.get(self.key_metric)
        return None if value is None else float(value)

    def epoch_completed(self, engine: Engine) -> None:
        """Track the step's best weights (validated epochs only) and decide whether the step ends."""
        epoch = int(engine.state.epoch)
        self.epochs_in_step += 1
        value = self._epoch_metric(engine)
        if value is not None and self._better(float(value)):
            self.step_best, self.step_best_epoch, self.bad_epochs = float(value), epoch, 0
            self._best_state = copy.deepcopy(unwrap(self.network).state_dict())
            if self._writes():
                atomic_torch_save(self._best_state, self.state_dir / self.BEST_FILE)
        elif value is not None:
            self.bad_epochs += 1
        if self.step < len(self.steps):
            limit = self._epochs_for(self.step)
            plateau = self.patience is not None and value is not None and self.bad_epochs >= self.patience
            if (limit is not None and self.epochs_in_step >= limit) or plateau:
                self.pending = True
        self._save_state(epoch)

    def epoch_started(self, engine: Engine) -> None:
        """Start the next step if the previous epoch ended one."""
        if self.pending:
            self.advance(int(engine.state.epoch))

    def advance(self, epoch: int = 0) -> None:
        """Start the next step now: reload the step's best weights, unfreeze the next stage group, reset rates."""
        if self.step >= len(self.steps):
            self.pending = False
            return
        source = "the last weights"
        if self._best_state is not None:
            unwrap(self.network).load_state_dict(self._best_state)
            source = f"the step's best weights (epoch {self.step_best_epoch}, {self.key_metric}={self.step_best:.4f})"
        group = self.steps[self.step]
        self._unfreeze(group)
        for g in self.optimizer.param_groups:
            g["lr"] = float(g.get("base_lr", g["lr"]))
        self.optimizer.state.clear()
        if self.lr_scheduler is not None and hasattr(self.lr_scheduler, "_reset"):
            self.lr_scheduler._reset()  # ReduceLROnPlateau: forget the previous step's best loss and patience
        self.step += 1
        self.epochs_in_step = self.bad_epochs = 0
        self.step_best, self.step_best_epoch, self._best_state, self.pending = None, 0, None, False
        trainable = [group_name(g) for g in self.unfrozen[::-1]] + [HEAD]
        self.history.append((epoch, self.step, trainable))
        logger.info("SWFT step %d at epoch %d: unfroze %s, continuing from %s; trainable: %s",
                    self.step, epoch, group_name(group), source, ", ".join(trainable))

    def _unfreeze(self, group: tuple[str, ...]) -> None:
        set_trainable(self.network, group, True)
        self.optimizer.add_param_group(param_group(self.network, group, self.lr))
        freeze_batchnorm(self.network)

    # ---- persistence ------------------------------------------------------------------------------------------
    def _writes(self) -> bool:
        """Whether this process writes ``state_dir`` (rank 0, or no process group)."""
        return self.state_dir is not None and is_writer()

    def _save_state(self, epoch: int) -> None:
        if not self._writes():
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = {"epoch": epoch, "step": self.step, "epochs_in_step": self.epochs_in_step, "bad_epochs": self.bad_epochs,
                 "pending": self.pending, "step_best": self.step_best, "step_best_epoch": self.step_best_epoch,
                 "unfrozen": [list(g) for g in self.unfrozen]}
        tmp = self.state_dir / f".{self.STATE_FILE}.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.state_dir / self.STATE_FILE)

    def _restore(self) -> None:
        """Rebuild the optimizer groups of a resumed run (read from the checkpoint's optimizer state)."""
        if self.state_dir is None or not (self.state_dir / self.checkpoint_name).is_file():
            return
        ckpt = read_checkpoint(self.state_dir / self.checkpoint_name)
        saved_names = [g.get("name") for g in ckpt.get("optimizer", {}).get("param_groups", [])]
        current = [g.get("name") for g in self.optimizer.param_groups]
        extra = saved_names[len(current):]
        by_name = {group_name(g): g for g in self.steps}
        if saved_names[: len(current)] != current or any(n not in by_name for n in extra):
            raise ValueError(f"{self.state_dir / self.checkpoint_name} holds optimizer groups {saved_names}, which this "
                             f"SWFT schedule cannot rebuild (steps {[group_name(g) for g in self.steps]}); delete it to "
                             "start afresh.")
        if [group_name(g) for g in self.steps[: len(extra)]] != extra:
            raise ValueError(f"checkpoint unfroze {extra}, not in this schedule's order {[group_name(g) for g in self.steps]}.")
        for name in extra:
            self._unfreeze(by_name[name])
        self.step = len(extra)
        state_path = self.state_dir / self.STATE_FILE
        state = json.loads(state_path.read_text()) if state_path.is_file() else {}
        if state.get("epoch") == int(ckpt.get("epoch", -1)) and state.get("step") == self.step:
            self.epochs_in_step, self.bad_epochs = int(state["epochs_in_step"]), int(state["bad_epochs"])
            self.pending, self.step_best_epoch = bool(state["pending"]), int(state["step_best_epoch"])
            self.step_best = state["step_best"]
            best = self.state_dir / self.BEST_FILE
            if self.step_best is not None and best.is_file():
                self._best_state = dict(read_checkpoint(best))
        else:
            logger.warning("SWFT state %s does not match checkpoint epoch %s: step %d restarts its epoch count",
                           state_path, ckpt.get("epoch"), self.step)
        logger.info("SWFT resumed at step %d (unfrozen: %s)", self.step, ", ".join(extra) or "nothing")
