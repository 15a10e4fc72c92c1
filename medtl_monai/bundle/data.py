"""Read a split of a datalist for a bundle, with a clear message when the data is not there."""

from __future__ import annotations

import json
import os
from pathlib import Path

from monai.data import load_decathlon_datalist

__all__ = ["MissingDataError", "load_split", "class_names", "folder_cases", "require_file"]

_HINT = (
    "Make the demo data with `python scripts/make_demo_data.py --out {dataset_dir}` (from the repository root), "
    "or point the bundle at your data: `--dataset_dir /path/to/data` (holding datalist.json) or "
    "`--datalist /path/to/datalist.json` (write one with scripts/make_datalist.py)."
)


class MissingDataError(FileNotFoundError):
    """The datalist (or the data folder) a bundle needs does not exist."""


def _require(datalist: str | os.PathLike) -> Path:
    path = Path(datalist)
    if not path.is_file():
        raise MissingDataError(f"datalist {str(path)!r} does not exist. " + _HINT.format(dataset_dir=path.parent))
    return path


def load_split(datalist: str | os.PathLike, split: str, limit: int | None = None) -> list[dict]:
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
                         f"{[k for k in ('training', 'validation', 'test') if doc.get(k)]}.")
    items = load_decathlon_datalist(str(path), is_segmentation=False, data_list_key=split, base_dir=str(path.parent))
    return items[: int(limit)] if limit else items


def class_names(datalist: str | os.PathLike, default: list[str] | None = None) -> list[str]:
    """Class names stored in a datalist (``class_names`` or Decathlon ``labels``); ``default`` when absent.

    Raises:
        MissingDataError: the datalist does not exist and no ``default`` is given.
    """
    path = Path(datalist)
    if not path.is_file():
        if default is not None:
            return list(default)
        _require(path)
    doc = json.loads(path.read_text())
    if "class_names" in doc:
        return [str(c) for c in doc["class_names"]]
    if "labels" in doc:
        return [str(doc["labels"][k]) for k in sorted(doc["labels"], key=int)]
    if default is not None:
        return list(default)
    raise ValueError(f"datalist {str(path)!r} names no classes (no 'class_names' or 'labels').")


_NIFTI = (".nii", ".nii.gz")


def folder_cases(input_dir: str | os.PathLike, kinds: tuple[str, ...] | list[str] = ("series", "nifti", "file")) -> list[dict]:
    """One inference item per case found in a folder: each ``.nii``/``.nii.gz`` file (``"nifti"``), each ``.dcm``
    file alone in its folder (``"file"``, e.g. an X-ray), and each folder holding several DICOM files (``"series"``).

    Args:
        input_dir: the folder to scan (recursively).
        kinds: which of ``"series"``, ``"nifti"``, ``"file"`` to collect (a CT bundle wants series and NIfTI).

    Returns:
        Items ``{"id": relative path, "image": absolute path}``, sorted by id.

    Raises:
        MissingDataError: the folder does not exist.
        ValueError: no case found.
    """
    root = Path(input_dir)
    if not root.is_dir():
        raise MissingDataError(f"input folder {str(root)!r} does not exist.")
    items: list[dict] = []
    for folder, _dirs, files in os.walk(root, followlinks=True):
        folder_path = Path(folder)
        dicoms = [f for f in files if f.lower().endswith(".dcm") or (("." not in f) and not f.startswith("."))]
        for name in files:
            if "nifti" in kinds and name.lower().endswith(_NIFTI):
                items.append({"id": (folder_path / name).relative_to(root).as_posix(), "image": str(folder_path / name)})
        if "series" in kinds and len(dicoms) > 1:
            items.append({"id": folder_path.relative_to(root).as_posix() or folder_path.name, "image": str(folder_path)})
        elif "file" in kinds and len(dicoms) == 1 and dicoms[0].lower().endswith(".dcm"):
            items.append({"id": (folder_path / dicoms[0]).relative_to(root).as_posix(), "image": str(folder_path / dicoms[0])})
    if not items:
        raise ValueError(f"input folder {str(root)!r} holds no case of the kinds {list(kinds)} (NIfTI files, DICOM series, DICOM files).")
    return sorted(items, key=lambda item: item["id"])


def require_file(path: str | os.PathLike, hint: str = "") -> str:
    """Return ``path`` if it is a file, else raise an error that names it (and what to do).

    Raises:
        MissingDataError: the file does not exist.
    """
    if not Path(path).is_file():
        raise MissingDataError(f"{str(path)!r} does not exist" + (f": {hint}." if hint else "."))
    return str(path)
