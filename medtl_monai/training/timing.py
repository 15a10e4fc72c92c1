"""Where an epoch's time goes: waiting for data, training steps, validation, checkpoint writing and the rest.

:class:`EpochTimeBreakdown` is an Ignite handler for a MONAI trainer. It times, from the engines' own events:

- **data**: from ``GET_BATCH_STARTED`` to ``GET_BATCH_COMPLETED`` of every iteration (the time the loop waits for the
  next batch; with ``num_workers=0`` that is the augmentation itself, otherwise the part the workers did not hide);
- **step**: from ``ITERATION_STARTED`` to ``ITERATION_COMPLETED`` (forward, loss, backward, optimizer step and MONAI's
  post-processing of the step's output);
- **validation**: from the evaluator's ``STARTED`` to its ``COMPLETED`` (MONAI's ``ValidationHandler`` runs it inside
  the trainer's ``EPOCH_COMPLETED``);
- any **part a handler reports** with :func:`add_time` (the :class:`~medtl_monai.training.TrainingCheckpointer`
  reports the seconds it spends writing files as ``checkpoint``);
- **rest**: the epoch's wall time (``EPOCH_STARTED`` until every ``EPOCH_COMPLETED`` handler is done) minus all of
  the above (other handlers, logging, Python overhead).

Per epoch it logs one line and rewrites ``epoch_times.json`` in ``log_dir`` (atomically): the parts in seconds and
as shares of the epoch, plus ``startup_s`` (``STARTED`` until the first epoch starts: resuming a checkpoint) and
``final_s`` (the end of the last epoch until ``COMPLETED`` is handled: the final checkpoint); a resumed run keeps
the records of the epochs it does not repeat. Time spent before
``trainer.run()`` (parsing the config, caching the data set) is outside the trainer; ``scripts/bench_training.py``
measures it as the workflow's wall time minus ``total_s``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from ..utils import as_bool
from .checkpointer import atomic_write_text, is_writer

__all__ = ["EpochTimeBreakdown", "add_time"]

logger = logging.getLogger("medtl_monai.training")

#: the measured parts, in the order they are reported; handlers may report others through :func:`add_time`.
PARTS: tuple[str, ...] = ("data", "step", "validation", "checkpoint")


def add_time(engine: Engine, part: str, seconds: float) -> None:
    """Add ``seconds`` to ``part`` of the current epoch's time breakdown of ``engine``.

    A handler that does work worth measuring (writing checkpoints) calls this; :class:`EpochTimeBreakdown`, when
    attached, reports the part and subtracts it from the epoch's rest. Without it the numbers are kept on
    ``engine.state`` and never read.

    Args:
        engine: the trainer.
        part: the part's name (``"checkpoint"``).
        seconds: time spent.
    """
    times = getattr(engine.state, "epoch_times", None)
    if times is None:
        times = engine.state.epoch_times = {}
    times[part] = times.get(part, 0.0) + float(seconds)


class EpochTimeBreakdown:
    """Time the parts of every training epoch and write them to ``<log_dir>/epoch_times.json``.

    Attach it to the trainer (anywhere in the handler list: the handlers that close an epoch and the run are
    registered when the run starts, after all others, so that they see every other handler's time).

    Args:
        evaluator: the validation engine run by MONAI's ``ValidationHandler``; ``None``: validation is not
            separated from the rest.
        log_dir: folder of ``epoch_times.json``; ``None`` only logs.
        file_name: the file's name.
        enabled: switch from a config (``false`` attaches nothing).

    Distributed training: every process times itself; only rank 0 logs and writes the file.
    """

    def __init__(self, evaluator: Engine | None = None, log_dir: str | os.PathLike | None = None,
                 file_name: str = "epoch_times.json", enabled: bool | str = True) -> None:
        self.evaluator = evaluator
        self.path = Path(log_dir) / file_name if log_dir is not None else None
        self.enabled = as_bool(enabled, "enabled")
        self.epochs: list[dict[str, Any]] = []
        self.startup_s = self.final_s = self.total_s = 0.0
        self._closers_added = False
        self._clock: dict[str, float] = {}
        self._parts: dict[str, float] = {}
        self._iterations = 0

    # ---- attaching ----------------------------------------------------------------------------------------------
    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.GET_BATCH_STARTED, self._mark, "batch")
        engine.add_event_handler(Events.GET_BATCH_COMPLETED, self._add_since, "batch", "data")
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._add_since, "step", "step")
        if isinstance(self.evaluator, Engine):
            self.evaluator.add_event_handler(Events.STARTED, self._mark, "validation")
            self.evaluator.add_event_handler(Events.COMPLETED, self._add_since, "validation", "validation")

    def _started(self, engine: Engine) -> None:
        """Start the run's clock, keep the epochs a resumed run already timed, and register the closing handlers last
        (after every handler attached before)."""
        self._clock["run"] = time.perf_counter()
        done = int(engine.state.epoch or 0)  # restored by the checkpointer when the run resumes
        if done and not self.epochs and self.path is not None and self.path.is_file():
            try:
                previous = json.loads(self.path.read_text()).get("epochs", [])
            except (OSError, ValueError):
                previous = []
            self.epochs = [e for e in previous if isinstance(e, dict) and int(e.get("epoch", 0)) <= done]
        if not self._closers_added:  # ITERATION_STARTED last: the step starts when the other handlers are done
            engine.add_event_handler(Events.ITERATION_STARTED, self._mark, "step")
            engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
            engine.add_event_handler(Events.COMPLETED, self._completed)
            self._closers_added = True

    # ---- events -------------------------------------------------------------------------------------------------
    def _mark(self, engine: Engine, name: str) -> None:
        self._clock[name] = time.perf_counter()

    def _add_since(self, engine: Engine, name: str, part: str) -> None:
        began = self._clock.pop(name, None)
        if began is None:  # e.g. a validation run outside an epoch
            return
        self._parts[part] = self._parts.get(part, 0.0) + time.perf_counter() - began
        if part == "step":
            self._iterations += 1

    def _epoch_started(self, engine: Engine) -> None:
        now = time.perf_counter()
        if "run" in self._clock and "startup" not in self._clock:
            self.startup_s = now - self._clock["run"]
            self._clock["startup"] = now
        self._clock["epoch"] = now
        self._parts, self._iterations = {}, 0
        engine.state.epoch_times = {}

    def _epoch_completed(self, engine: Engine) -> None:
        now = time.perf_counter()
        wall = now - self._clock.pop("epoch", now)
        parts = {**self._parts, **(getattr(engine.state, "epoch_times", None) or {})}
        record: dict[str, Any] = {"epoch": int(engine.state.epoch), "iterations": self._iterations, "wall_s": wall}
        for name in (*PARTS, *sorted(set(parts) - set(PARTS))):
            record[f"{name}_s"] = float(parts.get(name, 0.0))
        record["rest_s"] = wall - sum(parts.values())
        record["outside_steps_share"] = (1.0 - record["step_s"] / wall) if wall > 0 else float("nan")
        self.epochs.append(record)
        self._clock["epoch_end"] = now
        if is_writer():
            logger.info("epoch %d: %s", record["epoch"], describe_epoch(record))
            self.write()

    def _completed(self, engine: Engine) -> None:
        now = time.perf_counter()
        self.final_s = now - self._clock.get("epoch_end", now)
        self.total_s = now - self._clock.get("run", now)
        if is_writer():
            self.write()

    # ---- results ------------------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Everything measured so far: per-epoch records, their sums and the run's start-up, final and total time."""
        totals: dict[str, float] = {}
        for record in self.epochs:
            for key, value in record.items():
                if key.endswith("_s"):
                    totals[key] = totals.get(key, 0.0) + float(value)
        wall = totals.get("wall_s", 0.0)
        shares = {key[:-2]: value / wall for key, value in totals.items() if key != "wall_s"} if wall > 0 else {}
        return {"epochs": self.epochs, "totals": totals, "shares": shares, "startup_s": self.startup_s,
                "final_s": self.final_s, "total_s": self.total_s}

    def write(self) -> Path | None:
        """Write :meth:`summary` to ``epoch_times.json`` (nothing without ``log_dir``); return the path."""
        if self.path is None:
            return None
        return atomic_write_text(json.dumps(self.summary(), indent=1) + "\n", self.path)


def describe_epoch(record: dict[str, Any]) -> str:
    """One line: ``25.1 s: data 0.2 s (1%), step 20.3 s (81%), ...`` from an epoch record of :class:`EpochTimeBreakdown`."""
    wall = float(record["wall_s"])
    parts = [(key[:-2], float(value)) for key, value in record.items() if key.endswith("_s") and key != "wall_s"]
    return f"{wall:.1f} s: " + ", ".join(
        f"{name} {value:.2f} s ({100 * value / wall:.0f}%)" if wall > 0 else f"{name} {value:.2f} s" for name, value in parts)
