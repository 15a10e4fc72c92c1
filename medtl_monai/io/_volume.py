"""Build one volume, in ITK's array layout with its LPS affine, from DICOM slice headers or a multi-frame file.

Both paths follow the same recipe: read the plane geometry (one plane per file or per frame) and check it (parallel
planes, equal size and pixel spacing), order the planes along the slice normal (no duplicated positions, no gaps),
then decode and rescale the pixels into ITK's ``(columns, rows, slices[, samples])`` layout.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from ._dicom import (
    DicomHeader,
    affine_lps,
    apply_modality,
    decode_frames,
    float_values,
    monochrome1_bounds,
    positive_spacing,
    require,
    rescale_parameters,
)
from .errors import BadCaseError, DicomSeriesError, SliceSpacingError

__all__ = ["assemble_multiframe", "assemble_slices"]

logger = logging.getLogger("medtl_monai.io")

_ORIENTATION_ATOL = 1e-3  # direction cosines of parallel slices agree to this
_DUPLICATE_ATOL_MM = 1e-3  # slices closer than this along the normal are the same position
_CHUNK = 8  # slices decoded before each transposed write (fits the cache, amortises the transposition)
_SINGLE_SLICE_KEYWORDS = ("SpacingBetweenSlices",)  # as ITK/GDCM: a lone slice's step ignores SliceThickness


def _orientation(ds: Dataset, path: Path | str, required: bool) -> np.ndarray | None:
    """ImageOrientationPatient of ``ds``; None when absent, unless ``required`` (then a DicomSeriesError)."""
    iop = float_values(ds, "ImageOrientationPatient", 6, path)
    if iop is None and required:
        raise DicomSeriesError(path, "missing ImageOrientationPatient: cannot order the slices geometrically")
    return iop


def _pixel_spacing(ds: Dataset | None, path: Path | str) -> np.ndarray | None:
    """PixelSpacing, else ImagerPixelSpacing, of ``ds`` (None when ``ds`` is None or holds neither).

    Raises:
        BadCaseError: the spacing does not hold two positive numbers.
    """
    if ds is None:
        return None
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        spacing = positive_spacing(ds, keyword, path)
        if spacing is not None:
            return spacing
    return None


def _order_stack(
    distances: np.ndarray, names: Sequence[str], location: Path, tolerance: tuple[float, float]
) -> tuple[np.ndarray, float | None]:
    """Sort slices along the normal; reject duplicated positions and uneven steps.

    Returns:
        the sorting order and the mean step (None for a single slice).
    """
    order = np.argsort(distances, kind="stable")
    positions = distances[order]
    if len(positions) < 2:
        return order, None
    steps = np.diff(positions)
    duplicate = np.flatnonzero(steps < _DUPLICATE_ATOL_MM)
    if duplicate.size:
        i = duplicate[0]
        raise DicomSeriesError(
            location,
            f"slices share a position ({duplicate.size} duplicated position(s)): {names[order[i]]} and "
            f"{names[order[i + 1]]} both lie at {positions[i]:.3f} mm along the slice normal; the series holds "
            "several volumes (echoes, phases, repeats): split it or pass the files of one volume",
        )
    median = float(np.median(steps))
    rtol, atol = tolerance
    uneven = np.flatnonzero(np.abs(steps - median) > atol + rtol * median)
    if uneven.size:
        i = int(np.argmax(steps))
        raise SliceSpacingError(
            location,
            f"uneven slice spacing (gap): steps between consecutive slices range from {steps.min():.4g} to "
            f"{steps.max():.4g} mm (median {median:.4g} mm); the largest lies between {names[order[i]]} at "
            f"{positions[i]:.4g} mm and {names[order[i + 1]]} at {positions[i + 1]:.4g} mm along the slice normal "
            f"({uneven.size} uneven step(s) among {len(positions)} slices; positions: "
            f"{np.array2string(positions, precision=3, separator=', ', threshold=12)}); a slice is missing or "
            "stacks are mixed",
            positions=positions,
        )
    return order, float((positions[-1] - positions[0]) / (len(positions) - 1))


def _warn_if_sheared(positions: np.ndarray, normal: np.ndarray, step: float | None, location: Path) -> None:
    """Warn when ordered plane ``positions`` drift within the plane (gantry tilt): the affine keeps no shear."""
    if step is None:
        return
    offsets = positions - positions[0]
    in_plane = offsets - np.outer(offsets @ normal, normal)
    drift = float(np.linalg.norm(in_plane, axis=1).max())
    if drift > max(0.01, 0.01 * abs(step)):
        logger.warning(
            "%s: slice positions drift %.3g mm within the slice plane (gantry tilt?); the affine keeps the slice "
            "normal and ignores the shear",
            location,
            drift,
        )


def _thickness(ds: Dataset, keywords: Sequence[str] = ("SpacingBetweenSlices", "SliceThickness")) -> float:
    """The first positive value among ``keywords`` (1 mm when none): the slice step of a single slice or frame."""
    for keyword in keywords:
        try:
            value = float(ds.get(keyword) or 0)
        except (TypeError, ValueError):
            value = 0.0
        if value > 0:
            return value
    return 1.0


def _slice_axes(orientation: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row cosines, column cosines and unit slice normal of an ImageOrientationPatient."""
    row, col = orientation[:3], orientation[3:]
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    return row, col, normal


