"""The datalist file: a Decathlon-style JSON with ``training``, ``validation`` and ``test`` items, class names and
counts. Written by :func:`write_datalist` (image paths relative to the file, as
``monai.data.load_decathlon_datalist`` expects); read by :func:`load_split` and :func:`read_class_names`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from monai.data import load_decathlon_datalist

__all__ = ["SPLIT_KEYS", "MissingDataError", "load_split", "read_class_names", "write_datalist"]

#: Keys of the three splits in a datalist, in MONAI's naming.
SPLIT_KEYS: tuple[str, str, str] = ("training", "validation", "test")

_HINT = (
    "Make the demo data with `python scripts/make_demo_data.py --output_dir {dataset_dir}` (from the repository "
    "root), or point the bundle at your data: `--dataset_dir /path/to/data` (holding datalist.json) or "
    "`--datalist /path/to/datalist.json` (write one with scripts/make_datalist.py)."
)


class MissingDataError(FileNotFoundError):
    """The datalist (or the data folder) that a workflow needs does not exist; the message says how to make it."""


def _require(datalist: str | PathLike) -> Path:
    path = Path(datalist)
    if not path.is_file():
        raise MissingDataError(f"datalist {str(path)!r} does not exist. " + _HINT.format(dataset_dir=path.parent))
    return path


def write_datalist(
    path: str | PathLike,
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    class_names: Sequence[str],
    modality: str | None = None,
    multi_label: bool = False,
    description: str = "",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a Decathlon-style datalist JSON with image paths relative to the file's folder (``../`` allowed).

    Args:
        path: the JSON file to write (parents are created).
        splits: lists of items under ``"training"``, ``"validation"``, ``"test"`` (missing keys become empty).
        class_names: classes in index order, stored as ``class_names`` and as Decathlon ``labels``
            (``{"0": name, ...}``).
        modality: stored as Decathlon ``modality`` (``{"0": modality}``) when given, e.g. ``"CT"``.
        multi_label: stored as ``multi_label`` (labels are multi-hot lists).
        description: free text.
        extra: more top-level metadata (e.g. the split seed).

    Returns:
        the written path.

    Raises:
        ValueError: for an unknown split key.
    """
    path = Path(path)
    unknown = set(splits) - set(SPLIT_KEYS)
    if unknown:
        raise ValueError(f"unknown split keys {sorted(unknown)}; expected {SPLIT_KEYS}")
    base = path.parent.resolve()

    def rel(item: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(item)
        out["image"] = Path(os.path.relpath(Path(out["image"]).resolve(), base)).as_posix()
        return out

    doc: dict[str, Any] = {"name": path.stem, "description": description}
    if modality is not None:
        doc["modality"] = {"0": modality}
    doc["labels"] = {str(i): name for i, name in enumerate(class_names)}
    doc["class_names"] = list(class_names)
    doc["num_classes"] = len(class_names)
    doc["multi_label"] = bool(multi_label)
    for key in SPLIT_KEYS:
        doc[f"num_{key}"] = len(splits.get(key, ()))
    doc.update(dict(extra or {}))
    for key in SPLIT_KEYS:
        doc[key] = [rel(item) for item in splits.get(key, ())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def load_split(datalist: str | PathLike, split: str, limit: int | None = None) -> list[dict]:
    """Items of one split (``training``, ``validation`` or ``test``) with image paths made absolute.

    Args:
        datalist: a datalist JSON (paths relative to its folder).
        split: the key of the split.
        limit: keep at most this many items (for quick trials); ``None`` keeps all.

    Returns:
        The items.

    Raises:
        MissingDataError: the datalist does not exist (the message says how to make the demo data).
        ValueError: the split is missing or empty.
    """
    path = _require(datalist)
    doc = json.loads(path.read_text())
    if not doc.get(split):
        raise ValueError(f"datalist {str(path)!r} has no {split!r} items; its splits are "
                         f"{[k for k in SPLIT_KEYS if doc.get(k)]}.")
    items = load_decathlon_datalist(str(path), is_segmentation=False, data_list_key=split, base_dir=str(path.parent))
    return items[: int(limit)] if limit else items


def read_class_names(datalist: str | PathLike, default: Sequence[str] | None = None) -> list[str]:
    """Class names (index order) stored in a datalist: ``class_names``, else the Decathlon ``labels`` map.

    Args:
        datalist: the datalist JSON.
        default: returned when the file does not exist or names no classes; ``None`` makes those cases errors.

    Returns:
        The class names.

    Raises:
        MissingDataError: the datalist does not exist and no ``default`` is given.
        ValueError: the datalist names no classes and no ``default`` is given.
    """
    path = Path(datalist)
    if not path.is_file():
        if default is not None:
            return [str(c) for c in default]
        _require(path)
    doc = json.loads(path.read_text())
    if "class_names" in doc:
        return [str(c) for c in doc["class_names"]]
    if "labels" in doc:
        return [str(doc["labels"][k]) for k in sorted(doc["labels"], key=int)]
    if default is not None:
        return [str(c) for c in default]
    raise ValueError(f"datalist {str(path)!r} names no classes (no 'class_names' or 'labels').")
