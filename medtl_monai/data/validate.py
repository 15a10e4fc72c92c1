"""Check every case of a datalist before it is used: raise on the first bad case, or skip and report the bad ones."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data.image_reader import ImageReader
from monai.transforms import LoadImage

from ..io import BadCaseError, CheckImage, MedicalImageReader, find_bad_case_error

__all__ = ["validate_datalist"]

logger = logging.getLogger("medtl_monai.data")


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
