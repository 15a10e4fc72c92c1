"""Locate the bundle folder a config was loaded from, so that outputs go there and not into the current directory."""

from __future__ import annotations

import ast
import inspect
import os
import sys
from pathlib import Path

__all__ = ["find_bundle_root"]


def _root_of(config_path: str | os.PathLike) -> Path:
    folder = Path(config_path).resolve().parent
    return folder.parent if folder.name == "configs" else folder


def _from_workflow() -> Path | None:
    """The ``config_root_path`` of a MONAI ``ConfigWorkflow`` on the call stack (``monai.bundle run`` and the API)."""
    from monai.bundle import ConfigWorkflow

    frame = inspect.currentframe()
    try:
        while frame is not None:
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, ConfigWorkflow):
                return _root_of(Path(candidate.config_root_path) / "x.json")
            frame = frame.f_back
    finally:
        del frame
    return None


def _from_argv(argv: list[str]) -> Path | None:
    """The folder of ``--config_file`` / ``--meta_file`` on a ``python -m monai.bundle ...`` command line."""
    for flag in ("--config_file", "--meta_file"):
        for i, arg in enumerate(argv):
            value = None
            if arg == flag and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(flag + "="):
                value = arg.split("=", 1)[1]
            if value is None:
                continue
            if value.strip().startswith("["):
                try:
                    value = ast.literal_eval(value)[0]
                except (ValueError, SyntaxError, IndexError):
                    continue
            if Path(value).exists():
                return _root_of(value)
    return None


def find_bundle_root(default: str | os.PathLike | None = None) -> str:
    """Return the bundle folder (the parent of ``configs/``) of the config being run.

    Looked up, in order: the ``ConfigWorkflow`` that is parsing the config (``python -m monai.bundle run`` and
    ``monai.bundle.ConfigWorkflow``); ``--config_file`` / ``--meta_file`` on the command line (``verify_net_in_out``,
    ``ckpt_export``); ``default``; the current directory when it holds ``configs/metadata.json`` (the model zoo's
    habit of running from inside the bundle). An explicit ``--bundle_root`` override bypasses all of this.

    Args:
        default: fallback folder.

    Returns:
        An absolute path.

    Raises:
        ValueError: when nothing identifies the bundle; pass ``--bundle_root``.
    """
    for found in (_from_workflow(), _from_argv(sys.argv)):
        if found is not None:
            return str(found)
    if default is not None:
        return str(Path(default).resolve())
    if (Path.cwd() / "configs" / "metadata.json").is_file():
        return str(Path.cwd())
    raise ValueError("cannot tell which bundle this config belongs to; pass --bundle_root /path/to/bundle.")
