"""Bad-case checks: a transform that rejects unusable images, and a datalist validator that raises or skips."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.image_reader import ImageReader
from monai.transforms import LoadImage, MapTransform, Transform
from monai.utils import ImageMetaKey

from .errors import BadCaseError, find_bad_case_error
from .readers import MedicalImageReader

__all__ = ["CheckImage", "CheckImaged", "validate_datalist"]

logger = logging.getLogger("medtl_monai.data")


class CheckImage(Transform):
    """Raise :class:`~medtl_monai.data.errors.BadCaseError` for an image no model should see; else pass it on.

    Checks, in order: the number of spatial dimensions, the number of channels (a 4D time series loaded where a
    3D image is expected shows up as several channels), emptiness, non-finite values, and constant images. The
    error names ``filename_or_obj`` from the image's metadata.

    Note that inside ``Compose``/``Dataset`` MONAI re-raises transform errors as ``RuntimeError`` chained to the
    original; :func:`~medtl_monai.data.errors.find_bad_case_error` recovers it.

    Args:
        expected_spatial_dims: required number of spatial dimensions (None: any).
        expected_channels: required number of channels (None: any).
        channel_first: whether the image has a leading channel axis (as after ``EnsureChannelFirst`` or
            ``LoadImage(ensure_channel_first=True)``); if False the whole shape is spatial.
        check_finite: reject NaN or infinite values.
        check_constant: reject images whose values are all equal.
    """

    def __init__(
        self,
        *,
        expected_spatial_dims: int | None = 3,
        expected_channels: int | None = 1,
        channel_first: bool = True,
        check_finite: bool = True,
        check_constant: bool = True,
    ) -> None:
        self.expected_spatial_dims = expected_spatial_dims
        self.expected_channels = expected_channels
        self.channel_first = channel_first
        self.check_finite = check_finite
        self.check_constant = check_constant

    def __call__(self, img: Any, filename: str | os.PathLike | None = None) -> Any:
        """Check ``img`` and return it unchanged.

        Args:
            img: an array or tensor (a ``MetaTensor`` provides the file name).
            filename: the name to report; defaults to ``img.meta["filename_or_obj"]``.

        Raises:
            BadCaseError: the image has the wrong dimensionality or channel count, is empty, holds NaN/inf
                values, or is constant.
        """
        if filename is None:
            meta = img.meta if isinstance(img, MetaTensor) else {}
            filename = meta.get(ImageMetaKey.FILENAME_OR_OBJ, "<unnamed image>")
        data = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
        shape = tuple(data.shape)
        spatial = shape[1:] if self.channel_first else shape
        channels = shape[0] if self.channel_first and shape else 1
        if self.expected_spatial_dims is not None and len(spatial) != self.expected_spatial_dims:
            raise BadCaseError(
                filename,
                f"wrong dimensionality: {len(spatial)}D image (spatial shape {spatial}), expected "
                f"{self.expected_spatial_dims}D",
            )
        if self.expected_channels is not None and channels != self.expected_channels:
            raise BadCaseError(
                filename,
                f"wrong dimensionality: {channels} channels or frames (shape {shape}), expected "
                f"{self.expected_channels}; a {len(spatial) + 1}D file (e.g. a time series) where "
                f"{len(spatial)}D is expected?",
            )
        if data.numel() == 0:
            raise BadCaseError(filename, f"empty image (shape {shape})")
        if self.check_finite and data.is_floating_point():
            finite = torch.isfinite(data)
            if not bool(finite.all()):
                n_nan = int(torch.isnan(data).sum())
                raise BadCaseError(
                    filename, f"non-finite values: {n_nan} NaN and {int((~finite).sum()) - n_nan} infinite voxels"
                )
        if self.check_constant:
            low, high = torch.aminmax(data)
            if bool(low == high):
                raise BadCaseError(filename, f"constant image: every voxel equals {float(low):g}")
        return img


class CheckImaged(MapTransform):
    """Dictionary version of :class:`CheckImage`.

    Args:
        keys: keys of the images to check.
        allow_missing_keys: do not raise when a key is absent.
        kwargs: the arguments of :class:`CheckImage`.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs: Any) -> None:
        super().__init__(keys, allow_missing_keys)
        self.checker = CheckImage(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Check every image under ``keys``; return the data unchanged."""
        d = dict(data)
        for key in self.key_iterator(d):
            self.checker(d[key])
        return d


def _check_label(label: Any, class_names: Sequence[str] | None, label_key: str, where: str) -> None:
    if class_names is None:
        return
    names = list(class_names)
    if isinstance(label, str):
        if label not in names:
            raise BadCaseError(where, f"label '{label}' is not in the class list {names}")
        return
    if isinstance(label, (Integral, np.integer)) and not isinstance(label, bool):
        if not 0 <= int(label) < len(names):
            raise BadCaseError(
                where, f"label index {int(label)} is not in the class list ({len(names)} classes: {names})"
            )
        return
    if isinstance(label, (Sequence, np.ndarray, torch.Tensor)) and not isinstance(label, (str, bytes)):
        values = np.asarray(label, dtype=np.float64).ravel()
        if values.size != len(names):
            raise BadCaseError(
                where,
                f"multi-label '{label_key}' has {values.size} values, expected {len(names)} "
                f"(one 0/1 per class {names})",
            )
        if not np.all(np.isin(values, (0.0, 1.0))):
            raise BadCaseError(where, f"multi-label '{label_key}' must hold only 0/1 values, got {values.tolist()}")
        return
    if isinstance(label, Real) and float(label).is_integer():
        _check_label(int(label), class_names, label_key, where)
        return
    raise BadCaseError(where, f"label {label!r} is not in the class list {names}")


def _image_paths(case: Mapping, image_key: str, index: int) -> list[str]:
    if image_key not in case or case[image_key] in (None, "", []):
        raise BadCaseError(case.get("id", f"case {index}"), f"datalist entry has no '{image_key}'")
    value = case[image_key]
    values = value if isinstance(value, (list, tuple)) else [value]
    return [os.fspath(v) for v in values]


def _write_report(path: Path, rows: list[dict], n_cases: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["index", "id", "image", "file", "error", "problem"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        report = {"n_cases": n_cases, "n_good": n_cases - len(rows), "n_bad": len(rows), "bad_cases": rows}
        path.write_text(json.dumps(report, indent=2) + "\n")


def validate_datalist(
    datalist: Sequence[Mapping[str, Any]],
    *,
    image_key: str = "image",
    label_key: str | None = "label",
    class_names: Sequence[str] | None = None,
    reader: ImageReader | str | None = None,
    expected_spatial_dims: int | None = 3,
    expected_channels: int | None = 1,
    check_images: bool = True,
    skip_bad: bool = False,
    report_path: str | os.PathLike | None = None,
    id_key: str = "id",
) -> list[dict]:
    """Check every case of a datalist; raise on the first bad one, or skip the bad ones and report them.

    A case is bad when its image is missing from the entry or from disk, its label is absent or not in the class
    list (a name, an index, or for multi-label lists a 0/1 vector of one value per class), or its image cannot be
    loaded, has the wrong dimensionality or channel count, holds NaN/inf values, or is constant.

    Args:
        datalist: the cases, e.g. ``[{"image": "a.nii.gz", "label": "covid"}, ...]``.
        image_key: key of the image path (a path, or a list of paths stacked as channels).
        label_key: key of the label; None for unlabelled lists.
        class_names: the class list labels must belong to; None skips the label-value check.
        reader: the reader for ``LoadImage`` (an instance, a class or a name); default
            :class:`~medtl_monai.data.MedicalImageReader`.
        expected_spatial_dims: required number of spatial dimensions (None: any).
        expected_channels: required number of channels after ``EnsureChannelFirst`` (None: any).
        check_images: load and check every image (False: only existence and labels).
        skip_bad: return the good cases and report the bad ones instead of raising.
        report_path: where to write the bad cases in ``skip_bad`` mode: ``.csv`` gives a CSV table
            (index, id, image, file at fault, error type, problem), any other suffix a JSON document.
        id_key: key of an optional case identifier, copied into the report.

    Returns:
        the good cases, in their original order (all of them when none is bad).

    Raises:
        BadCaseError: the first bad case, unless ``skip_bad``.
    """
    if reader is None:
        reader = MedicalImageReader()
    loader = LoadImage(reader=reader, image_only=True, ensure_channel_first=True)
    checker = CheckImage(expected_spatial_dims=expected_spatial_dims, expected_channels=expected_channels)
    good: list[dict] = []
    bad_rows: list[dict] = []
    for index, case in enumerate(datalist):
        where = f"case {index}"
        try:
            paths = _image_paths(case, image_key, index)
            where = paths[0]
            for path in paths:
                if not os.path.exists(path):
                    raise BadCaseError(path, "file listed in the datalist does not exist")
            if label_key is not None:
                if label_key not in case:
                    raise BadCaseError(where, f"datalist entry has no '{label_key}'")
                _check_label(case[label_key], class_names, label_key, where)
            if check_images:
                try:
                    image = loader(paths if len(paths) > 1 else paths[0])
                except Exception as error:
                    found = find_bad_case_error(error)
                    if found is not None:
                        raise found from error
                    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
                    raise BadCaseError(where, f"cannot be loaded ({type(error).__name__}: {first_line})") from error
                checker(image, filename=where)
        except BadCaseError as error:
            if not skip_bad:
                raise
            logger.warning("skipping bad case %d (%s): %s", index, case.get(id_key, ""), error)
            bad_rows.append(
                {
                    "index": index,
                    "id": str(case.get(id_key, "")),
                    "image": where,
                    "file": error.path,
                    "error": type(error).__name__,
                    "problem": error.problem,
                }
            )
            continue
        good.append(dict(case))
    if skip_bad:
        if bad_rows:
            logger.warning("%d of %d cases are bad and were skipped", len(bad_rows), len(datalist))
        if report_path is not None:
            _write_report(Path(report_path), bad_rows, len(datalist))
            logger.info("bad-case report written to %s", report_path)
    return good
