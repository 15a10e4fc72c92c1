"""Helpers for the export / MONAI Deploy / MONAI Label / MLflow tracking tests: one tiny trained bundle per session,
the separate integration environments, the bundle's own inference as the reference, free loopback ports."""

from __future__ import annotations

import csv
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from _bundle_utils import REPO, copy_trained, trained_bundle, workflow
from medtl_monai.bundle import resolve_run

#: seconds allowed for building an integration environment from nothing (measured: 2.5 min deploy, 5 min label,
#: 50 s tracking)
ENV_BUILD_TIMEOUT = 1800

# pip's words when the registry cannot give a package: the only build failures that skip instead of fail
_UNAVAILABLE = re.compile(
    r"(No matching distribution found for \S+|Could not find a version that satisfies the requirement \S+"
    r"|Failed to establish a new connection|Network is unreachable|Temporary failure in name resolution)"
)


#: background builds started by :func:`start_integration_builds`: kind -> (done event, [exit status, output])
_BUILDS: dict[str, tuple[threading.Event, list]] = {}


def _run_build(kind: str) -> tuple[int, str]:
    script = REPO / "scripts" / "setup_integration_env.sh"
    try:
        proc = subprocess.run(["bash", str(script), kind], cwd=REPO, capture_output=True, text=True, timeout=ENV_BUILD_TIMEOUT)
    except subprocess.TimeoutExpired as err:
        return -1, f"building the {kind} environment took more than {ENV_BUILD_TIMEOUT} s: {str(err.stdout)[-2000:]}"
    return proc.returncode, proc.stdout + proc.stderr


def start_integration_builds(kinds: set[str]) -> None:
    """Build the environments of ``kinds`` one after the other in a background thread, so that the builds (overlays
    of the main ``.venv``: tens of seconds of pip each) overlap with the tests that run before the integration tests;
    :func:`integration_python` waits for its kind. One pip at a time leaves a core to the tests."""
    todo = [kind for kind in sorted(kinds) if kind not in _BUILDS]
    for kind in todo:
        _BUILDS[kind] = (threading.Event(), [None, ""])

    def build_all(kinds_in_turn: list[str]) -> None:
        for kind in kinds_in_turn:
            event, result = _BUILDS[kind]
            result[:] = _run_build(kind)
            event.set()

    if todo:
        threading.Thread(target=build_all, args=(todo,), name="integration-env-builds", daemon=True).start()


def _build(kind: str) -> tuple[int, str]:
    """The exit status and output of the environment build of ``kind`` (waiting for a background build)."""
    if kind in _BUILDS:
        event, result = _BUILDS[kind]
        event.wait()
        return result[0], result[1]
    return _run_build(kind)


def integration_python(kind: str) -> Path:
    """Build (or reuse) ``.venv-<kind>`` with ``scripts/setup_integration_env.sh`` and return its Python.

    Skips only when the package registry cannot give a package (pip says which); any other failure fails.
    """
    start = time.time()
    returncode, output = _build(kind)
    if returncode != 0:
        unavailable = _UNAVAILABLE.search(output)
        if unavailable:
            pytest.skip(f"the {kind} integration environment cannot be built here: pip: {unavailable.group(0)}")
        pytest.fail(f"scripts/setup_integration_env.sh {kind} failed (exit {returncode}):\n{output[-4000:]}")
    done = [line for line in output.splitlines() if "] done in" in line]
    if done:
        print(f"[{kind} environment ready after {time.time() - start:.0f} s of waiting] {done[-1]}")
    python = Path(os.environ.get("MEDTL_INTEGRATION_VENV", REPO / f".venv-{kind}")) / "bin" / "python"
    assert python.is_file(), output[-2000:]
    return python


def bundle_probabilities(bundle: Path, input_dir: Path, cwd: Path | None = None, extra_configs: list[str] | None = None,
                         **more: object) -> dict[str, list[float]]:
    """The bundle's own inference (``inference.json`` run as ``monai.bundle run`` runs it) on a folder: probabilities
    by case id, in class order, read back from ``<run>/eval/inference/predictions.csv`` (the run served)."""
    csv_path = resolve_run(bundle, more.get("run_name")) / "eval" / "inference" / "predictions.csv"
    csv_path.unlink(missing_ok=True)
    workflow(bundle, ["inference.json", *(extra_configs or [])], "infer", input_dir=str(input_dir), **more)
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    return {r["id"]: [float(v) for k, v in r.items() if k.startswith("prob_")] for r in rows}


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_env(python: Path) -> dict[str, str]:
    """The environment for a child process of another venv: its ``bin`` first on ``PATH``, no inherited venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = str(python.parent) + os.pathsep + env.get("PATH", "")
    env["OMP_NUM_THREADS"] = "2"
    return env


__all__ = ["bundle_probabilities", "copy_trained", "free_port", "integration_python", "python_env",
           "start_integration_builds", "trained_bundle"]
