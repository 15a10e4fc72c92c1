"""The data fingerprint: what the training images look like, and why a new case is far outside them.

A case is summarised from its raw pixels and affine (:func:`case_summary`): spatial dims, sorted voxel spacing and
field of view in mm, slice count, orientation codes, modality, intensity percentiles and, for CT, the fractions of
voxels in Hounsfield-unit bins (:data:`HU_BINS`). The bins tell body regions apart: a chest CT holds a large share of
lung (air-filled tissue, -950 to -200 HU) among its body voxels, a head CT almost none and more bone.
:func:`build_fingerprint` keeps, per modality, the range (min, median, max) of each number over the training cases;
:func:`case_flags` names what a new case has outside those ranges widened by tolerances (``dims``, ``modality``,
``spacing``, ``size``, ``intensity``). The ranges are plain min/max because training sets may be small; the tolerances
are wide on purpose, so that a flag means "far outside", not "unusual".
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from nibabel.orientations import aff2axcodes

__all__ = [
    "FINGERPRINT_VERSION",
    "HU_BINS",
    "TOLERANCE",
    "build_fingerprint",
    "case_flags",
    "case_summary",
    "load_fingerprint",
    "modality_group",
]

FINGERPRINT_VERSION = 1

#: Voxels below this HU are the air around the body; the other bins are fractions of the voxels above it.
_AIR_HU = -950.0

#: Hounsfield-unit bins of body voxels: lung (air-filled tissue), fat, soft tissue (muscle, organs, blood, brain) and
#: bone (and contrast); lower bound included, upper bound excluded.
HU_BINS: dict[str, tuple[float, float]] = {
    "lung": (_AIR_HU, -200.0),
    "fat": (-200.0, -20.0),
    "soft_tissue": (-20.0, 200.0),
    "bone": (200.0, math.inf),
}

#: How far outside the training range a case must be to be flagged: ``ratio`` for spacing, field of view and slice
#: count (outside ``[min / ratio, max * ratio]``), ``intensity_ratio`` for the intensity range of non-CT images,
#: ``fraction`` (absolute) for the HU-bin fractions of CT.
TOLERANCE: dict[str, float] = {"ratio": 1.5, "intensity_ratio": 2.0, "fraction": 0.1}

#: Modalities that are one kind of image for a model (DICOM names of X-ray radiography).
_ALIASES: dict[str, str] = {"CR": "XRAY", "DX": "XRAY", "DR": "XRAY", "RG": "XRAY", "PX": "XRAY"}

#: Values kept from each case for the intensity histogram of the data check (a strided subsample).
_SAMPLE_SIZE = 4096

#: Values a summary's percentiles and fractions are computed from, at most (a strided subsample of big volumes).
_MAX_VALUES = 250_000


def modality_group(modality: str | None) -> str | None:
    """The group a modality name belongs to for comparisons: DICOM X-ray names (``CR``, ``DX``...) are one group.

    Args:
        modality: a DICOM modality (``"CT"``, ``"CR"``...) or a datalist's (``"RGB"``), any case; None if unknown.

    Returns:
        the upper-case group name, or None.
    """
    if not modality:
        return None
    name = str(modality).strip().upper()
    return _ALIASES.get(name, name)


def _spatial_affine(affine: Any, spatial_dims: int) -> np.ndarray:
    if affine is None:
        return np.eye(spatial_dims + 1)
    return np.asarray(affine.detach().cpu() if hasattr(affine, "detach") else affine, dtype=np.float64)


def case_summary(
    image: Any,
    *,
    affine: Any = None,
    channel_dim: int | None = None,
    modality: str | None = None,
    sample: bool = False,
) -> dict[str, Any]:
    """Summarise one image from its raw pixels (HU for CT) and affine.

    Percentiles and fractions come from at most 250 000 values (a strided subsample of bigger images).

    Args:
        image: the pixels (numpy array or tensor), spatial axes in the order of the affine's columns.
        affine: the voxel-to-world affine (mm); None means 1 mm voxels.
        channel_dim: the channel axis of ``image`` (e.g. 0 after ``EnsureChannelFirst``, -1 for RGB from
            ``PILReader``); None when it has none.
        modality: the modality, when known (DICOM ``Modality``, or the datalist's).
        sample: also return a strided subsample of the values under ``"sample"`` (for histograms; not JSON).

    Returns:
        ``{"spatial_dims", "shape", "channels", "spacing", "fov", "slices", "orientation", "modality",
        "intensity": {"p1", "p50", "p99", "mean"}, "hu_bins": {"air", "lung", "fat", "soft_tissue", "bone"}}``;
        spacing and field of view (mm) are sorted ascending so that they do not depend on the axis order; the slice
        count (3D) is the size along the axis of largest spacing.
    """
    array = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image)
    if channel_dim is not None:
        array = np.moveaxis(array, channel_dim, 0)
    channels = int(array.shape[0]) if channel_dim is not None else 1
    full_shape = [int(n) for n in (array.shape[1:] if channel_dim is not None else array.shape)]
    axes = list(range(len(full_shape)))
    if len(axes) > 2:  # a one-slice volume (C, W, H, 1) is a 2D image, as To2D makes it
        axes = [i for i in axes if full_shape[i] > 1] if sum(n > 1 for n in full_shape) >= 2 else axes
    matrix = _spatial_affine(affine, len(full_shape))
    columns = np.linalg.norm(matrix[:-1, : matrix.shape[1] - 1], axis=0)
    all_spacing = [float(columns[i]) if i < columns.size and columns[i] > 0 else 1.0 for i in axes]
    try:
        codes = aff2axcodes(matrix)
        orientation = "".join(str(codes[i]) for i in axes if i < len(codes))
    except (ValueError, IndexError):
        orientation = ""
    shape = [full_shape[i] for i in axes]
    spatial_dims = len(shape)
    spacing = np.asarray(all_spacing)
    slice_axis = spatial_dims - 1 - int(np.argmax(spacing[::-1])) if spatial_dims == 3 else None
    values = array.ravel(order="K")  # memory order: no copy
    values = values[:: max(1, values.size // _MAX_VALUES)].astype(np.float32, copy=False)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        finite = np.zeros(1, dtype=np.float32)
    p1, p50, p99 = (float(v) for v in np.percentile(finite, [1, 50, 99]))
    body = finite[finite >= _AIR_HU]
    bins = {"air": float(1.0 - body.size / finite.size)}
    for name, (low, high) in HU_BINS.items():
        bins[name] = float(np.count_nonzero((body >= low) & (body < high)) / body.size) if body.size else 0.0
    summary: dict[str, Any] = {
        "spatial_dims": spatial_dims,
        "shape": shape,
        "channels": channels,
        "spacing": sorted(float(s) for s in spacing),
        "fov": sorted(float(s * n) for s, n in zip(spacing, shape)),
        "slices": None if slice_axis is None else int(shape[slice_axis]),
        "orientation": orientation,
        "modality": str(modality).upper() if modality else None,
        "intensity": {"p1": p1, "p50": p50, "p99": p99, "mean": float(finite.mean())},
        "hu_bins": bins,
    }
    if sample:
        step = max(1, finite.size // _SAMPLE_SIZE)
        summary["sample"] = finite[::step][:_SAMPLE_SIZE].copy()
    return summary


def _range(values: Sequence[Any]) -> dict[str, Any]:
    """``{"min", "median", "max"}`` of numbers, or element-wise of equal-length lists."""
    array = np.asarray(values, dtype=np.float64)
    return {k: np.round(f(array, axis=0), 6).tolist() for k, f in (("min", np.min), ("median", np.median),
                                                                   ("max", np.max))}


def _counts(values: Iterable[Any]) -> dict[str, int]:
    return dict(sorted(Counter(map(str, values)).items()))


def _group(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    dims = sorted({int(s["spatial_dims"]) for s in summaries})
    group: dict[str, Any] = {
        "n_cases": len(summaries),
        "spatial_dims": dims,
        "channels": sorted({int(s["channels"]) for s in summaries}),
        "orientation": _counts(s["orientation"] for s in summaries),
        "intensity": {k: _range([s["intensity"][k] for s in summaries]) for k in ("p1", "p50", "p99", "mean")},
        "intensity_range": _range([s["intensity"]["p99"] - s["intensity"]["p1"] for s in summaries]),
        "hu_bins": {k: _range([s["hu_bins"][k] for s in summaries]) for k in ("air", *HU_BINS)},
    }
    if len(dims) == 1:  # spacing and size compare only between images of the same dimensionality
        group["spacing"] = _range([s["spacing"] for s in summaries])
        group["fov"] = _range([s["fov"] for s in summaries])
        group["shape"] = _range([sorted(s["shape"]) for s in summaries])
        slices = [s["slices"] for s in summaries if s["slices"] is not None]
        group["slices"] = _range(slices) if slices else None
    return group


def build_fingerprint(summaries: Sequence[Mapping[str, Any]], *, modality: str | None = None,
                      tolerance: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The fingerprint of a set of training cases: per modality group, the range of each summary number.

    Args:
        summaries: :func:`case_summary` results of the training cases.
        modality: the modality of cases whose own summary names none (e.g. the datalist's ``"CT"`` for NIfTI).
        tolerance: overrides of :data:`TOLERANCE`, stored with the fingerprint.

    Returns:
        ``{"version", "n_cases", "modalities": {group: {...ranges...}}, "tolerance"}`` (plain JSON).

    Raises:
        ValueError: no summaries.
    """
    if not summaries:
        raise ValueError("a fingerprint needs at least one case")
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for summary in summaries:
        name = modality_group(summary.get("modality") or modality) or "UNKNOWN"
        groups.setdefault(name, []).append(summary)
    return {
        "version": FINGERPRINT_VERSION,
        "n_cases": len(summaries),
        "modalities": {name: _group(group) for name, group in sorted(groups.items())},
        "tolerance": {**TOLERANCE, **dict(tolerance or {})},
    }


def load_fingerprint(fingerprint: str | os.PathLike | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A fingerprint from a JSON file or a dictionary.

    Args:
        fingerprint: the ``data_fingerprint.json`` path, the dictionary itself, or None.

    Returns:
        the fingerprint, or None when ``fingerprint`` is None or the file does not exist.

    Raises:
        ValueError: the file or dictionary is not a fingerprint (``<path>: <problem>``).
    """
    if fingerprint is None:
        return None
    where = "fingerprint"
    if isinstance(fingerprint, (str, os.PathLike)):
        path = Path(fingerprint)
        if not path.is_file():
            return None
        where = str(path)
        try:
            fingerprint = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not a JSON file ({error})") from error
    table = fingerprint.get("modalities") if isinstance(fingerprint, Mapping) else None
    if not table or not all(isinstance(group, Mapping) for group in table.values()):
        raise ValueError(f"{where}: not a data fingerprint (no 'modalities' table)")
    return dict(fingerprint)


def _reference(case: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The fingerprint group a case is compared with: its modality's, else the only one, else the first one of its
    dimensionality, else the first one."""
    groups = fingerprint["modalities"]
    name = modality_group(case.get("modality"))
    if name in groups:
        return name, groups[name]
    same_dims = [(k, g) for k, g in groups.items() if case["spatial_dims"] in g["spatial_dims"]]
    return (same_dims or list(groups.items()))[0]


def _outside_ratio(values: Sequence[float], ref: Mapping[str, Any] | None, ratio: float) -> bool:
    if ref is None:
        return False
    low, high = np.atleast_1d(ref["min"]), np.atleast_1d(ref["max"])
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if values.shape != low.shape:
        return False
    return bool(np.any(values < low / ratio) or np.any(values > high * ratio))


def case_flags(case: Any, fingerprint: Mapping[str, Any], *, modality: str | None = None) -> list[str]:
    """Name what puts a case far outside the training data's fingerprint.

    Flags: ``dims`` (2D vs 3D), ``modality`` (a modality the model was not trained on), ``spacing`` (voxel spacing
    outside the training range widened by ``ratio``), ``size`` (field of view or slice count likewise),
    ``intensity`` (CT: a body HU-bin fraction outside the training range by more than ``fraction``, e.g. a head CT
    given to a chest model; other modalities: the 1-99 % intensity range outside the training range widened by
    ``intensity_ratio``, e.g. an 8-bit picture given to a model trained on 12-bit radiographs).

    Args:
        case: a :func:`case_summary` result, or a loaded channel-first image (MONAI ``MetaTensor``, raw values,
            its ``affine`` and, for DICOM, ``Modality`` in its metadata).
        fingerprint: a :func:`build_fingerprint` result (see :func:`load_fingerprint`).
        modality: the case's modality when the image does not say.

    Returns:
        the flags, in the order above; empty for a case like the training ones.
    """
    if not isinstance(case, Mapping):
        meta = getattr(case, "meta", {}) or {}
        affine = getattr(case, "affine", None)
        affine = meta.get("affine") if affine is None else affine
        case = case_summary(case, affine=affine, channel_dim=0, modality=meta.get("Modality") or modality)
    elif modality and not case.get("modality"):
        case = {**case, "modality": modality}
    tolerance = {**TOLERANCE, **dict(fingerprint.get("tolerance") or {})}
    name, group = _reference(case, fingerprint)
    flags = []
    if case["spatial_dims"] not in group["spatial_dims"]:
        flags.append("dims")
    own = modality_group(case.get("modality"))
    if own is not None and own not in fingerprint["modalities"] and "UNKNOWN" not in fingerprint["modalities"]:
        flags.append("modality")
    if "dims" not in flags:
        if _outside_ratio(case["spacing"], group.get("spacing"), tolerance["ratio"]):
            flags.append("spacing")
        slices = group.get("slices")
        if _outside_ratio(case["fov"], group.get("fov"), tolerance["ratio"]) or (
            slices is not None and case.get("slices") is not None
            and _outside_ratio([case["slices"]], slices, tolerance["ratio"])
        ):
            flags.append("size")
    if name == "CT":
        margin = tolerance["fraction"]
        ref = group["hu_bins"]
        if any(case["hu_bins"][k] < ref[k]["min"] - margin or case["hu_bins"][k] > ref[k]["max"] + margin
               for k in HU_BINS):
            flags.append("intensity")
    else:
        spread = case["intensity"]["p99"] - case["intensity"]["p1"]
        if _outside_ratio([max(spread, 1e-6)], group["intensity_range"], tolerance["intensity_ratio"]):
            flags.append("intensity")
    return flags
