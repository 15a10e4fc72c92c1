"""Atomic checkpoints for MONAI trainers: the best model by a validation metric (with its model card), the last full
training state, and automatic resume from it.

A run killed at any moment (``kill -9`` included) leaves every checkpoint either in its previous or its new
complete state: files are written to a temporary name in the same folder, flushed to disk, then renamed
(``os.replace`` is atomic on POSIX). Running the same command again resumes from the last saved epoch (every epoch
by default; every ``last_every`` epochs when writing the full training state each epoch costs too much, e.g. large
3D networks with short epochs: ``epoch_times.json`` of :class:`~medtl_monai.training.EpochTimeBreakdown` shows the
share). The seconds spent writing are reported to that breakdown as its ``checkpoint`` part.
Each checkpoint records the hash of the config that made it (``config_hash``, see
:func:`medtl_monai.bundle.config_hash`): resuming with another config stops with a message instead of mixing two
trainings. Every file holds only tensors and plain Python values, so it loads with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from ..networks import read_checkpoint, unwrap
from ..utils import as_bool

__all__ = ["TrainingCheckpointer", "atomic_torch_save", "atomic_write_text", "is_writer"]

logger = logging.getLogger("medtl_monai.training")


def is_writer() -> bool:
    """Whether this process writes shared files: rank 0 of a process group, or the only process."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized() and dist.get_rank() != 0)


def _atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Write through ``write(file)`` into a temporary file beside ``path``, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over ``path``.

    Args:
        obj: what to save.
        path: destination.

    Returns:
        The destination path.
    """
    return _atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` to ``path`` atomically (as :func:`atomic_torch_save`).

    Returns:
        The destination path.
    """
    return _atomic_write(path, lambda f: f.write(text), mode="w")


def _scalar(value: Any) -> float | None:
    """A metric value as a float (numbers, one-element tensors and arrays), or ``None`` for anything else."""
    if isinstance(value, (str, bytes)):
        return None
    item = getattr(value, "item", None)
    try:
        return float(item()) if callable(item) else float(value)
    except (TypeError, ValueError, RuntimeError):
        return None


