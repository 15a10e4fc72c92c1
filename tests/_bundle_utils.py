"""Helpers for bundle tests: a private copy of a bundle, tiny demo data, and running ``monai.bundle`` commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO.parent / "shared" / "monai" / "meta_schema_20240725.json"

#: overrides that make the default CT bundle cheap enough for tests (tiny volumes, a few epochs)
TINY_CT = {"image_size": "[32,32,16]", "batch_size": "4", "val_batch_size": "4", "progress_bar": "false"}


def copy_bundle(name: str, dest: Path) -> Path:
    """Copy ``bundles/<name>`` (configs, docs, LICENSE only) to ``dest/<name>``, as a team adapting it would."""
    target = dest / name
    shutil.copytree(REPO / "bundles" / name, target, ignore=shutil.ignore_patterns("models", "eval", "logs", "data", "runs"))
    return target


def overrides(**values: object) -> list[str]:
    """``--key value`` pairs for the monai.bundle command line."""
    args: list[str] = []
    for key, value in values.items():
        args += [f"--{key}", str(value)]
    return args


def run_bundle(args: list[str], cwd: Path | None = None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m monai.bundle <args>`` and return the completed process (stdout and stderr merged)."""
    full_env = dict(os.environ, OMP_NUM_THREADS="2", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args],
        cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