def _spacing_or_default(spacing: np.ndarray | None, path: Path | str) -> np.ndarray:
    """``spacing``, or 1 mm in both directions (with a warning naming ``path``) when it is None."""
    if spacing is None:
        logger.warning("%s: no PixelSpacing; assuming 1 mm", path)
        return np.ones(2)
    return spacing


# ---------------------------------------------------------------- single-frame files (one slice per file)


def assemble_slices(
    headers: list[DicomHeader], location: Path, tolerance: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, Dataset]:
    """Stack single-frame files into a float32 ``(columns, rows, slices[, samples])`` volume, with its LPS affine.

    Args:
        headers: the headers of the slices of one series, in any order.
        location: the folder (or file) named in errors about the series as a whole.
        tolerance: ``(rtol, atol_mm)`` allowed between a slice step and the median step.

    Returns:
        the C-contiguous volume (modality rescale or LUT applied, MONOCHROME1 inverted), the 4x4 affine from its
        indices to LPS millimetres, and the dataset of the geometrically first slice.

    Raises:
        BadCaseError: a slice lacks Rows/Columns, or its pixels are missing, undecodable or of the wrong size.
        DicomSeriesError: slices differ in size, orientation or pixel spacing, lack a position or orientation
            needed to order them, or share a position.
        SliceSpacingError: the slice steps are uneven (a missing slice, mixed stacks).
    """
    size = _common_slice_size(headers, location)
    samples = int(headers[0].ds.get("SamplesPerPixel", 1) or 1)
    orientation, positions = _slice_planes(headers, location)
    row, col, normal = _slice_axes(orientation)
    order, step = _order_stack(positions @ normal, [h.path.name for h in headers], location, tolerance)
    _warn_if_sheared(positions[order], normal, step, location)
    headers = [headers[i] for i in order]
    spacing = _spacing_or_default(_common_pixel_spacing(headers, location), headers[0].path)
    volume = _decode_slices(headers, size, samples)
    z = step or _thickness(headers[0].ds, _SINGLE_SLICE_KEYWORDS)
    affine = affine_lps(row, col, normal, (spacing[1], spacing[0], z), positions[order[0]])
    return volume, affine, headers[0].ds


def _common_slice_size(headers: Sequence[DicomHeader], location: Path) -> tuple[int, int]:
    """The ``(rows, columns)`` every slice shares.

    Raises:
        BadCaseError: a slice lacks Rows or Columns.
        DicomSeriesError: two slices differ in size.
    """
    for h in headers:
        require(h.ds, ("Rows", "Columns"), h.path)
    size = (int(headers[0].ds.Rows), int(headers[0].ds.Columns))
    for h in headers[1:]:
        if (int(h.ds.Rows), int(h.ds.Columns)) != size:
            raise DicomSeriesError(
                location,
                f"slices differ in size: {headers[0].path.name} is {size[0]}x{size[1]} but {h.path.name} is "
                f"{h.ds.Rows}x{h.ds.Columns}",
            )
    return size


