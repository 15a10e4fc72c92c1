"""Open a bundle's configs: the one place in the package that parses them.

:func:`config_paths` turns config names into files of a bundle, :func:`load_config` gives a parsed
``ConfigParser`` (metadata read, ``bundle_root`` set, overrides applied), :func:`run_workflow` runs a workflow
in-process exactly as ``python -m monai.bundle run`` would, and :func:`metadata_class_names` reads the class names
the metadata declares. Everything that reads a bundle (the model card, :class:`~medtl_monai.bundle.BundleModel`, the
error report, the study, the cut search, the applications) goes through here.
"""

from __future__ import annotations

import ast
import contextvars
import copy
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser, ConfigWorkflow
from monai.bundle.utils import DEFAULT_EXP_MGMT_SETTINGS

from ..data import MissingDataError
from .paths import bundle_dir_of

__all__ = ["config_paths", "load_config", "metadata_class_names", "run_workflow", "running_config"]

logger = logging.getLogger("medtl_monai.bundle")

#: the parser of the workflow :func:`run_workflow` is running in this context (``None`` outside one)
_RUNNING_PARSER: contextvars.ContextVar[ConfigParser | None] = contextvars.ContextVar("medtl_running_parser",
                                                                                       default=None)
#: ``python -m monai.bundle run`` arguments that are not config overrides
_RUN_ARGUMENTS = ("config_file", "meta_file", "logging_file", "tracking", "run_id", "init_id", "final_id", "args_file")


