"""A training run as the bundle configs see it: its name, its folder, what it records at the start, and publishing.

``train.json`` of both bundles wires a training into its own run folder with four keys::

    "run_name": "$medtl_monai.bundle.training_run_name(@bundle_root, {...the settings a name shows...})",
    "run_dir": "$medtl_monai.bundle.run_dir(@bundle_root, @run_name)",
    "ckpt_dir": "$os.path.join(@run_dir, 'models')", ...
    "initialize": [..., "$medtl_monai.bundle.start_run(@run_dir, @bundle_root, ...)"],
    "run": ["$@train#trainer.run()", "$medtl_monai.bundle.finish_run(@run_dir, @publish_dir, @publish)"]

``--run_name NAME`` chooses the name: the same command with the same name continues that run after an interruption
(the checkpointer checks that the resolved config is the one that made the checkpoint, see
:func:`~medtl_monai.bundle.config_hash`). Without it every training gets a new name, so a new run never resumes
another one.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..training import atomic_write_text, is_writer
from ..utils import as_bool
from .config import running_config, running_parser_id
from .provenance import PROVENANCE_NAME, write_provenance
from .run_config import BOOKKEEPING_KEYS, CONFIG_NAME, config_hash, flatten_config
from .runs import default_run_name, new_run_name, publish_run, read_json

__all__ = ["finish_run", "running_config_hash", "start_run", "training_run_name"]

logger = logging.getLogger("medtl_monai.bundle")

#: default names given in this process, so that a config evaluated twice names its run once
_GIVEN_NAMES: dict[tuple[str, str, int], str] = {}


def _bundle_defaults(bundle_root: Path) -> dict[str, Any]:
    """The raw values of the bundle's own ``configs/train.json`` (what a default run name is compared with)."""
    try:
        return json.loads((bundle_root / "configs" / "train.json").read_text())
    except (OSError, ValueError):
        return {}


def training_run_name(bundle_root: str | os.PathLike, settings: Mapping[str, Any]) -> str:
    """A new run name for this training (the default of ``run_name``; ``--run_name`` replaces it): the time and the
    settings that differ from the bundle's defaults (:func:`~medtl_monai.bundle.default_run_name`), never the name of
    an existing run.

    The name is given once per workflow (a config evaluated again names its run again the same way), and in a
    distributed training every process takes the name of the first one.

    Args:
        bundle_root: the bundle folder.
        settings: the run's values of the settings a name may show (``arch``, ``cut``, ``strategy``, ``weights``,
            ``preprocessing_transforms``, ...).

    Returns:
        The run name (a plain folder name).
    """
    root = Path(bundle_root).resolve()
    plain = {key: (value.config if hasattr(value, "config") else value) for key, value in settings.items()}
    key = (str(root), json.dumps(plain, sort_keys=True, default=str), running_parser_id())
    if key not in _GIVEN_NAMES:
        name = new_run_name(root, default_run_name(plain, _bundle_defaults(root)))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            shared = [name]
            torch.distributed.broadcast_object_list(shared, src=0)
            name = shared[0]
        _GIVEN_NAMES[key] = name
    return _GIVEN_NAMES[key]


def running_config_hash(bundle_root: str | os.PathLike) -> str | None:
    """:func:`~medtl_monai.bundle.config_hash` of the config being run (``None`` when it cannot be known)."""
    config = running_config(bundle_root)
    return None if config is None else config_hash(config)


def _changed_settings(saved: Mapping[str, Any], current: Mapping[str, Any], limit: int = 8) -> str:
    """``id: saved -> current`` for the settings (of the hash) that differ, at most ``limit`` of them."""
    flat = [flatten_config({k: v for k, v in c.items() if k not in BOOKKEEPING_KEYS}) for c in (saved, current)]
    changed = [f"{key}: {flat[0].get(key)!r} -> {flat[1].get(key)!r}" for key in sorted(flat[0].keys() | flat[1].keys())
               if flat[0].get(key) != flat[1].get(key) and key.split("#")[0] not in BOOKKEEPING_KEYS]
    more = f"; and {len(changed) - limit} more" if len(changed) > limit else ""
    return "; ".join(changed[:limit]) + more


