"""Helpers for bundle tests: a private copy of a bundle, one bundle trained once per session, running workflows in
this process (most tests) or through the ``monai.bundle`` command line (one smoke test per entry point)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medtl_monai.bundle import load_config, make_model_card, run_workflow

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO.parent / "shared" / "monai" / "meta_schema_20240725.json"

#: overrides that make the default CT bundle cheap enough for tests (tiny volumes, small batches)
TINY_CT = {"image_size": [32, 32, 16], "batch_size": 4, "val_batch_size": 4, "progress_bar": False}


def copy_bundle(name: str, dest: Path) -> Path:
    """Copy ``bundles/<name>`` (configs, docs, LICENSE only) to ``dest/<name>``, as a team adapting it would."""
    target = dest / name
    shutil.copytree(REPO / "bundles" / name, target, ignore=shutil.ignore_patterns("models", "eval", "logs", "data", "runs"))
    return target


def overrides(**values: object) -> list[str]:
    """``--key value`` pairs for the monai.bundle command line (lists and booleans in the form the CLI reads)."""
    args: list[str] = []
    for key, value in values.items():
        text = str(value).replace(" ", "") if isinstance(value, (list, tuple)) else str(value)
        args += [f"--{key}", text.lower() if isinstance(value, bool) else text]
    return args


def run_bundle(args: list[str], cwd: Path | None = None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m monai.bundle <args>`` and return the completed process (stdout and stderr captured)."""
    full_env = dict(os.environ, OMP_NUM_THREADS="2", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args],
        cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def workflow(bundle: Path, configs: list[str], workflow_type: str | None = None, **values: object):
    """Run a bundle workflow in this process (``medtl_monai.bundle.run_workflow``), as ``monai.bundle run`` would."""
    return run_workflow(bundle, configs, values, workflow_type=workflow_type)


def trained_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_demo: Path) -> Path:
    """The default bundle trained for 2 epochs on the tiny demo data through the mission command
    (``python -m monai.bundle run --config_file .../train.json``, run from another folder), once per session.

    Later calls reuse it; tests that change the bundle work on a copy (:func:`copy_trained`).
    """
    root = tmp_path_factory.getbasetemp() / "trained_bundle"
    bundle, done = root / "bimcv_truncated", root / ".done"
    if done.is_file():
        return bundle
    shutil.rmtree(root, ignore_errors=True)
    (root / "cwd").mkdir(parents=True)
    bundle = copy_bundle("bimcv_truncated", root)
    proc = run_bundle(["run", "--config_file", str(bundle / "configs" / "train.json"),
                       *overrides(dataset_dir=tiny_demo, max_epochs=2, **TINY_CT)], cwd=root / "cwd")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (root / "train.log").write_text(proc.stdout + proc.stderr)
    done.write_text("ok")
    return bundle


def the_run(bundle: Path) -> Path:
    """The one run folder of a bundle trained once (``<bundle>/runs/<name>``)."""
    runs = sorted(p for p in (bundle / "runs").iterdir() if p.is_dir())
    assert len(runs) == 1, f"expected one run in {bundle / 'runs'}, found {[p.name for p in runs]}"
    return runs[0]


def copy_trained(bundle: Path, dest: Path) -> Path:
    """A copy of a trained bundle holding its configs, ``models/model.pt`` and its model card."""
    target = dest / bundle.name
    skip = shutil.ignore_patterns("eval", "logs", "data", "runs", "checkpoint_*.pt", "model_final.pt", "*.ts", "*.onnx")
    shutil.copytree(bundle, target, ignore=skip)
    return target


def save_untrained_model(bundle: Path, configs: list[str], **values: object) -> Path:
    """Write what a training would leave in ``<bundle>/models`` (``model.pt`` and its card), with the network of
    ``configs`` and ``values`` at its random initialisation: for tests of what reads a trained model."""
    parser = load_config(bundle, configs, {"weights": None, **values})
    net = parser.get_parsed_content("network_def")
    card = make_model_card(net, parser.get_parsed_content("preprocessing_transforms"), parser.get_parsed_content("class_names"))
    models = bundle / "models"
    models.mkdir(exist_ok=True)
    torch.save(net.state_dict(), models / "model.pt")
    (models / "model_card.json").write_text(json.dumps(card))
    return models / "model.pt"