def _slice_planes(headers: Sequence[DicomHeader], location: Path) -> tuple[np.ndarray, np.ndarray]:
    """The orientation all slices share and each slice's position, in the order of ``headers``.

    A lone slice without orientation or position is taken as an axial slice at 0 (with a warning).

    Returns:
        ImageOrientationPatient (6 values) and the ``(slices, 3)`` ImagePositionPatient array.

    Raises:
        DicomSeriesError: a slice of a several-slice series lacks its orientation or position, or the slices are
            not parallel.
    """
    several = len(headers) > 1
    iops = [_orientation(h.ds, h.path, required=several) for h in headers]
    ipps = [float_values(h.ds, "ImagePositionPatient", 3, h.path) for h in headers]
    if several and any(p is None for p in ipps):
        missing = next(h for h, p in zip(headers, ipps, strict=True) if p is None)
        raise DicomSeriesError(missing.path, "missing ImagePositionPatient: cannot order the slices geometrically")
    if iops[0] is None or ipps[0] is None:
        logger.warning(
            "%s: no ImageOrientationPatient/ImagePositionPatient; assuming an axial slice at 0", headers[0].path
        )
    iop = iops[0] if iops[0] is not None else np.array([1.0, 0, 0, 0, 1.0, 0])
    for h, other in zip(headers[1:], iops[1:], strict=True):
        if np.abs(other - iop).max() > _ORIENTATION_ATOL:
            raise DicomSeriesError(
                location,
                f"slices are not parallel: {headers[0].path.name} has ImageOrientationPatient "
                f"{np.round(iop, 4).tolist()} but {h.path.name} has {np.round(other, 4).tolist()} "
                "(a localizer or a mixed series)",
            )
    return iop, np.stack([p if p is not None else np.zeros(3) for p in ipps])


def _common_pixel_spacing(headers: Sequence[DicomHeader], location: Path) -> np.ndarray | None:
    """The pixel spacing of the first slice, which every other slice must share (None when the first has none).

    Raises:
        DicomSeriesError: a later slice has another spacing, or none while the first has one.
    """
    spacing = _pixel_spacing(headers[0].ds, headers[0].path)
    for h in headers[1:]:
        other = _pixel_spacing(h.ds, h.path)
        if spacing is not None and (other is None or not np.allclose(other, spacing, rtol=1e-4)):
            raise DicomSeriesError(
                location, f"slices differ in pixel spacing: {headers[0].path.name} and {h.path.name}"
            )
    return spacing


def _decode_slices(headers: Sequence[DicomHeader], size: tuple[int, int], samples: int) -> np.ndarray:
    """Decode ordered slices into a C-contiguous float32 ``(columns, rows, slices[, samples])`` volume, rescaled.

    A few slices are decoded at a time, then written transposed into ITK's layout: this yields the C-contiguous
    array LoadImage wants (no later full-volume copy) at cache-friendly cost.

    Raises:
        BadCaseError: a slice's pixels are missing or undecodable, or not of ``size`` once decoded.
    """
    n = len(headers)
    volume = np.empty((size[1], size[0], n) + ((samples,) if samples > 1 else ()), dtype=np.float32)
    chunk = np.empty((min(_CHUNK, n), *size) + volume.shape[3:], dtype=np.float32)
    slopes, intercepts = np.ones(n), np.zeros(n)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        for j, h in enumerate(headers[start:stop]):
            frame = decode_frames(h)[0]
            if frame.shape[:2] != size:
                raise BadCaseError(h.path, f"decoded pixel data is {frame.shape[:2]}, header says {size}")
            slopes[start + j], intercepts[start + j] = _store_slice(chunk, j, frame, h.ds, h.path)
        volume[:, :, start:stop] = _itk_layout(chunk[: stop - start])
    _rescale_along_slices(volume, slopes, intercepts)
    return volume


