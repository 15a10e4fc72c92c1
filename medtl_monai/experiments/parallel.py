"""Run an experiment's independent trainings side by side on one machine, or as a job array on a cluster.

An experiment (the strategy study, the cut search) is a list of independent runs, each writing into its own folder.
:func:`run_tasks` runs them one after another in this process, or in ``workers`` processes of a
``ProcessPoolExecutor`` (spawn context: no CUDA or thread-pool state is inherited), each with
``torch.set_num_threads(max(1, cores // workers))`` so that N workers share the cores instead of fighting over them,
or one process per device (``devices=["cuda:0", "cuda:1"]``; each task then learns its device). A task that fails
does not stop the others; the failures are raised together at the end.

:func:`write_slurm_array` writes the same list for a cluster scheduler: ``runs.txt`` with one command per line and a
SLURM job-array script whose task ``i`` runs line ``i + 1`` of it (``#SBATCH --array=0-(N-1)``), so that a study of
100 trainings runs on as many nodes as the cluster gives. The results are collected from the run folders afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

__all__ = ["TaskPool", "available_cores", "parse_devices", "run_tasks", "strip_options", "worker_threads", "write_slurm_array"]

logger = logging.getLogger("medtl_monai.experiments")

_WORKER: dict[str, Any] = {}  # this worker process's device and thread count (set by _init_worker)


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_threads(workers: int, cores: int | None = None) -> int:
    """Torch threads per worker when ``workers`` processes share ``cores`` (default: this machine's): ``cores // workers``,
    at least one."""
    return max(1, int(cores or available_cores()) // max(1, int(workers)))


def parse_devices(devices: str | Sequence[str] | None) -> list[str]:
    """``"cuda:0,cuda:1"`` (or a list) as a list of device names; ``None`` or ``""``: no devices.

    Raises:
        ValueError: a name torch does not know as a device.
    """
    import torch

    if not devices:
        return []
    names = [d.strip() for d in (devices.split(",") if isinstance(devices, str) else devices) if d.strip()]
    for name in names:
        try:
            torch.device(name)
        except RuntimeError as e:
            raise ValueError(f"--devices: {name!r} is not a device name ({e}).") from e
    return names


def _init_worker(devices: Any, threads: int | None) -> None:
    """Pool initializer: take this worker's device from the queue (if any) and set its thread count."""
    import torch

    device = devices.get() if devices is not None else None
    _WORKER.update(device=device)
    if threads:
        torch.set_num_threads(int(threads))
    if device is not None and str(device).startswith("cuda"):
        torch.cuda.set_device(torch.device(device))


def _call(fn: Callable[..., Any], task: Any) -> Any:
    return fn(task, _WORKER.get("device"))


class TaskPool:
    """Worker processes that run ``fn(task, device)`` for lists of tasks, kept alive between lists (a search runs
    one list per level; starting the workers, which import torch and MONAI, costs seconds each time).

    Use as a context manager; with one worker and no devices, tasks run in this process and nothing is started.

    Args:
        workers: CPU worker processes; 1 runs every task here, one after another.
        devices: one worker per device (``workers`` is then ignored).
        threads: torch threads per worker (default: :func:`worker_threads`; with devices: unchanged).
    """

    def __init__(self, workers: int = 1, devices: Sequence[str] | None = None, threads: int | None = None) -> None:
        self.devices = list(devices or [])
        self.workers = len(self.devices) if self.devices else max(1, int(workers))
        self.threads = threads if threads is not None else (None if self.devices else worker_threads(self.workers))
        self._stack = contextlib.ExitStack()
        self._pool: ProcessPoolExecutor | None = None

    @property
    def in_process(self) -> bool:
        """Whether tasks run in this process."""
        return self.workers == 1 and not self.devices

    def __enter__(self) -> TaskPool:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (after their tasks)."""
        self._stack.close()
        self._pool = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            context = multiprocessing.get_context("spawn")  # nothing inherited: no CUDA context, no thread pools
            queue = None
            if self.devices:
                queue = self._stack.enter_context(context.Manager()).Queue()
                for device in self.devices:  # each worker takes one device when it starts
                    queue.put(device)
            self._pool = self._stack.enter_context(ProcessPoolExecutor(
                max_workers=self.workers, mp_context=context, initializer=_init_worker, initargs=(queue, self.threads)))
        return self._pool

    def run(self, fn: Callable[[Any, str | None], Any], tasks: Sequence[Any],
            on_done: Callable[[Any, Any], None] | None = None) -> list[Any]:
        """Run ``fn(task, device)`` for every task.

        Args:
            fn: a module-level function (workers import it by name); ``device`` is the worker's device or ``None``.
            tasks: picklable task descriptions (``str(task)`` names a task in errors).
            on_done: called as ``on_done(task, result)`` in this process as each task finishes.

        Returns:
            The results in task order.

        Raises:
            RuntimeError: tasks failed (every failure is named; the other tasks still ran); in this process, a single
                failure is raised as it is.
        """
        tasks = list(tasks)
        results: list[Any] = [None] * len(tasks)
        failures: list[str] = []
        errors: list[Exception] = []

        def finished(i: int, outcome: Callable[[], Any]) -> None:
            try:
                results[i] = outcome()
            except Exception as e:  # reported with the others at the end
                failures.append(f"{tasks[i]}: {type(e).__name__}: {e}")
                errors.append(e)
                logger.error("task %s failed: %s", tasks[i], e, exc_info=self.in_process)
                return
            if on_done is not None:
                on_done(tasks[i], results[i])

        if self.in_process:
            for i, task in enumerate(tasks):
                finished(i, lambda task=task: fn(task, None))
        else:
            futures = {self._executor().submit(_call, fn, task): i for i, task in enumerate(tasks)}
            for future in as_completed(futures):
                finished(futures[future], future.result)
        if len(errors) == 1 and self.in_process:  # one failure here: its own error, with its traceback
            raise errors[0]
        if failures:
            raise RuntimeError(f"{len(failures)} of {len(tasks)} runs failed (the others are done and kept):\n"
                               + "\n".join(failures)) from errors[0]
        return results


def run_tasks(fn: Callable[[Any, str | None], Any], tasks: Sequence[Any], *, workers: int = 1,
              devices: Sequence[str] | None = None, threads: int | None = None,
              on_done: Callable[[Any, Any], None] | None = None) -> list[Any]:
    """Run ``fn(task, device)`` for every task, in this process or in a :class:`TaskPool` started for them.

    Args:
        fn, tasks, on_done: as :meth:`TaskPool.run`.
        workers, devices, threads: as :class:`TaskPool`.

    Returns:
        The results in task order.

    Raises:
        RuntimeError: one or more tasks failed (the others still ran).
    """
    with TaskPool(workers, devices, threads) as pool:
        return pool.run(fn, tasks, on_done)


def write_slurm_array(commands: Sequence[Sequence[str] | str], script: str | os.PathLike, *, job_name: str = "medtl",
                      workdir: str | os.PathLike | None = None, runs_file: str | os.PathLike | None = None,
                      sbatch: Sequence[str] = ("--cpus-per-task=4", "--time=24:00:00"),
                      setup: Sequence[str] = ()) -> tuple[Path, Path]:
    """Write a SLURM job-array script and its ``runs.txt``: task ``i`` of the array runs line ``i + 1``.

    Args:
        commands: one command per run (an argument list, quoted here, or a shell line).
        script: the ``.sbatch`` file to write.
        job_name: ``#SBATCH --job-name``.
        workdir: the folder each task starts in (default: the current folder).
        runs_file: the command list (default: ``runs.txt`` beside the script).
        sbatch: more ``#SBATCH`` options, e.g. ``--gres=gpu:1``, ``--partition=...``.
        setup: shell lines run before the command (``module load ...``, ``source .venv/bin/activate``).

    Returns:
        ``(script, runs_file)``.

    Raises:
        ValueError: no command.
    """
    lines = [c if isinstance(c, str) else shlex.join([str(a) for a in c]) for c in commands]
    if not lines:
        raise ValueError(f"{script}: no run to schedule (every run is finished?).")
    script = Path(script)
    script.parent.mkdir(parents=True, exist_ok=True)
    runs = Path(runs_file) if runs_file is not None else script.with_name("runs.txt")
    runs.write_text("\n".join(lines) + "\n")
    workdir = Path(workdir or os.getcwd()).resolve()
    body = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --array=0-{len(lines) - 1}",
        f"#SBATCH --output={runs.parent.resolve() / 'slurm-%A_%a.out'}",
        *(f"#SBATCH {option}" for option in sbatch),
        f"# {len(lines)} independent runs, one per line of {runs.resolve()}; task i runs line i + 1.",
        "set -euo pipefail",
        f"cd {shlex.quote(str(workdir))}",
        *setup,
        f'CMD=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {shlex.quote(str(runs.resolve()))})',
        'echo "[slurm task $SLURM_ARRAY_TASK_ID] $CMD"',
        'eval "$CMD"',
    ]
    script.write_text("\n".join(body) + "\n")
    script.chmod(0o755)
    return script, runs


def strip_options(argv: Sequence[str], with_value: Sequence[str] = (), flags: Sequence[str] = ()) -> list[str]:
    """A command line without some options: ``with_value`` options take a value (``--x V`` or ``--x=V``), ``flags``
    do not. Used to turn the command that wrote a job array into the command of one of its runs."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in flags or (name in with_value and "=" in arg):
            continue
        if name in with_value:
            skip = True
            continue
        out.append(arg)
    return out
