"""Read a single-frame DICOM image (CR/DX radiograph, or one slice) as a 2D image (a MONAI image reader)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_voi_lut

from ._dicom import (
    DEFAULT_META_KEYWORDS,
    apply_modality,
    decode_frames,
    float_values,
    meta_from_dataset,
    monochrome1_bounds,
    read_header,
)
from ._reader_base import DeferredReader, as_paths
from .dicom_series import DICOM_SUFFIXES
from .errors import BadCaseError

__all__ = ["QUANTITATIVE_MODALITIES", "DicomXrayReader"]

#: Modalities whose rescaled values carry physical meaning (HU, SUV...): no VOI window by default.
QUANTITATIVE_MODALITIES = frozenset({"CT", "MR", "PT", "NM", "RTDOSE", "SEG"})

_SPACING_KEYWORDS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")


class DicomXrayReader(DeferredReader):
    """Read a single-frame DICOM image, typically a CR/DX radiograph, as a 2D array in display convention.

    The DICOM grey-scale pipeline is applied with pydicom: the modality LUT/rescale (``apply_modality_lut``), then
    the VOI LUT or window (``apply_voi_lut``), then MONOCHROME1 data is inverted to MONOCHROME2 as
    ``low + high - value``, where ``[low, high]`` is the range the preceding steps give the storable values. With
    no VOI this equals ITK/GDCM's inversion of the stored values. Colour images are returned as RGB.

    The array is indexed ``(column, row)`` (``(column, row, sample)`` for colour), as MONAI's ITK and PIL readers
    do; the 3x3 affine carries the pixel spacing from PixelSpacing, else ImagerPixelSpacing, else
    NominalScannedPixelSpacing (the one used is recorded in ``meta["spacing_source"]``; 1 mm when none is given),
    with ITK's identity direction converted to RAS (``diag(-sx, -sy, 1)``).

    Args:
        apply_voi: apply the VOI LUT/window; None applies it except for quantitative modalities (CT, MR, PT, NM).
        voi_index: which of several windows / VOI LUTs to use.
        prefer_voi_lut: when both a VOI LUT Sequence and a window are present, use the LUT.
        invert_monochrome1: turn MONOCHROME1 data into MONOCHROME2.
        force: read files without the DICOM preamble/``DICM`` marker.
        meta_keywords: DICOM keywords copied (as strings) into the metadata.
        channel_dim: as in ``ITKReader`` (None: ``nan`` for grey-level, ``-1`` for colour data).
        affine_lps_to_ras: return a RAS affine (MONAI's default); False keeps LPS.
        dtype: dtype of the returned array.

    Raises (from ``get_data``):
        BadCaseError: a missing, non-DICOM, corrupt or truncated file, a file without image, or a multi-frame file
            (read those with :class:`~medtl_monai.io.DicomSeriesReader`).
    """

    def __init__(
        self,
        *,
        apply_voi: bool | None = None,
        voi_index: int = 0,
        prefer_voi_lut: bool = True,
        invert_monochrome1: bool = True,
        force: bool = False,
        meta_keywords: Sequence[str] = DEFAULT_META_KEYWORDS,
        channel_dim: str | int | None = None,
        affine_lps_to_ras: bool = True,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__(channel_dim=channel_dim, affine_lps_to_ras=affine_lps_to_ras, dtype=dtype)
        self.apply_voi = apply_voi
        self.voi_index = voi_index
        self.prefer_voi_lut = prefer_voi_lut
        self.invert_monochrome1 = invert_monochrome1
        self.force = force
        self.meta_keywords = tuple(meta_keywords)

    def verify_suffix(self, filename: Sequence[os.PathLike | str] | os.PathLike | str) -> bool:
        """Whether every path is a file with a DICOM suffix (or none)."""
        paths = as_paths(filename)
        return all(not p.is_dir() and (p.suffix.lower() in DICOM_SUFFIXES or p.suffix == "") for p in paths)

    def _load(self, path: str, **options: Any) -> tuple[np.ndarray, dict]:
        unknown = set(options) - {"apply_voi", "voi_index", "force"}
        if unknown:
            raise TypeError(f"{type(self).__name__}.read() got unexpected options {sorted(unknown)}")
        file = Path(path)
        if file.is_dir():
            raise BadCaseError(file, "is a folder; DicomXrayReader reads one single-frame file (see DicomSeriesReader)")
        header = read_header(file, force=options.get("force", self.force))
        ds = header.ds
        header.check_image()
        if header.number_of_frames > 1:
            raise BadCaseError(
                file, f"is a multi-frame file ({header.number_of_frames} frames); read it with DicomSeriesReader"
            )
        frame = decode_frames(header)[0]
        if frame.ndim == 3:  # colour: pydicom already converted YBR to RGB
            image = frame.astype(np.float64)
        else:
            image = self._grey_pipeline(frame, ds, file, options)
        spacing, source = np.ones(2), "none"
        for keyword in _SPACING_KEYWORDS:
            value = float_values(ds, keyword, 2, file)
            if value is not None:
                spacing, source = value, keyword
                break
        affine = np.diag([spacing[1], spacing[0], 1.0])  # (column, row) index -> LPS, identity direction as ITK
        meta = meta_from_dataset(ds, self.meta_keywords)
        meta["spacing_source"] = source
        array = image.transpose((1, 0, 2) if image.ndim == 3 else (1, 0))
        return self._finish_meta(array, meta, affine, os.fspath(path), spatial_dims=2)

    def _grey_pipeline(self, frame: np.ndarray, ds: Dataset, file: Path, options: dict) -> np.ndarray:
        """Modality LUT, VOI LUT/window, MONOCHROME1 inversion."""
        apply_voi = options.get("apply_voi", self.apply_voi)
        if apply_voi is None:
            apply_voi = str(ds.get("Modality", "")).upper() not in QUANTITATIVE_MODALITIES
        has_voi = "VOILUTSequence" in ds or "WindowCenter" in ds
        index = options.get("voi_index", self.voi_index)

        def pipeline(values: np.ndarray) -> np.ndarray:
            out = apply_modality(values, ds)
            if apply_voi and has_voi:
                out = apply_voi_lut(out, ds, index=index, prefer_lut=self.prefer_voi_lut)
            return np.asarray(out, dtype=np.float64)

        try:
            image = pipeline(frame)
            if self.invert_monochrome1 and str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
                low, high = monochrome1_bounds(ds, pipeline)
                image = (low + high) - image
        except BadCaseError:
            raise
        except Exception as error:  # invalid LUT descriptors, window width < 1...
            raise BadCaseError(file, f"invalid modality/VOI LUT: {type(error).__name__}: {error}") from error
        return image
