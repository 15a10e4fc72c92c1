"""Read option values the way a bundle command line delivers them.

``python -m monai.bundle run ... --progress_bar false`` passes the *string* ``"false"`` (the command line is parsed
by ``fire``, which keeps words that are not Python literals as strings), and ``bool("false")`` is ``True``. Every
switch of this package goes through :func:`as_bool`, and every command-line value through :func:`parse_value`, so
that ``false``, ``False``, ``0`` and ``no`` mean the same everywhere.
"""

from __future__ import annotations

import ast
import json
from typing import Any

__all__ = ["as_bool", "parse_value"]

_FALSE = frozenset({"false", "0", "no", "off", "none", "null", ""})
_TRUE = frozenset({"true", "1", "yes", "on"})


def as_bool(value: Any, name: str = "value") -> bool:
    """A switch from a config or command line: booleans, numbers and the words true/false, yes/no, on/off, 1/0.

    Args:
        value: the value to read.
        name: what the value is, for the error message.

    Returns:
        The boolean.

    Raises:
        ValueError: a string that is none of the accepted words.
    """
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _FALSE:
            return False
        if word in _TRUE:
            return True
        raise ValueError(f"{name}={value!r} is not a switch; use true or false.")
    return bool(value)


def parse_value(text: str) -> Any:
    """A command-line value as a config value: JSON (``false``, ``null``, ``[32,32,16]``), else a Python literal
    (``False``, ``None``, ``(1, 2)``), else the string itself.

    Args:
        text: the value as typed.

    Returns:
        The parsed value.
    """
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return text
