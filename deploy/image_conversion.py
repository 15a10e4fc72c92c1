"""Turn a MONAI Deploy ``Image`` made by ``DICOMSeriesToVolumeOperator`` into the channel-first ``MetaTensor`` that
a bundle's ``LoadImaged`` would have produced (array indexed ``(column, row, slice)``, voxel-to-RAS affine).

The SDK's volume is indexed ``(slice, row, column)``. Its stored affines scale the row cosine by the spacing
*between rows* (``PixelSpacing[0]``) and the column cosine by the spacing between columns, which is only right for
square pixels; here the affine is rebuilt from the direction cosines and spacings with each spacing on its own axis,
keeping the SDK's slice step and origin (the first slice along the normal). No SDK import: plain numpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["LPS_TO_RAS", "series_affine_ras", "volume_to_channel_first"]

#: flips x and y: DICOM's patient coordinates are LPS, MONAI's are RAS.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def series_affine_ras(meta: Mapping[str, Any]) -> np.ndarray:
    """Voxel ``(column, row, slice)`` to RAS millimetre affine of a DICOM series volume.

    Args:
        meta: the ``Image`` metadata of ``DICOMSeriesToVolumeOperator`` (``row_direction_cosine``,
            ``col_direction_cosine``, ``row_pixel_spacing`` = ``PixelSpacing[0]``, ``col_pixel_spacing`` =
            ``PixelSpacing[1]``, ``dicom_affine_transform`` for the slice step and origin).

    Raises:
        KeyError: a needed entry is missing.
    """
    lps = np.array(meta["dicom_affine_transform"], dtype=np.float64).reshape(4, 4).copy()
    along_row = np.asarray(meta["row_direction_cosine"], dtype=np.float64)  # direction of increasing column index
    along_col = np.asarray(meta["col_direction_cosine"], dtype=np.float64)  # direction of increasing row index
    lps[:3, 0] = along_row * float(meta["col_pixel_spacing"])  # spacing between columns
    lps[:3, 1] = along_col * float(meta["row_pixel_spacing"])  # spacing between rows
    return LPS_TO_RAS @ lps


def volume_to_channel_first(volume: np.ndarray, meta: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The ``(slice, row, column)`` volume as a float32 ``(1, column, row, slice)`` array, with its RAS affine."""
    array = np.asarray(volume)
    if array.ndim != 3:
        raise ValueError(f"expected a 3D (slice, row, column) volume, got shape {array.shape}")
    return np.ascontiguousarray(array.transpose(2, 1, 0)[None], dtype=np.float32), series_affine_ras(meta)
