"""Read a DICOM series folder, or one multi-frame / Enhanced CT-MR file, as one volume (a MONAI image reader)."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._dicom import DEFAULT_META_KEYWORDS, DicomHeader, NotDicomError, meta_from_dataset, read_header, sop_class_uids
from ._reader_base import DeferredReader, as_paths
from ._volume import assemble_multiframe, assemble_slices
from .errors import BadCaseError, DicomSeriesError
from .series_selection import SeriesInfo, choose_series

__all__ = ["DICOM_SUFFIXES", "DicomSeriesReader"]

logger = logging.getLogger("medtl_monai.io")

#: File name endings taken as DICOM (files without any suffix are also tried).
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic", ".ima")


class DicomSeriesReader(DeferredReader):
    """Read a DICOM series folder, or a multi-frame/Enhanced CT or MR file, as one 3D volume.

    Slices are ordered by their ImagePositionPatient projected on the slice normal (the cross product of the
    ImageOrientationPatient row and column cosines), never by file name or InstanceNumber; each slice (or frame)
    gets its own RescaleSlope/RescaleIntercept (or modality LUT). Headers are read first without pixel data
    (``stop_before_pixels``) to group and sort the files, then only the chosen series' pixels are decoded,
    straight from their offsets. Compressed transfer syntaxes decode through pydicom's plugins.

    The array and affine follow MONAI's ``ITKReader``: the array is indexed ``(column, row, slice)``, the affine
    maps those indices to RAS (or LPS with ``affine_lps_to_ras=False``) millimetres, the slice axis runs along the
    normal with the geometrically first slice as origin, and MONOCHROME1 data is inverted. So
    ``Orientation(axcodes="RAS")`` afterwards gives the same result as after ``ITKReader``.

    A folder holding several series yields the one named by ``series_uid``, otherwise the one with the most
    slices (ties: the smallest SeriesInstanceUID), never a localizer (``ImageType`` LOCALIZER) while another series
    exists (the rule of :mod:`medtl_monai.io.series_selection`, which the MONAI Deploy app applies too), and says
    which and why on the ``medtl_monai.io`` logger.
    Non-DICOM files and DICOM objects that are not images to classify (segmentations, RT dose, structure sets and
    plans, reports, presentation states, raw data) in the folder are ignored; a folder holding only those, or such
    a file given alone, is refused with its SOP class named.

    Args:
        series_uid: SeriesInstanceUID to read from a folder with several series.
        strict: raise instead of choosing when a folder holds more than one image series.
        gap_tolerance: relative tolerance on slice spacing: a step may differ from the median step by
            ``gap_tolerance_mm + gap_tolerance * median`` before the series is reported as having a gap.
        gap_tolerance_mm: absolute part of that tolerance, in mm.
        recursive: also collect files from sub-folders.
        force: read files without the DICOM preamble/``DICM`` marker.
        meta_keywords: DICOM keywords copied (as strings) into the metadata.
        accepted_sop_classes: SOP classes (UIDs or pydicom keywords such as ``"RTDoseStorage"``) read as volumes
            although they are not image SOP classes (e.g. a dose grid for dosimetry research).
        channel_dim: as in ``ITKReader`` (None: ``nan`` for grey-level, ``-1`` for colour data).
        affine_lps_to_ras: return a RAS affine (MONAI's default); False keeps DICOM's LPS.
        dtype: dtype of the returned array.

    Raises (from ``get_data``, so that ``LoadImage`` passes them on unchanged):
        BadCaseError: a missing path, a corrupt, truncated or undecodable file, an object that is not an image to
            classify, a zero or non-finite RescaleSlope, a PixelSpacing that is not positive.
        DicomSeriesError: an empty folder, a missing or ambiguous series, slices of different orientation or
            size, several slices at one position, or a multi-frame file without plane positions.
        SliceSpacingError: unevenly spaced slices (a gap).

    Example::

        LoadImaged(keys="image", reader=DicomSeriesReader(series_uid=None, gap_tolerance=0.01))
    """

    def __init__(
        self,
        series_uid: str | None = None,
        *,
        strict: bool = False,
        gap_tolerance: float = 0.01,
        gap_tolerance_mm: float = 0.01,
        recursive: bool = False,
        force: bool = False,
        meta_keywords: Sequence[str] = DEFAULT_META_KEYWORDS,
        accepted_sop_classes: Sequence[str] = (),
        channel_dim: str | int | None = None,
        affine_lps_to_ras: bool = True,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__(channel_dim=channel_dim, affine_lps_to_ras=affine_lps_to_ras, dtype=dtype)
        self.series_uid = series_uid
        self.strict = strict
        self.gap_tolerance = gap_tolerance
        self.gap_tolerance_mm = gap_tolerance_mm
        self.recursive = recursive
        self.force = force
        self.meta_keywords = tuple(meta_keywords)
        self.accepted_sop_classes = tuple(accepted_sop_classes)
        sop_class_uids(self.accepted_sop_classes)  # fail early on a name that is not a SOP class

    def verify_suffix(self, filename: Sequence[os.PathLike | str] | os.PathLike | str) -> bool:
        """Whether every path is a folder or a file with a DICOM suffix (or none)."""
        paths = as_paths(filename)
        return all(p.is_dir() or p.suffix.lower() in DICOM_SUFFIXES or p.suffix == "" for p in paths)

    def _load(self, path: str, **options: Any) -> tuple[np.ndarray, dict]:
        names = ("series_uid", "strict", "gap_tolerance", "gap_tolerance_mm", "recursive", "force",
                 "accepted_sop_classes")
        unknown = set(options) - set(names)
        if unknown:
            raise TypeError(f"{type(self).__name__}.read() got unexpected options {sorted(unknown)}")
        opts = {name: options.get(name, getattr(self, name)) for name in names}
        tolerance = (opts["gap_tolerance"], opts["gap_tolerance_mm"])
        location = Path(path)
        if not location.exists():
            raise BadCaseError(location, "does not exist")
        if location.is_dir():
            groups = _scan_folder(location, opts["recursive"], opts["force"], opts["accepted_sop_classes"])
            headers = _select_series(groups, location, opts)
        else:
            header = read_header(location, force=opts["force"], accepted_sop_classes=opts["accepted_sop_classes"])
            header.check_image()
            headers = [header]
        if any(h.number_of_frames > 1 for h in headers):
            if len(headers) > 1:
                raise DicomSeriesError(location, "series mixes multi-frame files with other files; read each file")
            volume, affine, ref = assemble_multiframe(headers[0], tolerance)
        else:
            volume, affine, ref = assemble_slices(headers, location, tolerance)
        meta = meta_from_dataset(ref, self.meta_keywords)
        return self._finish_meta(volume, meta, affine, os.fspath(path), spatial_dims=3)


def _scan_folder(
    folder: Path, recursive: bool, force: bool, accepted_sop_classes: Sequence[str] = ()
) -> dict[str, list[DicomHeader]]:
    """Read every file's header (no pixel data) and group image files by SeriesInstanceUID.

    Raises:
        BadCaseError: an image file is corrupt, truncated, or has an unusable rescale or pixel spacing.
        DicomSeriesError: the folder holds no image file; the error names the SOP classes of the DICOM objects found.
    """
    walker = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in walker if p.is_file() and not p.name.startswith(".") and p.name != "DICOMDIR")
    groups: dict[str, list[DicomHeader]] = defaultdict(list)
    not_dicom, not_image = [], []
    sop_classes: dict[str, int] = defaultdict(int)
    for file in files:
        try:
            header = read_header(file, force=force, accepted_sop_classes=accepted_sop_classes)
        except NotDicomError:
            not_dicom.append(file.name)
            continue
        if header.kind == "other":
            not_image.append(file.name)
            sop = header.sop_class
            sop_classes[sop.name if sop is not None else "unknown SOP class"] += 1
            continue
        header.check_image()  # a corrupt or cut-short image file: its series cannot be trusted
        groups[str(header.ds.get("SeriesInstanceUID", ""))].append(header)
    if not_dicom or not_image:
        logger.debug(
            "%s: ignored %d non-DICOM file(s) %s and %d non-image DICOM file(s) %s",
            folder,
            len(not_dicom),
            not_dicom[:5],
            len(not_image),
            not_image[:5],
        )
    if not groups:
        if files:
            detail = f"{len(files)} file(s): {len(not_dicom)} not DICOM, {len(not_image)} DICOM without image"
            if sop_classes:
                found = ", ".join(f"{n} {name}" for name, n in sorted(sop_classes.items()))
                detail += f" ({found}); only image SOP classes ('... Image Storage') are read"
        else:
            subfolders = sum(p.is_dir() for p in folder.iterdir())
            detail = "the folder is empty" + (
                f" but has {subfolders} sub-folder(s): recursive=True?" if subfolders else ""
            )
        raise DicomSeriesError(folder, f"no DICOM image files in folder ({detail})")
    return groups


def _select_series(groups: dict[str, list[DicomHeader]], folder: Path, opts: dict) -> list[DicomHeader]:
    """Pick one series by the shared rule (:func:`~medtl_monai.io.series_selection.choose_series`: the requested
    one, else the one with most slices that is not a localizer); it logs which and why."""
    infos = [SeriesInfo.from_datasets(uid, (h.ds for h in headers)) for uid, headers in groups.items()]
    chosen = choose_series(infos, folder, series_uid=opts["series_uid"], strict=opts["strict"])
    return groups[chosen.uid]