def _itk_layout(stack: np.ndarray) -> np.ndarray:
    """View a ``(slices, rows, columns[, samples])`` stack in ITK's ``(columns, rows, slices[, samples])`` order."""
    return stack.transpose((2, 1, 0, 3) if stack.ndim == 4 else (2, 1, 0))


def _store_slice(chunk: np.ndarray, k: int, frame: np.ndarray, ds: Dataset, path: Path) -> tuple[float, float]:
    """Write one decoded slice into ``chunk[k]``; return the linear rescale still to apply to it.

    A linear modality rescale (and a MONOCHROME1 inversion, itself linear) is returned as (slope, intercept) and
    applied to the whole volume at once; a modality LUT is applied here.
    """
    monochrome1 = str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1"
    if frame.ndim == 3:  # colour: no modality transform
        chunk[k] = frame
        return 1.0, 0.0
    if "ModalityLUTSequence" in ds:
        chunk[k] = apply_modality(frame, ds)
        if monochrome1:
            low, high = monochrome1_bounds(ds, lambda a: apply_modality(a, ds))
            np.subtract(low + high, chunk[k], out=chunk[k])
        return 1.0, 0.0
    chunk[k] = frame
    slope, intercept = rescale_parameters(ds, path) or (1.0, 0.0)
    if monochrome1:  # low + high - (slope * v + intercept)
        low, high = monochrome1_bounds(ds, lambda a: a * slope + intercept)
        return -slope, low + high - intercept
    return slope, intercept


def _rescale_along_slices(volume: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray) -> None:
    """``volume[:, :, k] = volume[:, :, k] * slopes[k] + intercepts[k]`` in place, in contiguous passes."""
    if np.all(slopes == slopes[0]) and np.all(intercepts == intercepts[0]):
        if slopes[0] != 1.0:
            volume *= np.float32(slopes[0])
        if intercepts[0] != 0.0:
            volume += np.float32(intercepts[0])
        return
    shape = (1, 1, -1) + (1,) * (volume.ndim - 3)
    volume *= slopes.astype(np.float32).reshape(shape)
    volume += intercepts.astype(np.float32).reshape(shape)


# ---------------------------------------------------------------- multi-frame files (one slice per frame)


@dataclass(frozen=True)
class _FrameGeometry:
    """The plane geometry and linear rescale of the frames of one multi-frame file, in stored frame order.

    Attributes:
        orientation: ImageOrientationPatient shared by every frame (6 values).
        positions: ``(frames, 3)`` ImagePositionPatient of each frame.
        pixel_spacing: (between rows, between columns) in mm, None when the file gives none.
        slopes: RescaleSlope of each frame.
        intercepts: RescaleIntercept of each frame.
        measures: the dataset whose SpacingBetweenSlices is the step of a single-frame file.
    """

    orientation: np.ndarray
    positions: np.ndarray
    pixel_spacing: np.ndarray | None
    slopes: np.ndarray
    intercepts: np.ndarray
    measures: Dataset