class TrainingCheckpointer:
    """Save the best model (by an evaluator metric) and the last training state each epoch; resume at start.

    Attach it to the trainer *after* MONAI's ``ValidationHandler`` so that the epoch's validation metrics exist.

    Files in ``ckpt_dir``:
        - ``best_name`` (default ``model.pt``): the network's state dict at the best validation ``key_metric``
          (the model zoo's name, read by ``evaluate.json``, ``inference.json`` and ``ckpt_export``);
        - ``card_name`` (default ``model_card.json``): ``card`` as JSON, written with every new ``best_name`` (what
          the weights are: the network's settings, its preprocessing, its classes);
        - ``metrics_name`` (default ``metrics.json``): with every new ``best_name``, ``{"key_metric", "best_metric",
          "best_epoch", "metrics": <all validation metrics of that epoch>, "config_hash"}``;
        - ``last_name`` (default ``checkpoint_last.pt``): ``{"network", "optimizer", "lr_scheduler", "epoch",
          "iteration", "best_metric", "best_epoch", "key_metric", "config_hash"}`` after every ``last_every``-th
          epoch and at the end of training, for resuming;
        - ``final_name`` (default ``model_final.pt``): the network at the end of training.

    ``best_name`` stays a bare state dict (what MONAI's ``CheckpointLoader`` and ``ckpt_export`` read); its config
    hash is in the card (``"config_hash"``) and in ``metrics_name``.

    Args:
        ckpt_dir: output folder.
        network: the model (a ``DistributedDataParallel`` wrapper is unwrapped).
        optimizer: its optimizer.
        evaluator: the validation engine whose ``state.metrics[key_metric]`` ranks checkpoints; ``None`` keeps only
            last/final.
        key_metric: metric name, e.g. ``"val_auroc"``.
        lr_scheduler: optional scheduler saved and restored with the rest.
        mode: ``"max"`` or ``"min"`` for the key metric.
        resume: whether to resume from ``last_name`` when it exists.
        card: the model card written beside ``best_name`` (a JSON-ready mapping); ``None`` writes none.
        config_hash: the hash of the resolved config of this training, stored in every checkpoint; resuming from a
            checkpoint with another hash raises. ``None``: not recorded, not checked.
        best_name, last_name, final_name, card_name, metrics_name: file names.
        last_every: write ``last_name`` after every ``last_every``-th epoch (1: every epoch); it is always written
            when training ends. A run killed in between resumes from the last written epoch and trains the epochs
            after it again; the best model written meanwhile is kept as the best (its metrics file says which epoch
            and value it has), so a retrained epoch replaces it only when it is better.

    Raises:
        ValueError: at the start of training, when ``checkpoint_last.pt`` was made by a config with another hash.

    Distributed training: every process keeps the same state; only rank 0 (:func:`is_writer`) writes files.
    """

    def __init__(
        self,
        ckpt_dir: str | os.PathLike,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        evaluator: Engine | None = None,
        key_metric: str = "val_auroc",
        lr_scheduler: Any = None,
        mode: str = "max",
        resume: bool | str = True,
        best_name: str = "model.pt",
        last_name: str = "checkpoint_last.pt",
        final_name: str = "model_final.pt",
        card: Mapping[str, Any] | None = None,
        card_name: str = "model_card.json",
        config_hash: str | None = None,
        metrics_name: str = "metrics.json",
        last_every: int = 1,
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode={mode!r} must be 'max' or 'min'.")
        if int(last_every) < 1:
            raise ValueError(f"last_every={last_every!r} must be a whole number of epochs >= 1.")
        self.last_every = int(last_every)
        self.ckpt_dir = Path(ckpt_dir)
        self.network, self.optimizer, self.evaluator, self.lr_scheduler = network, optimizer, evaluator, lr_scheduler
        self.key_metric, self.mode, self.resume = key_metric, mode, as_bool(resume, "resume")
        self.best_path = self.ckpt_dir / best_name
        self.last_path = self.ckpt_dir / last_name
        self.final_path = self.ckpt_dir / final_name
        self.config_hash = str(config_hash) if config_hash else None
        if card is not None:
            card = {**card, "config_hash": self.config_hash} if self.config_hash else dict(card)
        self.card, self.card_path = card, self.ckpt_dir / card_name
        self.metrics_path = self.ckpt_dir / metrics_name
        self.best_metric: float | None = None
        self.best_epoch = 0
        self._last_saved_epoch: int | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.load_last)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.save_epoch)
        engine.add_event_handler(Events.COMPLETED, self.save_final)

    def _better(self, value: float) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if self.best_metric is None:
            return True
        return value > self.best_metric if self.mode == "max" else value < self.best_metric

    def state(self, engine: Engine) -> dict:
        """The resumable training state as plain containers of tensors and numbers."""
        return {
            "network": unwrap(self.network).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler is not None else None,
            "epoch": int(engine.state.epoch),
            "iteration": int(engine.state.iteration),
            "best_metric": self.best_metric,
            "best_epoch": int(self.best_epoch),
            "key_metric": self.key_metric,
            "config_hash": self.config_hash,
        }

    def _save_best(self) -> None:
        atomic_torch_save(unwrap(self.network).state_dict(), self.best_path)
        if self.card is not None:
            atomic_write_text(json.dumps(self.card, indent=2) + "\n", self.card_path)

    def _save_metrics(self) -> None:
        """The best epoch's validation metrics (numbers only) as JSON beside the best model."""
        metrics = {k: v for k, v in ((k, _scalar(v)) for k, v in self.evaluator.state.metrics.items()) if v is not None}
        doc = {"key_metric": self.key_metric, "best_metric": self.best_metric, "best_epoch": self.best_epoch,
               "metrics": metrics, "config_hash": self.config_hash}
        atomic_write_text(json.dumps(doc, indent=2) + "\n", self.metrics_path)

    def save_epoch(self, engine: Engine) -> None:
        """Update the best checkpoint if the epoch's validation improved it, then (every ``last_every`` epochs) the
        last checkpoint."""
        if self.evaluator is not None and self.key_metric in self.evaluator.state.metrics:
            value = float(self.evaluator.state.metrics[self.key_metric])
            if self._better(value):  # every process keeps the best, so that any of them could write the last state
                self.best_metric, self.best_epoch = value, int(engine.state.epoch)
                if is_writer():
                    start = time.perf_counter()
                    self._save_best()
                    self._save_metrics()
                    _report_time(engine, time.perf_counter() - start)
                    logger.info("epoch %d: new best %s = %.4f, saved %s", engine.state.epoch, self.key_metric, value,
                                self.best_path)
        if is_writer() and int(engine.state.epoch) % self.last_every == 0:
            self._save_last(engine)

    def _save_last(self, engine: Engine) -> None:
        start = time.perf_counter()
        atomic_torch_save(self.state(engine), self.last_path)
        self._last_saved_epoch = int(engine.state.epoch)
        _report_time(engine, time.perf_counter() - start)

    def save_final(self, engine: Engine) -> None:
        """Save the final network and the last state (when the last epoch did not), and the best network too when
        no validation ever ranked one."""
        if not is_writer():
            return
        if engine.state.epoch and self._last_saved_epoch != int(engine.state.epoch):
            self._save_last(engine)
        atomic_torch_save(unwrap(self.network).state_dict(), self.final_path)
        if self.evaluator is None or not self.best_path.exists():
            self._save_best()
        logger.info(
            "training finished at epoch %d; best %s = %s at epoch %d (%s)",
            engine.state.epoch, self.key_metric, "n/a" if self.best_metric is None else f"{self.best_metric:.4f}",
            self.best_epoch, self.best_path,
        )

    def _adopt_newer_best(self) -> None:
        """After resuming from an older last state (``last_every > 1``): when the best model on disk was written by
        a later epoch of this config, keep it as the best (its metric and epoch from ``metrics_name``), so that the
        retrained epochs replace it only when they are better."""
        if not self.metrics_path.is_file() or not self.best_path.is_file():
            return
        try:
            doc = json.loads(self.metrics_path.read_text())
        except (OSError, ValueError):
            return
        value, epoch = doc.get("best_metric"), int(doc.get("best_epoch") or 0)
        if doc.get("key_metric") != self.key_metric or doc.get("config_hash") != self.config_hash or value is None:
            return
        if epoch > self.best_epoch and self._better(float(value)):
            logger.info("%s: keeping the best model of epoch %d (%s = %.4f), written after the last saved state",
                        self.best_path, epoch, self.key_metric, float(value))
            self.best_metric, self.best_epoch = float(value), epoch

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary files a killed writer left beside the checkpoints (never read: the rename never came)."""
        for path in (self.best_path, self.last_path, self.final_path, self.card_path, self.metrics_path):
            for tmp in path.parent.glob(f".{path.name}.tmp*"):
                tmp.unlink(missing_ok=True)

    def load_last(self, engine: Engine) -> None:
        """Restore network, optimizer, scheduler, epoch and best metric from the last checkpoint, if any."""
        if is_writer() and self.ckpt_dir.is_dir():
            self._remove_stale_temporaries()
        if not self.resume or not self.last_path.exists():
            return
        try:
            ckpt: Mapping = read_checkpoint(self.last_path)
        except ValueError as err:
            raise ValueError(f"{err} Delete it to start training afresh.") from err
        self._check_config_hash(ckpt.get("config_hash"))
        unwrap(self.network).load_state_dict(ckpt["network"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.lr_scheduler is not None and ckpt.get("lr_scheduler") is not None:
            self.lr_scheduler.load_state_dict(ckpt["lr_scheduler"])
        self.best_metric, self.best_epoch = ckpt.get("best_metric"), int(ckpt.get("best_epoch", 0))
        self._adopt_newer_best()
        engine.state.epoch = int(ckpt["epoch"])
        engine.state.iteration = int(ckpt["iteration"])
        self._last_saved_epoch = int(ckpt["epoch"])
        logger.info(
            "resumed from %s: epoch %d done, best %s = %s", self.last_path, engine.state.epoch, self.key_metric, self.best_metric
        )

    def _check_config_hash(self, saved: str | None) -> None:
        """Refuse to resume a training from a checkpoint another config made."""
        if self.config_hash is None or saved == self.config_hash:
            return
        if saved is None:
            logger.warning("%s records no config hash: cannot check that it was made with the current config (%s).",
                           self.last_path, self.config_hash)
            return
        raise ValueError(
            f"{self.last_path}: this checkpoint was made by a config with hash {saved}, but the current config has "
            f"hash {self.config_hash}; resuming would continue one training with the settings of another. Choose "
            "another --run_name to start a new run, or pass --resume false to start this run over (its checkpoints "
            "will be overwritten)."
        )


def _report_time(engine: Engine, seconds: float) -> None:
    """Report checkpoint writing time to the epoch's time breakdown (:func:`~medtl_monai.training.timing.add_time`)."""
    from .timing import add_time  # timing writes its file with this module's atomic writer

    add_time(engine, "checkpoint", seconds)
