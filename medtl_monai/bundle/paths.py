"""Where a bundle is: the ``bundle_root`` a config resolves to, and required files with a how-to message.

A bundle config cannot see the file it was read from, so ``bundle_root`` is resolved in MONAI's own ways, in order:

1. an explicit ``bundle_root`` override (``--bundle_root`` on the command line, or the key set by a caller): what
   MONAI Label, MONAI Deploy and the model zoo's CI pass, and what every caller inside this package passes
   (:func:`~medtl_monai.bundle.load_config`, :class:`~medtl_monai.bundle.BundleModel`); the config's own
   ``bundle_root`` expression is then never evaluated;
2. the folder of ``--config_file`` (or ``--meta_file``) on the ``python -m monai.bundle`` command line, so that
   ``python -m monai.bundle run --config_file bundles/bimcv_truncated/configs/train.json`` writes into the bundle
   folder wherever it is run from;
3. the current directory, when it holds ``configs/metadata.json`` (the model zoo's habit of running inside the
   bundle folder).
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..data import MissingDataError

__all__ = ["bundle_dir_of", "bundle_root", "require_file"]


def bundle_dir_of(config_path: str | os.PathLike) -> Path:
    """The bundle folder of a config file: the parent of its ``configs/`` folder (or its own folder)."""
    folder = Path(config_path).resolve().parent
    return folder.parent if folder.name == "configs" else folder


def _from_command_line(argv: Sequence[str]) -> Path | None:
    """The bundle of ``--config_file`` / ``--meta_file`` on a ``python -m monai.bundle`` command line."""
    for flag in ("--config_file", "--meta_file"):
        for i, arg in enumerate(argv):
            value = argv[i + 1] if arg == flag and i + 1 < len(argv) else None
            if arg.startswith(flag + "="):
                value = arg.split("=", 1)[1]
            if value is None:
                continue
            if value.strip().startswith("["):
                try:
                    value = ast.literal_eval(value)[0]
                except (ValueError, SyntaxError, IndexError):
                    continue
            if Path(value).exists():
                return bundle_dir_of(value)
    return None


def bundle_root(default: str | os.PathLike | None = None) -> str:
    """The bundle folder of the config being run, when no ``bundle_root`` override was given (see the module notes).

    Args:
        default: folder used when the command line names no config.

    Returns:
        An absolute path.

    Raises:
        ValueError: when nothing identifies the bundle; the message says to pass ``--bundle_root``.
    """
    found = _from_command_line(sys.argv)
    if found is not None:
        return str(found)
    if default is not None:
        return str(Path(default).resolve())
    if (Path.cwd() / "configs" / "metadata.json").is_file():
        return str(Path.cwd())
    raise ValueError("cannot tell which bundle this config belongs to; pass --bundle_root /path/to/bundle.")


def require_file(path: str | os.PathLike, hint: str = "") -> str:
    """Return ``path`` if it is a file, else raise an error that names it (and what to do).

    Raises:
        MissingDataError: the file does not exist.
    """
    if not Path(path).is_file():
        raise MissingDataError(f"{str(path)!r} does not exist" + (f": {hint}." if hint else "."))
    return str(path)