def assemble_multiframe(header: DicomHeader, tolerance: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, Dataset]:
    """Build a ``(columns, rows, frames[, samples])`` volume and LPS affine from one multi-frame file.

    Frame geometry comes from the Enhanced CT/MR functional groups (per-frame, else shared), else from an RT dose
    GridFrameOffsetVector, else from ImagePositionPatient and the slice spacing (legacy multi-frame NM). RT dose
    values are returned as stored (DoseGridScaling is not applied), as ITK does.

    Args:
        header: the header of the file, from :func:`read_header`.
        tolerance: ``(rtol, atol_mm)`` allowed between a frame step and the median step.

    Returns:
        the C-contiguous float32 volume (modality rescale or LUT applied, MONOCHROME1 inverted), the 4x4 affine
        from its indices to LPS millimetres, and the file's dataset.

    Raises:
        BadCaseError: a geometry element holds invalid values, or the pixel data is missing or undecodable.
        DicomSeriesError: the file has no plane geometry, a frame lacks its plane in the functional groups, frames
            are not parallel, differ in pixel spacing or share a position.
        SliceSpacingError: the frame steps are uneven.
    """
    ds, path, n = header.ds, header.path, header.number_of_frames
    geometry = _frame_geometry(ds, path, n)
    spacing = _spacing_or_default(geometry.pixel_spacing, path)
    row, col, normal = _slice_axes(geometry.orientation)
    order, step = _order_stack(geometry.positions @ normal, [f"frame {i + 1}" for i in range(n)], path, tolerance)
    _warn_if_sheared(geometry.positions[order], normal, step, path)
    frames = decode_frames(header)[order]
    volume = _itk_copy(_rescale_frames(frames, ds, geometry.slopes[order], geometry.intercepts[order]))
    z = step or _thickness(geometry.measures, _SINGLE_SLICE_KEYWORDS)
    affine = affine_lps(row, col, normal, (spacing[1], spacing[0], z), geometry.positions[order[0]])
    return volume, affine, ds


def _frame_geometry(ds: Dataset, path: Path, n: int) -> _FrameGeometry:
    """The geometry of the ``n`` frames: from the functional groups when the file has them, else legacy elements.

    Raises:
        DicomSeriesError: the per-frame functional groups do not hold one item per frame, or see
            :func:`_functional_group_geometry` and :func:`_legacy_frame_geometry`.
    """
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and len(per_frame) != n:
        raise DicomSeriesError(path, f"has {len(per_frame)} per-frame functional group items for {n} frames")
    if per_frame is not None or ds.get("SharedFunctionalGroupsSequence"):
        return _functional_group_geometry(ds, path, n)
    return _legacy_frame_geometry(ds, path, n)


def _functional_group(ds: Dataset, index: int, sequence: str) -> Dataset | None:
    """The first item of ``sequence`` for frame ``index``, from the per-frame groups, else the shared groups."""
    per_frame, shared = ds.get("PerFrameFunctionalGroupsSequence"), ds.get("SharedFunctionalGroupsSequence")
    items = ([per_frame[index]] if per_frame else []) + ([shared[0]] if shared else [])
    for item in items:
        if sequence in item and len(item[sequence].value) > 0:
            return item[sequence].value[0]
    return None


def _functional_group_geometry(ds: Dataset, path: Path, n: int) -> _FrameGeometry:
    """Frame geometry of an Enhanced CT/MR file: plane, pixel measures and rescale of each frame's functional groups.

    A frame without a pixel value transformation takes the file's top-level rescale (else none).

    Raises:
        BadCaseError: a geometry element holds invalid values.
        DicomSeriesError: a frame has no plane position or orientation, or frames differ in orientation or pixel
            spacing.
    """
    iops, ipps, spacings, rescales = [], [], [], []
    for i in range(n):
        orientation = _functional_group(ds, i, "PlaneOrientationSequence")
        position = _functional_group(ds, i, "PlanePositionSequence")
        iop = float_values(orientation, "ImageOrientationPatient", 6, path) if orientation else None
        ipp = float_values(position, "ImagePositionPatient", 3, path) if position else None
        if iop is None or ipp is None:
            raise DicomSeriesError(path, f"frame {i + 1} has no plane position/orientation in its functional groups")
        iops.append(iop)
        ipps.append(ipp)
        spacings.append(_pixel_spacing(_functional_group(ds, i, "PixelMeasuresSequence"), path))
        rescales.append(rescale_parameters(_functional_group(ds, i, "PixelValueTransformationSequence"), path))
    for i, other in enumerate(iops[1:], start=2):
        if np.abs(other - iops[0]).max() > _ORIENTATION_ATOL:
            raise DicomSeriesError(path, f"frames are not parallel: frame 1 and frame {i} differ in orientation")
    spacing = spacings[0]
    for i, other in enumerate(spacings[1:], start=2):
        if (other is None) != (spacing is None) or (other is not None and not np.allclose(other, spacing, rtol=1e-4)):
            raise DicomSeriesError(path, f"frames differ in pixel spacing: frame 1 and frame {i}")
    fallback = rescale_parameters(ds, path) or (1.0, 0.0)
    measures = _functional_group(ds, 0, "PixelMeasuresSequence")
    return _FrameGeometry(
        orientation=iops[0],
        positions=np.stack(ipps),
        pixel_spacing=spacing,
        slopes=np.array([(r or fallback)[0] for r in rescales]),
        intercepts=np.array([(r or fallback)[1] for r in rescales]),
        measures=measures if measures is not None else ds,
    )