def config_paths(bundle: str | os.PathLike | None, config_files: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[Path, list[Path]]:
    """The bundle folder and the config files to read, checked to exist.

    Args:
        bundle: the bundle folder; ``None`` takes the folder of the first config file.
        config_files: one or more configs, each a path or a name inside ``<bundle>/configs`` (``"xray.json"``) or
            ``<bundle>`` (``"configs/xray.json"``).

    Returns:
        ``(bundle folder, config paths)``.

    Raises:
        MissingDataError: a config file (or the bundle) does not exist.
    """
    names = [config_files] if isinstance(config_files, (str, os.PathLike)) else list(config_files)
    if not names:
        raise ValueError("give at least one config file.")
    root = Path(bundle).resolve() if bundle is not None else bundle_dir_of(names[0])
    paths = []
    for name in names:
        path = Path(name)
        for candidate in (path, root / path, root / "configs" / path):
            if candidate.is_file():
                paths.append(candidate.resolve())
                break
        else:
            raise MissingDataError(f"bundle config {str(name)!r} does not exist (looked in {str(root)!r} and its "
                                   "configs/ folder): is this a bundle folder?")
    return root, paths


def load_config(
    bundle: str | os.PathLike | None,
    config_files: str | os.PathLike | Sequence[str | os.PathLike] = "train.json",
    overrides: Mapping[str, Any] | None = None,
) -> ConfigParser:
    """Read a bundle's configs (and its metadata) into a ``ConfigParser`` with ``bundle_root`` set, overrides applied.

    Args:
        bundle: the bundle folder (``None``: the folder of the first config).
        config_files: configs read in order, later ones overriding earlier ones (see :func:`config_paths`).
        overrides: config keys to set, as on the ``monai.bundle`` command line (``{"image_size": [32, 32, 16]}``).

    Returns:
        The parser, ready for ``get_parsed_content``.

    Raises:
        MissingDataError: a config does not exist.
    """
    root, paths = config_paths(bundle, config_files)
    parser = ConfigParser()
    meta = root / "configs" / "metadata.json"
    if meta.is_file():
        parser.read_meta(str(meta))
    parser.read_config([str(p) for p in paths])
    parser.update({"bundle_root": str(root), **dict(overrides or {})})
    return parser


def _tracking_settings(tracking: str | Mapping[str, Any] | None) -> str | dict[str, Any] | None:
    """A private copy of MONAI's settings for a named tracker (``"mlflow"``): MONAI patches the bundle with the
    settings' own dicts, which workflows run one after another in this process must not share."""
    if isinstance(tracking, str) and tracking in DEFAULT_EXP_MGMT_SETTINGS:
        return copy.deepcopy(DEFAULT_EXP_MGMT_SETTINGS[tracking])
    return copy.deepcopy(dict(tracking)) if isinstance(tracking, Mapping) else tracking


def run_workflow(
    bundle: str | os.PathLike | None,
    config_files: str | os.PathLike | Sequence[str | os.PathLike],
    overrides: Mapping[str, Any] | None = None,
    workflow_type: str | None = None,
    logging_file: bool = False,
    tracking: str | Mapping[str, Any] | None = None,
) -> ConfigWorkflow:
    """Run a bundle workflow in this process (initialize, run, finalize), as ``python -m monai.bundle run`` does.

    Args:
        bundle: the bundle folder (``None``: the folder of the first config).
        config_files: the configs (see :func:`config_paths`), e.g. ``["train.json", "evaluate.json"]``.
        overrides: config keys to set.
        workflow_type: MONAI's workflow type (``"train"``, ``"eval"``, ``"infer"``), for its property checks.
        logging_file: apply the bundle's ``logging.conf`` (it reconfigures the root logger).
        tracking: experiment tracking, as ``--tracking`` of ``monai.bundle run``: ``"mlflow"`` (MONAI's MLflow
            handlers with the bundle's ``tracking_uri``, ``experiment_name`` and ``run_name``; needs the ``mlflow``
            package), a settings file, a settings dict, or ``None`` (no tracking).

    Returns:
        The finished workflow (its ``parser`` holds the resolved values).
    """
    root, paths = config_paths(bundle, config_files)
    meta = root / "configs" / "metadata.json"
    logging_conf = root / "configs" / "logging.conf"
    workflow = ConfigWorkflow(
        config_file=[str(p) for p in paths], meta_file=str(meta) if meta.is_file() else None,
        logging_file=str(logging_conf) if logging_file and logging_conf.is_file() else False,
        workflow_type=workflow_type, tracking=_tracking_settings(tracking),
        **{"bundle_root": str(root), **dict(overrides or {})},
    )
    token = _RUNNING_PARSER.set(workflow.parser)
    try:
        workflow.initialize()
        workflow.run()
        workflow.finalize()
    finally:
        _RUNNING_PARSER.reset(token)
    return workflow


def running_parser_id() -> int:
    """An identity of the workflow being run (0 for a ``python -m monai.bundle run`` process: one run each)."""
    parser = _RUNNING_PARSER.get()
    return 0 if parser is None else id(parser)


def _parse_cli_value(text: str) -> Any:
    """A command-line value as ``monai.bundle run`` (Python Fire) reads it: a literal when it is one, else the text."""
    try:
        from fire.parser import DefaultParseValue  # what monai.bundle's command line uses

        return DefaultParseValue(text)
    except ImportError:  # pragma: no cover - fire is a MONAI bundle dependency
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text


def _command_line_run(argv: Sequence[str]) -> tuple[list[str], str | None, dict[str, Any]] | None:
    """``(config files, meta file, overrides)`` of a ``python -m monai.bundle run ...`` command line, else ``None``."""
    args = list(argv)
    if "run" not in args[1:3]:
        return None
    values: dict[str, Any] = {}
    rest = args[args.index("run", 1) + 1:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg.startswith("--"):
            if "=" in arg:
                key, text = arg[2:].split("=", 1)
                i += 1
            elif i + 1 < len(rest) and not rest[i + 1].startswith("--"):
                key, text = arg[2:], rest[i + 1]
                i += 2
            else:
                key, text = arg[2:], "True"
                i += 1
            values[key.replace("-", "_") if key.replace("-", "_") in _RUN_ARGUMENTS else key] = _parse_cli_value(text)
        else:
            i += 1
    files = values.pop("config_file", None)
    if files is None:
        return None
    meta = values.pop("meta_file", None)
    for key in _RUN_ARGUMENTS:
        values.pop(key, None)
    return [str(f) for f in (files if isinstance(files, (list, tuple)) else [files])], meta, values


def running_config(bundle_root: str | os.PathLike | None = None, argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """The raw merged config of the workflow being run: every config file read, every override applied, not evaluated.

    In a workflow started by :func:`run_workflow` it is that workflow's parser; in a ``python -m monai.bundle run``
    process (also under ``torchrun``) the command line is read again the way MONAI reads it. A bundle config cannot
    see its own parser, so this is how a run records the config that made it.

    Args:
        bundle_root: the bundle folder (``bundle_root`` is pinned to it).
        argv: the command line (default ``sys.argv``).

    Returns:
        The config dict (with ``_meta_``), or ``None`` when neither applies (e.g. an application building a parser
        of its own).
    """
    parser = _RUNNING_PARSER.get()
    if parser is None:
        found = _command_line_run(sys.argv if argv is None else argv)
        if found is None:
            return None
        files, meta, overrides = found
        parser = ConfigParser()
        meta_files = meta if meta is not None else None
        if meta_files is None and bundle_root is not None:
            default_meta = Path(bundle_root) / "configs" / "metadata.json"
            meta_files = str(default_meta) if default_meta.is_file() else None
        if meta_files is not None:
            parser.read_meta(meta_files)
        parser.read_config(files)
        parser.update(overrides)
    config = json.loads(json.dumps(parser.get(), default=str))
    if bundle_root is not None:
        config["bundle_root"] = str(Path(bundle_root).resolve())
    return config


def metadata_class_names(meta: Mapping[str, Any] | str | os.PathLike, output_key: str = "pred") -> list[str]:
    """Class names in index order from a bundle's metadata (``network_data_format.outputs.<key>.channel_def``).

    Args:
        meta: the metadata dict, or the path of ``metadata.json`` or of the bundle folder.
        output_key: the output whose channels name the classes.

    Returns:
        The class names.

    Raises:
        ValueError: the metadata has no ``channel_def`` for that output, or its keys are not 0..N-1.
    """
    if not isinstance(meta, Mapping):
        path = Path(meta)
        path = path / "configs" / "metadata.json" if path.is_dir() else path
        meta = json.loads(path.read_text())
    channel_def = meta.get("network_data_format", {}).get("outputs", {}).get(output_key, {}).get("channel_def")
    if not channel_def:
        raise ValueError(f"the bundle metadata has no network_data_format.outputs.{output_key}.channel_def naming the classes.")
    keys = sorted(channel_def, key=int)
    if [int(k) for k in keys] != list(range(len(keys))):
        raise ValueError(f"channel_def keys must be 0..{len(keys) - 1}, got {keys}.")
    return [str(channel_def[k]) for k in keys]
