"""MONAI image readers for medical data: DICOM series and multi-frame volumes, radiographs, NIfTI.

:class:`MedicalImageReader` dispatches on the path so that one bundle config reads any of them::

    "loader": {"_target_": "LoadImaged", "keys": "image", "reader": "medtl_monai.io.MedicalImageReader"}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data.image_reader import ImageReader, ITKReader, NibabelReader, PILReader
from monai.utils import ImageMetaKey, MetaKeys, SpaceKeys

from ._dicom import NotDicomError, lps_ras_flip, read_header
from ._reader_base import DeferredImage, DeferredReader, as_paths
from .dicom_series import DICOM_SUFFIXES, DicomSeriesReader
from .errors import BadCaseError
from .xray_reader import DicomXrayReader

__all__ = ["DeferredImage", "DicomSeriesReader", "DicomXrayReader", "MedicalImageReader"]

NIFTI_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img", ".img.gz")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


class MedicalImageReader(DeferredReader):
    """Read whatever a datalist entry points to, choosing the reader from the path.

    - a folder, or a multi-frame DICOM file: :class:`DicomSeriesReader` (3D volume);
    - a single-frame DICOM file (``.dcm`` or any suffix with a DICOM header): :class:`DicomXrayReader` (2D);
    - ``.nii``/``.nii.gz`` (and Analyze): MONAI's ``NibabelReader``;
    - ``.png``/``.jpg``/``.jpeg``/``.bmp``: MONAI's ``PILReader``; ``.nrrd``/``.mha``/``.mhd``: ``ITKReader``.

    Failures of the delegated MONAI readers are re-raised as :class:`~medtl_monai.io.BadCaseError`
    naming the file. A DICOM file that is not an image to classify (a segmentation, an RT dose grid, structure set
    or plan, a report, a presentation state...) is refused with its SOP class named, whichever reader it would go to.

    Args:
        series_uid: passed to :class:`DicomSeriesReader`.
        strict: passed to :class:`DicomSeriesReader`.
        gap_tolerance: passed to :class:`DicomSeriesReader`.
        gap_tolerance_mm: passed to :class:`DicomSeriesReader`.
        accepted_sop_classes: passed to :class:`DicomSeriesReader` (non-image SOP classes to read as volumes).
        apply_voi: passed to :class:`DicomXrayReader`.
        force: read DICOM files without preamble.
        nibabel_args: extra keyword arguments for ``NibabelReader``.
        affine_lps_to_ras: RAS affines (MONAI's default) for every format; False gives LPS for every format.
        dtype: dtype of the returned arrays.
    """

    def __init__(
        self,
        *,
        series_uid: str | None = None,
        strict: bool = False,
        gap_tolerance: float = 0.01,
        gap_tolerance_mm: float = 0.01,
        accepted_sop_classes: Sequence[str] = (),
        apply_voi: bool | None = None,
        force: bool = False,
        nibabel_args: dict[str, Any] | None = None,
        affine_lps_to_ras: bool = True,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__(affine_lps_to_ras=affine_lps_to_ras, dtype=dtype)
        self.force = force
        self.series_reader = DicomSeriesReader(
            series_uid,
            strict=strict,
            gap_tolerance=gap_tolerance,
            gap_tolerance_mm=gap_tolerance_mm,
            force=force,
            accepted_sop_classes=accepted_sop_classes,
            affine_lps_to_ras=affine_lps_to_ras,
            dtype=dtype,
        )
        self.xray_reader = DicomXrayReader(
            apply_voi=apply_voi, force=force, affine_lps_to_ras=affine_lps_to_ras, dtype=dtype
        )
        self.nibabel_reader = NibabelReader(**(nibabel_args or {}))

    def verify_suffix(self, filename: Sequence[os.PathLike | str] | os.PathLike | str) -> bool:
        """Whether every path is a folder or has a suffix this reader handles (or no suffix)."""
        paths = as_paths(filename)
        known = DICOM_SUFFIXES + NIFTI_SUFFIXES + PIL_SUFFIXES + ITK_SUFFIXES
        return all(p.is_dir() or p.suffix == "" or p.name.lower().endswith(known) for p in paths)

    def reader_for(self, path: str | os.PathLike) -> ImageReader:
        """Return the reader used for ``path``.

        Raises:
            BadCaseError: the path does not exist, is neither a known image format nor DICOM, or is a DICOM file that
                is not a usable image (see :meth:`DicomHeader.check_image <medtl_monai.io._dicom.DicomHeader>`).
        """
        location = Path(path)
        if location.is_dir():
            return self.series_reader
        name = location.name.lower()
        if not location.exists():
            raise BadCaseError(location, "file does not exist")
        if name.endswith(NIFTI_SUFFIXES):
            return self.nibabel_reader
        if name.endswith(PIL_SUFFIXES):
            return PILReader()
        if name.endswith(ITK_SUFFIXES):
            return ITKReader()
        try:
            header = read_header(location, force=self.force, accepted_sop_classes=self.series_reader.accepted_sop_classes)
        except NotDicomError:
            raise BadCaseError(
                location,
                "not a supported image file: no DICOM 'DICM' marker (force=True reads DICOM files without "
                f"preamble) and the suffix is none of {', '.join(NIFTI_SUFFIXES + PIL_SUFFIXES + ITK_SUFFIXES)}",
            ) from None
        header.check_image()
        return self.series_reader if header.number_of_frames > 1 else self.xray_reader

    def _load(self, path: str, **options: Any) -> tuple[np.ndarray, dict]:
        reader = self.reader_for(path)
        if isinstance(reader, DeferredReader):
            return reader._load(path, **options)
        try:
            array, meta = reader.get_data(reader.read(path))
        except Exception as error:
            raise BadCaseError(
                path, f"cannot be read by {type(reader).__name__}: {type(error).__name__}: {error}"
            ) from error
        if not self.affine_lps_to_ras and MetaKeys.AFFINE in meta:
            for key in (MetaKeys.AFFINE, MetaKeys.ORIGINAL_AFFINE):
                meta[key] = lps_ras_flip(np.asarray(meta[key]))
            meta[MetaKeys.SPACE] = SpaceKeys.LPS
        meta[ImageMetaKey.FILENAME_OR_OBJ] = os.fspath(path)
        if self.dtype is not None and array.dtype != self.dtype:
            array = array.astype(self.dtype)
        return array, meta
