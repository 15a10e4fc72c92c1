"""Read a DICOM series folder, or one multi-frame / Enhanced CT-MR file, as one volume (a MONAI image reader)."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._dicom import DEFAULT_META_KEYWORDS, DicomHeader, NotDicomError, meta_from_dataset, read_header
from ._reader_base import DeferredReader, as_paths
from ._volume import assemble_multiframe, assemble_slices
from .errors import BadCaseError, DicomSeriesError

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
    slices (ties: the smallest SeriesInstanceUID), and says which and why on the ``medtl_monai.io`` logger.
    Non-DICOM files and non-image DICOM objects (reports, presentation states) in the folder are ignored.

    Args:
        series_uid: SeriesInstanceUID to read from a folder with several series.
        strict: raise instead of choosing when a folder holds more than one image series.
        gap_tolerance: relative tolerance on slice spacing: a step may differ from the median step by
            ``gap_tolerance_mm + gap_tolerance * median`` before the series is reported as having a gap.
        gap_tolerance_mm: absolute part of that tolerance, in mm.
        recursive: also collect files from sub-folders.
        force: read files without the DICOM preamble/``DICM`` marker.
        meta_keywords: DICOM keywords copied (as strings) into the metadata.
        channel_dim: as in ``ITKReader`` (None: ``nan`` for grey-level, ``-1`` for colour data).
        affine_lps_to_ras: return a RAS affine (MONAI's default); False keeps DICOM's LPS.
        dtype: dtype of the returned array.

    Raises (from ``get_data``, so that ``LoadImage`` passes them on unchanged):
        BadCaseError: a missing path, a corrupt, truncated or undecodable file.
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

    def verify_suffix(self, filename: Sequence[os.PathLike | str] | os.PathLike | str) -> bool:
        """Whether every path is a folder or a file with a DICOM suffix (or none)."""
        paths = as_paths(filename)
        return all(p.is_dir() or p.suffix.lower() in DICOM_SUFFIXES or p.suffix == "" for p in paths)

    def _load(self, path: str, **options: Any) -> tuple[np.ndarray, dict]:
        names = ("series_uid", "strict", "gap_tolerance", "gap_tolerance_mm", "recursive", "force")
        unknown = set(options) - set(names)
        if unknown:
            raise TypeError(f"{type(self).__name__}.read() got unexpected options {sorted(unknown)}")
        opts = {name: options.get(name, getattr(self, name)) for name in names}
        tolerance = (opts["gap_tolerance"], opts["gap_tolerance_mm"])
        location = Path(path)
        if not location.exists():
            raise BadCaseError(location, "does not exist")
        if location.is_dir():
            headers = _select_series(_scan_folder(location, opts["recursive"], opts["force"]), location, opts)
        else:
            header = read_header(location, force=opts["force"])
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


def _scan_folder(folder: Path, recursive: bool, force: bool) -> dict[str, list[DicomHeader]]:
    """Read every file's header (no pixel data) and group image files by SeriesInstanceUID."""
    walker = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in walker if p.is_file() and not p.name.startswith(".") and p.name != "DICOMDIR")
    groups: dict[str, list[DicomHeader]] = defaultdict(list)
    not_dicom, not_image = [], []
    for file in files:
        try:
            header = read_header(file, force=force)
        except NotDicomError:
            not_dicom.append(file.name)
            continue
        if header.kind == "other":
            not_image.append(file.name)
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
        else:
            subfolders = sum(p.is_dir() for p in folder.iterdir())
            detail = "the folder is empty" + (
                f" but has {subfolders} sub-folder(s): recursive=True?" if subfolders else ""
            )
        raise DicomSeriesError(folder, f"no DICOM image files in folder ({detail})")
    return groups


def _select_series(groups: dict[str, list[DicomHeader]], folder: Path, opts: dict) -> list[DicomHeader]:
    """Pick one series: the requested one, else the one with most slices; log which and why."""
    sizes = {uid: sum(h.number_of_frames for h in hs) for uid, hs in groups.items()}

    def describe(uid: str) -> str:
        ds = groups[uid][0].ds
        name = uid or "<no SeriesInstanceUID>"
        return f"{name} ({sizes[uid]} slices, {ds.get('Modality', '?')}, '{ds.get('SeriesDescription', '')}')"

    summary = "; ".join(describe(uid) for uid in sorted(groups, key=lambda u: (-sizes[u], u)))
    wanted = opts["series_uid"]
    if wanted is not None:
        if wanted not in groups:
            raise DicomSeriesError(folder, f"series {wanted} not found; the folder holds: {summary}")
        logger.info(
            "%s: reading series %s because series_uid was given (folder holds: %s)", folder, describe(wanted), summary
        )
        return groups[wanted]
    if len(groups) > 1:
        if opts["strict"]:
            raise DicomSeriesError(
                folder, f"folder mixes {len(groups)} series ({summary}); pass series_uid to choose one"
            )
        chosen = min(groups, key=lambda u: (-sizes[u], u))
        tie = sum(size == sizes[chosen] for size in sizes.values()) > 1
        logger.info(
            "%s: folder holds %d series; reading %s because it has the most slices%s (all: %s)",
            folder,
            len(groups),
            describe(chosen),
            " (tie broken by smallest UID)" if tie else "",
            summary,
        )
        return groups[chosen]
    return next(iter(groups.values()))
