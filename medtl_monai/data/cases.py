"""Find the cases of a folder for inference: DICOM series, DICOM files, NIfTI volumes and pictures."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .datalist import MissingDataError

__all__ = ["INPUT_KINDS", "default_input_kinds", "folder_cases"]

#: What :func:`folder_cases` can collect: a folder of several DICOM files (``series``), a ``.nii``/``.nii.gz`` file
#: (``nifti``), a ``.dcm`` file alone in its folder (``file``, e.g. a radiograph), a PNG/JPEG/BMP file (``picture``).
INPUT_KINDS: tuple[str, ...] = ("series", "nifti", "file", "picture")

_NIFTI = (".nii", ".nii.gz")
_PICTURES = (".png", ".jpg", ".jpeg", ".bmp")


def default_input_kinds(spatial_dims: int) -> tuple[str, ...]:
    """The kinds of case a network of ``spatial_dims`` reads: volumes for 3D, images for 2D.

    Args:
        spatial_dims: 2 or 3.

    Returns:
        ``("series", "nifti")`` for 3D, ``("file", "nifti", "picture")`` for 2D.
    """
    return ("series", "nifti") if int(spatial_dims) == 3 else ("file", "nifti", "picture")


def folder_cases(input_dir: str | os.PathLike, kinds: Sequence[str] = ("series", "nifti", "file")) -> list[dict]:
    """One inference item per case found in a folder (searched recursively; see :data:`INPUT_KINDS`).

    Args:
        input_dir: the folder to scan.
        kinds: which kinds of case to collect (a CT model wants series and NIfTI, an X-ray model files).

    Returns:
        Items ``{"id": path relative to input_dir, "image": absolute path}``, sorted by id.

    Raises:
        MissingDataError: the folder does not exist.
        ValueError: an unknown kind, or no case found.
    """
    unknown = sorted(set(kinds) - set(INPUT_KINDS))
    if unknown:
        raise ValueError(f"unknown input kinds {unknown}; choose from {list(INPUT_KINDS)}.")
    root = Path(input_dir)
    if not root.is_dir():
        raise MissingDataError(f"input folder {str(root)!r} does not exist.")
    items: list[dict] = []

    def add(path: Path) -> None:
        items.append({"id": path.relative_to(root).as_posix() or path.name, "image": str(path)})

    for folder, _dirs, files in os.walk(root, followlinks=True):
        here = Path(folder)
        dicoms = [f for f in files if f.lower().endswith(".dcm") or ("." not in f and not f.startswith("."))]
        for name in sorted(files):
            lower = name.lower()
            if ("nifti" in kinds and lower.endswith(_NIFTI)) or ("picture" in kinds and lower.endswith(_PICTURES)):
                add(here / name)
        if "series" in kinds and len(dicoms) > 1:
            add(here)
        elif "file" in kinds and len(dicoms) == 1 and dicoms[0].lower().endswith(".dcm"):
            add(here / dicoms[0])
    if not items:
        raise ValueError(f"input folder {str(root)!r} holds no case of the kinds {list(kinds)} "
                         "(DICOM series, NIfTI files, DICOM files, pictures).")
    return sorted(items, key=lambda item: item["id"])