def _legacy_frame_geometry(ds: Dataset, path: Path, n: int) -> _FrameGeometry:
    """Frame geometry of a multi-frame file without functional groups (RT dose, legacy NM).

    Frame ``k`` lies at ImagePositionPatient plus ``offset[k]`` along the slice normal, where the offsets are the
    RT dose GridFrameOffsetVector, else multiples of the slice spacing (SpacingBetweenSlices, else SliceThickness,
    else 1 mm). One rescale applies to every frame.

    Raises:
        BadCaseError: a geometry element holds invalid values.
        DicomSeriesError: the file lacks ImagePositionPatient or ImageOrientationPatient.
    """
    iop = float_values(ds, "ImageOrientationPatient", 6, path)
    origin = float_values(ds, "ImagePositionPatient", 3, path)
    if iop is None or origin is None:
        raise DicomSeriesError(
            path,
            f"multi-frame file ({n} frames) without plane geometry (no functional groups, no "
            "ImagePositionPatient/ImageOrientationPatient): cannot build a volume",
        )
    normal = np.cross(iop[:3], iop[3:])
    offsets = float_values(ds, "GridFrameOffsetVector", n, path)
    if offsets is None:
        offsets = np.arange(n) * _thickness(ds)
    spacing = _pixel_spacing(ds, path)
    slope, intercept = rescale_parameters(ds, path) or (1.0, 0.0)
    return _FrameGeometry(
        orientation=iop,
        positions=origin[None] + offsets[:, None] * normal[None],
        pixel_spacing=spacing,
        slopes=np.full(n, slope),
        intercepts=np.full(n, intercept),
        measures=ds,
    )


def _rescale_frames(frames: np.ndarray, ds: Dataset, slopes: np.ndarray, intercepts: np.ndarray) -> np.ndarray:
    """Ordered decoded frames as float32 values: modality LUT or per-frame rescale, then MONOCHROME1 inversion.

    Args:
        frames: ``(frames, rows, columns[, samples])`` stored values, in geometric order.
        ds: the file's dataset (ModalityLUTSequence, PhotometricInterpretation, bit depth).
        slopes: RescaleSlope of each frame, in the order of ``frames``.
        intercepts: RescaleIntercept of each frame, in the order of ``frames``.

    Returns:
        a float32 array shaped like ``frames``. Colour frames are not rescaled. A MONOCHROME1 image is inverted
        within the output range of the first frame's rescale.
    """
    if "ModalityLUTSequence" in ds:
        volume = apply_modality(frames, ds).astype(np.float32)
    elif frames.ndim == 4:
        volume = frames.astype(np.float32)
    else:
        volume = (frames * slopes[:, None, None] + intercepts[:, None, None]).astype(np.float32)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        slope, intercept = slopes[0], intercepts[0]
        low, high = monochrome1_bounds(ds, lambda a: a * slope + intercept)
        np.subtract(low + high, volume, out=volume)
    return volume


def _itk_copy(volume: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of a ``(slices, rows, columns[, samples])`` stack in ITK's layout, written in chunks."""
    output = np.empty(_itk_layout(volume).shape, dtype=np.float32)
    for start in range(0, volume.shape[0], _CHUNK):
        output[:, :, start : start + _CHUNK] = _itk_layout(volume[start : start + _CHUNK])
    return output
