"""Open a bundle's configs: the one place in the package that parses them.

:func:`config_paths` turns config names into files of a bundle, :func:`load_config` gives a parsed
``ConfigParser`` (metadata read, ``bundle_root`` set, overrides applied), :func:`run_workflow` runs a workflow
in-process exactly as ``python -m monai.bundle run`` would, and :func:`metadata_class_names` reads the class names
the metadata declares. Everything that reads a bundle (the model card, :class:`~medtl_monai.bundle.BundleModel`, the
error report, the study, the cut search, the applications) goes through here.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser, ConfigWorkflow

from ..data import MissingDataError
from .paths import bundle_dir_of

__all__ = ["config_paths", "load_config", "metadata_class_names", "run_workflow"]

logger = logging.getLogger("medtl_monai.bundle")


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


def run_workflow(
    bundle: str | os.PathLike | None,
    config_files: str | os.PathLike | Sequence[str | os.PathLike],
    overrides: Mapping[str, Any] | None = None,
    workflow_type: str | None = None,
    logging_file: bool = False,
) -> ConfigWorkflow:
    """Run a bundle workflow in this process (initialize, run, finalize), as ``python -m monai.bundle run`` does.

    Args:
        bundle: the bundle folder (``None``: the folder of the first config).
        config_files: the configs (see :func:`config_paths`), e.g. ``["train.json", "evaluate.json"]``.
        overrides: config keys to set.
        workflow_type: MONAI's workflow type (``"train"``, ``"eval"``, ``"infer"``), for its property checks.
        logging_file: apply the bundle's ``logging.conf`` (it reconfigures the root logger).

    Returns:
        The finished workflow (its ``parser`` holds the resolved values).
    """
    root, paths = config_paths(bundle, config_files)
    meta = root / "configs" / "metadata.json"
    logging_conf = root / "configs" / "logging.conf"
    workflow = ConfigWorkflow(
        config_file=[str(p) for p in paths], meta_file=str(meta) if meta.is_file() else None,
        logging_file=str(logging_conf) if logging_file and logging_conf.is_file() else False,
        workflow_type=workflow_type, **{"bundle_root": str(root), **dict(overrides or {})},
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow


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
