"""Turn a MONAI Label datastore's classification labels into a bundle datalist (``training``/``validation``).

MONAI Label stores labels as files with a tag (``final`` for approved ones) and an info dictionary. A class is
read, for each image with a ``final`` label, from the first of:

1. the label info's ``"label"`` (or ``"class"``) entry, sent as ``params`` when the label is saved
   (``PUT /datastore/label?image=ID&tag=final`` with ``params={"label": "positive"}``);
2. the label file itself when it is ``.txt`` (the class name or index) or ``.json`` (``{"label": ...}``);
3. the image info's ``"label"`` (or ``"class"``) entry (``PUT /datastore/updateimageinfo``).

A class is a name from the bundle's ``channel_def`` (case-insensitive) or its index. Plain Python: imports
nothing from MONAI Label, so it is testable anywhere.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = ["ClassificationLabelError", "class_index", "classification_items", "split_items"]

_KEYS = ("label", "class")


class ClassificationLabelError(ValueError):
    """A datastore label that does not name one of the bundle's classes."""


class _Datastore(Protocol):  # the part of monailabel.interfaces.datastore.Datastore used here
    def get_labeled_images(self) -> list[str]: ...
    def get_image_uri(self, image_id: str) -> str: ...
    def get_image_info(self, image_id: str) -> dict[str, Any]: ...
    def get_label_uri(self, label_id: str, label_tag: str) -> str: ...
    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]: ...


def class_index(value: Any, class_names: Sequence[str]) -> int:
    """Index of ``value`` (a class name, case-insensitive, or an index as int or digit string).

    Raises:
        ClassificationLabelError: not a class of ``class_names``.
    """
    lowered = [c.lower() for c in class_names]
    text = str(value).strip()
    if text.lower() in lowered:
        return lowered.index(text.lower())
    if text.lstrip("-").isdigit() and 0 <= int(text) < len(class_names):
        return int(text)
    raise ClassificationLabelError(f"{value!r} is not one of the classes {list(class_names)} (or their indices).")


def _from_mapping(info: Mapping[str, Any] | None) -> Any:
    for key in _KEYS:
        if info and info.get(key) not in (None, ""):
            return info[key]
    return None


def _from_file(path: str) -> Any:
    p = Path(path) if path else None
    if p is None or not p.is_file():
        return None
    if p.suffix.lower() == ".txt":
        return p.read_text().strip() or None
    if p.suffix.lower() == ".json":
        doc = json.loads(p.read_text())
        return _from_mapping(doc) if isinstance(doc, Mapping) else doc
    return None


def classification_items(datastore: _Datastore, class_names: Sequence[str], tag: str = "final") -> list[dict[str, Any]]:
    """One datalist item ``{"id", "image", "label"}`` per image of the datastore with a ``tag`` label naming a class.

    Images whose label names no class (e.g. a segmentation mask) are skipped.

    Raises:
        ClassificationLabelError: a label names something that is not a class (the message names the image).
    """
    items = []
    for image_id in sorted(datastore.get_labeled_images()):
        value = _from_mapping(datastore.get_label_info(image_id, tag))
        if value is None:
            value = _from_file(datastore.get_label_uri(image_id, tag))
        if value is None:
            value = _from_mapping(datastore.get_image_info(image_id))
        if value is None:
            continue
        try:
            index = class_index(value, class_names)
        except ClassificationLabelError as err:
            raise ClassificationLabelError(f"image {image_id!r}: {err}") from None
        items.append({"id": image_id, "image": datastore.get_image_uri(image_id), "label": index})
    return items


def split_items(items: Sequence[dict[str, Any]], val_fraction: float = 0.2, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Shuffle (seeded) and split into ``training`` and ``validation``, each class spread over both where possible.

    Raises:
        ValueError: fewer than two items (both splits must be non-empty).
    """
    if len(items) < 2:
        raise ValueError(f"need at least 2 labelled images to train (one for validation), found {len(items)}.")
    rng = random.Random(seed)
    by_class: dict[int, list[dict[str, Any]]] = {}
    for item in items:
        by_class.setdefault(int(item["label"]), []).append(dict(item))
    training, validation = [], []
    for label in sorted(by_class):
        group = by_class[label]
        rng.shuffle(group)
        n_val = round(len(group) * val_fraction) if len(group) > 1 else 0
        validation += group[:n_val]
        training += group[n_val:]
    if not validation:
        validation.append(training.pop())
    if not training:
        training.append(validation.pop())
    return {"training": training, "validation": validation}
