"""Command-line pieces shared by the scripts: config lists and config overrides, read as ``monai.bundle`` reads them.

Every script that works on a bundle takes ``--config_file`` (one file, or a list ``"['train.json','xray.json']"``)
and passes any ``--key value`` pair it does not know itself to the bundle as a config override, so that
``--dataset_dir``, ``--image_size "[32,32,16]"`` or ``--max_epochs 2`` mean the same in a script as in
``python -m monai.bundle run``.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Sequence
from typing import Any

from ..utils import parse_value

__all__ = ["add_config_argument", "parse_args_and_overrides", "parse_config_files", "parse_overrides"]


def parse_config_files(text: str | Sequence[str]) -> list[str]:
    """One config file, or a Python/JSON list of them as ``monai.bundle`` takes it (``"['a.json','b.json']"``).

    Raises:
        ValueError: a list that cannot be read.
    """
    if not isinstance(text, str):
        return [str(t) for t in text]
    text = text.strip()
    if not text.startswith("["):
        return [text]
    try:
        files = ast.literal_eval(text)
    except (ValueError, SyntaxError) as err:
        raise ValueError(f"--config_file {text!r} is not a list of files: {err}") from err
    return [str(f) for f in files]


def parse_overrides(extra: Sequence[str]) -> dict[str, Any]:
    """``["--key", "value", "--other=value", ...]`` as config overrides, values parsed with
    :func:`~medtl_monai.utils.parse_value` (``false``, ``null``, ``[32,32,16]`` are JSON).

    Raises:
        ValueError: anything that is not ``--key value`` pairs.
    """
    out: dict[str, Any] = {}
    items = list(extra)
    i = 0
    while i < len(items):
        key = items[i]
        if not key.startswith("--") or len(key) < 3:
            raise ValueError(f"config overrides must be --key value pairs, got {key!r} in {items}")
        if "=" in key:
            name, value = key[2:].split("=", 1)
            i += 1
        elif i + 1 < len(items):
            name, value = key[2:], items[i + 1]
            i += 2
        else:
            raise ValueError(f"config override {key} has no value")
        out[name] = parse_value(value)
    return out


def add_config_argument(parser: argparse.ArgumentParser, required: bool = True, default: str | None = None) -> None:
    """Add ``--config_file`` (one bundle config or a list of them, as for ``monai.bundle run``)."""
    parser.add_argument("--config_file", required=required, default=default,
                        help="the bundle's config, or a list \"['train.json','xray.json']\" (later files override)")


def parse_args_and_overrides(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Parse a script's own options; every other ``--key value`` pair becomes a config override.

    Returns:
        ``(the script's options, the overrides)``; a malformed override exits with the parser's usage message.
    """
    args, extra = parser.parse_known_args(argv)
    try:
        return args, parse_overrides(extra)
    except ValueError as err:
        parser.error(str(err))
