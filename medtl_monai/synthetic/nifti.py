"""Write NIfTI volumes and radiographs with RAS affines, and their BIDS JSON sidecars.

Arrays come from :mod:`.phantom`: CT as ``[z, y, x]`` on an LPS grid (``x`` towards the patient's left, ``y``
posterior, ``z`` superior), radiographs as ``[row, column]`` with row 0 superior and column 0 at the patient's right.
NIfTI files store them ``[x, y, z]`` / ``[column, row]`` with qform and sform set to the same RAS affine, which is what
MONAI's ``NibabelReader`` and ITK read back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

__all__ = ["ct_nifti_affine", "write_bids_sidecar", "write_ct_nifti", "write_xray_nifti", "xray_nifti_affine"]


def ct_nifti_affine(spacing: Sequence[float], origin: Sequence[float]) -> np.ndarray:
    """NIfTI (RAS) affine of a CT volume stored ``[x, y, z]`` on an axial LPS grid.

    Args:
        spacing: ``(dz, dy, dx)`` in mm.
        origin: LPS position ``(x, y, z)`` of voxel ``[0, 0, 0]`` (the DICOM ImagePositionPatient of the first
            slice).

    Returns:
        the 4x4 affine (L->R and P->A flipped to RAS: columns ``(-dx, 0, 0)``, ``(0, -dy, 0)``, ``(0, 0, dz)``).
    """
    dz, dy, dx = spacing
    affine = np.diag([-dx, -dy, dz, 1.0])
    affine[:3, 3] = (-origin[0], -origin[1], origin[2])
    return affine


def xray_nifti_affine(pixel_spacing: float, shape: Sequence[int]) -> np.ndarray:
    """NIfTI (RAS) affine of a radiograph stored ``[column, row]`` (columns towards the patient's left, rows down).

    Args:
        pixel_spacing: pixel size in mm (square pixels).
        shape: ``(rows, columns)`` of the image.

    Returns:
        the 4x4 affine; the image lies in a coronal plane centred on the origin.
    """
    rows, cols = shape
    s = pixel_spacing
    return np.array([[-s, 0, 0, (cols - 1) / 2 * s], [0, 0, 1.0, 0], [0, -s, 0, (rows - 1) / 2 * s], [0, 0, 0, 1]])


def _save_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def write_ct_nifti(path: str | PathLike, hu: np.ndarray, *, spacing: Sequence[float],
                   origin: Sequence[float]) -> Path:
    """Write a CT volume ``[z, y, x]`` in HU as an int16 NIfTI stored ``[x, y, z]`` with an RAS affine.

    Args:
        path: the ``.nii.gz`` file (its folder is created if needed).
        hu: HU volume indexed ``[z, y, x]`` (integer values in the int16 range).
        spacing: ``(dz, dy, dx)`` in mm.
        origin: LPS position of the first voxel.

    Returns:
        the path.
    """
    data = np.ascontiguousarray(hu.transpose(2, 1, 0)).astype(np.int16)
    return _save_nifti(Path(path), data, ct_nifti_affine(spacing, origin))


def write_xray_nifti(path: str | PathLike, image: np.ndarray, *, pixel_spacing: float) -> Path:
    """Write a radiograph ``[row, column]`` (MONOCHROME2 values) as an int16 2D NIfTI stored ``[column, row]``.

    Args:
        path: the ``.nii.gz`` file (its folder is created if needed).
        image: image with integer values, row 0 superior, column 0 at the patient's right.
        pixel_spacing: pixel size in mm.

    Returns:
        the path.
    """
    data = np.ascontiguousarray(image.T).astype(np.int16)
    return _save_nifti(Path(path), data, xray_nifti_affine(pixel_spacing, image.shape))


def write_bids_sidecar(path: str | PathLike, fields: Mapping[str, Any]) -> Path:
    """Write a BIDS JSON sidecar (sorted keys, two-space indent).

    Args:
        path: the ``.json`` file (its folder is created if needed).
        fields: the content (JSON-serialisable).

    Returns:
        the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(fields), indent=2, sort_keys=True) + "\n")
    return path