def start_run(
    run_path: str | os.PathLike,
    bundle_root: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    init_from: str | os.PathLike | None = None,
    datalist: str | os.PathLike | None = None,
    device: Any = None,
    resume: Any = True,
) -> Path:
    """Record how a training run was made, in its folder: the resolved config (``config.json``, one file that
    ``python -m monai.bundle run --config_file`` runs again) and the provenance record (``provenance.json``).

    A run continued after an interruption (same ``--run_name``, ``--resume`` true) keeps the record of its start and
    gains a ``resumed`` entry; continuing it with other settings is refused here, before anything is overwritten (the
    checkpointer checks the same hash before loading a checkpoint). Only the writing process of a distributed run
    writes. The log says where the run is and how to continue it.

    Args:
        run_path: the run folder (created).
        bundle_root: the bundle folder.
        weights: the ``weights`` setting.
        init_from: the ``init_from`` setting.
        datalist: the datalist file.
        device: the training device.
        resume: ``--resume``: continue the run from its last checkpoint (else it starts over, its record rewritten).

    Returns:
        The run folder.

    Raises:
        ValueError: the run exists, ``resume`` is true, and its resolved config has another hash than this one; the
            message names both configs, the settings that differ and what to do.
    """
    run_path = Path(run_path)
    config = running_config(bundle_root)
    digest = None if config is None else config_hash(config)
    config_file = run_path / CONFIG_NAME
    saved = read_json(config_file) if as_bool(resume) else None
    continued = saved is not None and digest is not None
    if continued and config_hash(saved) != digest:
        raise ValueError(
            f"{run_path}: run {run_path.name!r} was started with another config ({config_file}, hash "
            f"{config_hash(saved)}) than this command's (hash {digest}): {_changed_settings(saved, config)}. Choose "
            "another --run_name to start a new run with these settings, run the original command again to continue "
            "this run, or pass --resume false to start this run over (its checkpoints will be overwritten)."
        )
    if not is_writer():
        return run_path
    run_path.mkdir(parents=True, exist_ok=True)
    record = read_json(run_path / PROVENANCE_NAME) if continued else None
    if record is not None:
        record.setdefault("resumed", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": list(sys.argv)})
        atomic_write_text(json.dumps(record, indent=2) + "\n", run_path / PROVENANCE_NAME)
        logger.info("run %s: continuing %s", run_path.name, run_path)
        return run_path
    if config is not None:
        atomic_write_text(json.dumps(config, indent=4) + "\n", config_file)
    else:
        logger.warning("%s: the resolved config of this run is unknown (not started by monai.bundle run or "
                       "medtl_monai.bundle.run_workflow); config.json is not written.", run_path)
    write_provenance(run_path, weights=None if weights is None else str(weights),
                     init_from=None if init_from is None else str(init_from),
                     datalist=None if datalist is None else str(datalist), device=device, config_hash=digest)
    logger.info("run %s: %s (to continue it after an interruption, run the same command with --run_name %s)",
                run_path.name, run_path, run_path.name)
    return run_path


def finish_run(run_path: str | os.PathLike, models_dir: str | os.PathLike, publish: Any = True) -> Path | None:
    """At the end of a training, publish its best model to ``models_dir`` (the bundle's ``models/``, whose
    ``model.pt`` the model zoo, MONAI Label and MONAI Deploy read) with a ``model_card.json`` naming the run, unless
    ``publish`` is false.

    Args:
        run_path: the run folder.
        models_dir: where to publish (``publish_dir`` in the configs).
        publish: ``--publish``; strings such as ``"false"`` count as booleans.

    Returns:
        The published model file, or ``None`` when nothing was published.
    """
    if not is_writer():
        return None
    if not as_bool(publish):
        logger.info("run %s: not published (--publish false); %s is unchanged.", Path(run_path).name, models_dir)
        return None
    target = publish_run(run_path, models_dir=models_dir)
    logger.info("run %s: published its best model to %s", Path(run_path).name, target)
    return target
