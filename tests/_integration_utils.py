"""Helpers for the export / MONAI Deploy / MONAI Label tests: one tiny trained bundle per session, the separate
integration environments, the bundle's own inference as the reference, free loopback ports."""

from __future__ import annotations

import csv
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from _bundle_utils import REPO, TINY_CT, copy_bundle, overrides, run_bundle

NAME = "bimcv_truncated"
#: the config overrides the tiny bundle was trained with; inference everywhere must use the same
TINY_OVERRIDES = {"image_size": [32, 32, 16]}
#: seconds allowed for building an integration environment from nothing (measured: 2.5 min deploy, 5 min label)
ENV_BUILD_TIMEOUT = 1800

# pip's words when the registry cannot give a package: the only build failures that skip instead of fail
_UNAVAILABLE = re.compile(
    r"(No matching distribution found for \S+|Could not find a version that satisfies the requirement \S+"
    r"|Failed to establish a new connection|Network is unreachable|Temporary failure in name resolution)"
)


def trained_tiny_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_demo: Path) -> Path:
    """A copy of the bundle trained for 1 epoch on the tiny demo data, made once per session (later calls reuse it).

    Tests that change the bundle (MONAI Label training) must work on a copy (:func:`copy_trained`).
    """
    root = tmp_path_factory.getbasetemp() / "integration_trained_bundle"
    bundle, done = root / NAME, root / ".done"
    if done.is_file():
        return bundle
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    bundle = copy_bundle(NAME, root)
    proc = run_bundle(["run", "--config_file", str(bundle / "configs" / "train.json"),
                       *overrides(dataset_dir=tiny_demo, max_epochs=1, **TINY_CT)], cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (bundle / "models" / "model.pt").is_file()
    done.write_text("ok")
    return bundle


def copy_trained(bundle: Path, dest: Path) -> Path:
    """A copy of a trained bundle holding its configs and ``models/model.pt`` only."""
    target = dest / bundle.name
    skip = shutil.ignore_patterns("eval", "logs", "data", "runs", "checkpoint_*.pt", "model_final.pt")
    shutil.copytree(bundle, target, ignore=skip)
    return target


def integration_python(kind: str) -> Path:
    """Build (or reuse) ``.venv-<kind>`` with ``scripts/setup_integration_env.sh`` and return its Python.

    Skips only when the package registry cannot give a package (pip says which); any other failure fails.
    """
    script = REPO / "scripts" / "setup_integration_env.sh"
    start = time.time()
    try:
        proc = subprocess.run(["bash", str(script), kind], cwd=REPO, capture_output=True, text=True, timeout=ENV_BUILD_TIMEOUT)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"building the {kind} environment took more than {ENV_BUILD_TIMEOUT} s: {str(err.stdout)[-2000:]}")
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        unavailable = _UNAVAILABLE.search(output)
        if unavailable:
            pytest.skip(f"the {kind} integration environment cannot be built here: pip: {unavailable.group(0)}")
        pytest.fail(f"scripts/setup_integration_env.sh {kind} failed (exit {proc.returncode}):\n{output[-4000:]}")
    done = [line for line in output.splitlines() if "] done in" in line]
    if done:
        print(f"[{kind} environment built in {time.time() - start:.0f} s] {done[-1]}")
    python = Path(os.environ.get("MEDTL_INTEGRATION_VENV", REPO / f".venv-{kind}")) / "bin" / "python"
    assert python.is_file(), output[-2000:]
    return python


def bundle_probabilities(bundle: Path, input_dir: Path, cwd: Path, kinds: str | None = None,
                         extra_configs: list[str] | None = None, **more: object) -> dict[str, list[float]]:
    """The bundle's own inference (``python -m monai.bundle run`` with ``inference.json``) on a folder: probabilities
    by case id, in class order, read back from ``eval/inference/predictions.csv``."""
    configs = [str(bundle / "configs" / "inference.json"), *(str(bundle / "configs" / c) for c in extra_configs or [])]
    config_arg = configs[0] if len(configs) == 1 else "[" + ",".join(f"'{c}'" for c in configs) + "]"
    values = {"input_dir": input_dir, "image_size": "[32,32,16]", **more}
    if kinds:
        values["input_kinds"] = kinds
    csv_path = bundle / "eval" / "inference" / "predictions.csv"
    csv_path.unlink(missing_ok=True)
    proc = run_bundle(["run", "--config_file", config_arg, *overrides(**values)], cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
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


__all__ = ["NAME", "TINY_OVERRIDES", "bundle_probabilities", "copy_trained", "free_port", "integration_python",
           "python_env", "trained_tiny_bundle"]
