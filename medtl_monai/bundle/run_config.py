"""The resolved config of a run (one JSON that ``python -m monai.bundle run`` runs again) and its hash.

A run's ``config.json`` is the *raw* merged config, every config file read and every override applied, as the
config parser holds it before evaluation (expressions stay expressions, so the file runs again exactly as the
original command did), with ``bundle_root`` pinned to the absolute bundle folder and the bundle's metadata kept
under ``_meta_``::

    python -m monai.bundle run --config_file bundles/bimcv_truncated/runs/<run>/config.json

:func:`config_hash` fingerprints what makes the model: the checkpointer stores it in every checkpoint, so that a run
is never resumed with other settings than the ones that started it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..training import atomic_write_text

__all__ = ["BOOKKEEPING_KEYS", "CONFIG_NAME", "config_hash", "flatten_config", "raw_config", "write_resolved_config"]

#: file name of the resolved config in a run folder
CONFIG_NAME = "config.json"

#: config ids that do not change the trained model, left out of :func:`config_hash` (``#`` separates nested ids):
#: where the bundle and the run's files are (``bundle_root``, ``ckpt_dir``, ``output_dir``, ``log_dir``, ``run_name``,
#: ``run_dir``), what the run does with itself (``resume``, ``publish``), how fast or verbosely it runs
#: (``device``, ``num_workers``, the caching workers of the datasets, ``progress_bar``, ``val_batch_size``), whether
#: the data are checked before training (``check_data``), experiment tracking (MONAI's ``--tracking`` keys) and
#: ``max_epochs``: a run resumed with more epochs is the same training continued. ``_meta_`` counts only through
#: ``network_data_format`` (input size and channels).
BOOKKEEPING_KEYS: tuple[str, ...] = (
    "bundle_root", "ckpt_dir", "output_dir", "log_dir", "run_name", "run_dir", "run", "publish", "resume",
    "device", "num_workers", "progress_bar", "val_batch_size", "max_epochs", "check_data",
    "train#dataset#num_workers", "train#dataset#progress",
    "validate#dataset#num_workers", "validate#dataset#progress",
    "tracking_uri", "experiment_name", "save_execute_config", "is_not_rank0",
)
#: handlers that only report (added by ``--tracking``), left out of the hash wherever they appear
_REPORTING_TARGETS = ("MLFlowHandler", "MLflowRunRecord")


def raw_config(parser_or_config: Any) -> dict[str, Any]:
    """A deep copy of the raw config held by a MONAI config parser (its ``get()``), or of a config dict.

    Raises:
        TypeError: neither a mapping nor a config parser.
    """
    if isinstance(parser_or_config, Mapping):
        return copy.deepcopy(dict(parser_or_config))
    if all(callable(getattr(parser_or_config, name, None)) for name in ("get", "get_parsed_content")):
        return copy.deepcopy(dict(parser_or_config.get()))
    raise TypeError(f"expected a config dict or a MONAI config parser, got {type(parser_or_config).__name__}.")


def _bundle_root(parser_or_config: Any, config: Mapping[str, Any]) -> str:
    value = config.get("bundle_root")
    if isinstance(value, str) and value and not value.startswith(("$", "@", "%")):
        return str(Path(value).resolve())
    if not isinstance(parser_or_config, Mapping) and value is not None:
        return str(Path(parser_or_config.get_parsed_content("bundle_root")).resolve())
    raise ValueError(f"bundle_root={value!r} is not a folder; pass bundle_root= to write the resolved config.")


def write_resolved_config(parser_or_config: Any, path: str | os.PathLike,
                          bundle_root: str | os.PathLike | None = None) -> Path:
    """Write the raw merged config (all files, all overrides) as one JSON that ``monai.bundle run`` runs again.

    Args:
        parser_or_config: a MONAI config parser (e.g. from :func:`~medtl_monai.bundle.load_config`, or a workflow's
            ``parser``) or the raw config dict.
        path: the JSON file to write (a run's ``config.json``); a folder (or a path not ending in ``.json``) gets
            ``config.json`` inside.
        bundle_root: the bundle folder pinned into the file; default: the config's own ``bundle_root`` (evaluated
            when it is an expression and a parser was given).

    Returns:
        The written file.

    Raises:
        ValueError: no ``bundle_root`` can be found.
    """
    config = raw_config(parser_or_config)
    root = str(Path(bundle_root).resolve()) if bundle_root is not None else _bundle_root(parser_or_config, config)
    config["bundle_root"] = root
    path = Path(path)
    if path.is_dir() or path.suffix.lower() != ".json":
        path = path / CONFIG_NAME
    return atomic_write_text(json.dumps(config, indent=4, default=str) + "\n", path)


def _drop(config: dict[str, Any], key: str) -> None:
    *parents, last = key.split("#")
    node: Any = config
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


def _without_reporting(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_reporting(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_without_reporting(v) for v in node
                if not (isinstance(v, dict) and str(v.get("_target_", "")).rsplit(".", 1)[-1] in _REPORTING_TARGETS)]
    return node


def config_hash(config: Any, ignore: tuple[str, ...] = BOOKKEEPING_KEYS) -> str:
    """SHA-256 of the settings that make the model: the raw config without :data:`BOOKKEEPING_KEYS`, as canonical
    JSON (sorted keys, no spaces).

    Args:
        config: a raw config dict, a MONAI config parser, or the path of a resolved ``config.json``.
        ignore: ids left out.

    Returns:
        The hex digest (64 characters).
    """
    if isinstance(config, (str, os.PathLike)):
        config = json.loads(Path(config).read_text())
    config = raw_config(config)
    meta = config.pop("_meta_", None)
    if isinstance(meta, Mapping) and "network_data_format" in meta:
        config["_meta_"] = {"network_data_format": meta["network_data_format"]}
    for key in ignore:
        _drop(config, key)
    text = json.dumps(_without_reporting(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as MONAI ids (``preprocessing_transforms#kind``); lists and values kept whole: how two resolved
    configs are compared setting by setting."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_config(value, name + "#"))
        else:
            out[name] = value
    return out
