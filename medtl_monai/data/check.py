"""Check a datalist before training: class counts per split, patient overlap, duplicate images, image summaries.

:func:`check_datalist` reads every image of a datalist once (header and pixels, through
:class:`~medtl_monai.io.MedicalImageReader`) and returns a :class:`DataCheckReport`:

- errors: a split without cases of a class (its AUROC is undefined; a training split cannot learn the class), an
  empty training or validation split, a patient in two splits, a label outside the class list, an unreadable image;
- warnings: identical pixel data in two cases (listed in pairs), no test split;
- per split: cases, patients, class counts, modality, dims, spacing, field of view, slices, orientation, intensity
  and (CT) HU-bin summaries;
- the :mod:`fingerprint <medtl_monai.data.fingerprint>` of the training split.

With an output folder it writes ``data_check.md`` (the report), ``data_check.png`` (intensity histograms per split),
``data_fingerprint.json`` and ``data_check.json`` (the report, keyed for the cache). :func:`check_before_training`
is the bundles' entry point: it reuses the saved report while the datalist and its images are unchanged (same
SHA-256 of the datalist, same sizes and modification times of the image files), so a second training start does not
read the images again, and raises :class:`DataCheckError` on an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
from monai.data.image_reader import ImageReader

from ..io import BadCaseError, MedicalImageReader
from .check_report import CHECK_FILES, CHECK_VERSION, DataCheckError, DataCheckReport, write_check
from .datalist import SPLIT_KEYS, read_class_names
from .fingerprint import HU_BINS, build_fingerprint, case_summary

__all__ = ["CHECK_FILES", "DataCheckError", "DataCheckReport", "cache_key", "check_before_training",
           "check_datalist", "write_check"]

logger = logging.getLogger("medtl_monai.data")

_FIX_SPLITS = ("make the splits again with other fractions or another seed (e.g. `python scripts/make_datalist.py "
               "... --fractions 0.6 0.2 0.2 --seed 1`)")
_MAX_LISTED = 10


def _images(item: Mapping[str, Any], base: Path) -> list[Path]:
    value = item.get("image")
    values = value if isinstance(value, (list, tuple)) else [value]
    return [p if p.is_absolute() else base / p for p in (Path(os.fspath(v)) for v in values if v not in (None, ""))]


def _read_datalist(datalist: Path) -> dict[str, Any]:
    try:
        return json.loads(datalist.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{datalist}: not a JSON file ({error})") from error


def _label_counts(label: Any, class_names: Sequence[str]) -> np.ndarray:
    """One count per class for a label (index, name or multi-hot list); raises ValueError naming the problem."""
    n = len(class_names)
    counts = np.zeros(n, dtype=np.int64)
    if isinstance(label, str):
        if label not in class_names:
            raise ValueError(f"label {label!r} is not in the class list {list(class_names)}")
        counts[list(class_names).index(label)] = 1
    elif isinstance(label, (list, tuple)):
        values = np.asarray(label, dtype=np.float64).ravel()
        if values.size != n or not np.all(np.isin(values, (0.0, 1.0, -1.0))):
            raise ValueError(f"multi-label {list(label)} is not one value per class {list(class_names)} (1, 0, or -1 "
                             "for uncertain)")
        counts += (values == 1.0).astype(np.int64)  # an uncertain finding (-1) is not counted as present
    elif isinstance(label, (Integral, Real)) and not isinstance(label, bool) and float(label).is_integer():
        if not 0 <= int(label) < n:
            raise ValueError(f"label index {int(label)} is not in the class list ({n} classes: {list(class_names)})")
        counts[int(label)] = 1
    else:
        raise ValueError(f"label {label!r} is missing or not a class index, name or multi-hot list")
    return counts


def _infer_class_names(doc: Mapping[str, Any]) -> list[str]:
    labels = [item.get("label") for key in SPLIT_KEYS for item in doc.get(key) or ()]
    lengths = {len(v) for v in labels if isinstance(v, (list, tuple))}
    if lengths:
        return [str(i) for i in range(max(lengths))]
    names = sorted({v for v in labels if isinstance(v, str)})
    if names:
        return names
    ints = [int(v) for v in labels if isinstance(v, (Integral, Real)) and not isinstance(v, bool)]
    return [str(i) for i in range(max(ints) + 1)] if ints else []


def _read_case(reader: ImageReader, paths: Sequence[Path]) -> tuple[np.ndarray, dict]:
    """Pixels and metadata of one case (several paths are stacked as channels by the reader)."""
    target = [os.fspath(p) for p in paths]
    return reader.get_data(reader.read(target if len(target) > 1 else target[0]))


def _channel_dim(meta: Mapping[str, Any], n_paths: int) -> int | None:
    if n_paths > 1:
        return 0
    channel = meta.get("original_channel_dim", float("nan"))
    return None if channel is None or (isinstance(channel, float) and np.isnan(channel)) else int(channel)


def _median(values: Sequence[Any], digits: int = 2) -> Any:
    if not values:
        return ""
    median = np.median(np.asarray(values, dtype=np.float64), axis=0)
    return np.round(median, digits).tolist()


def _counts_text(values: Sequence[Any]) -> str:
    counts: dict[str, int] = {}
    for v in values:
        counts[str(v)] = counts.get(str(v), 0) + 1
    return ", ".join(f"{k} ({c})" if len(counts) > 1 else k for k, c in sorted(counts.items()))


def _split_summary(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The table row of one split (medians over its cases)."""
    if not summaries:
        return {}
    dims = {s["spatial_dims"] for s in summaries}
    slices = [s["slices"] for s in summaries if s["slices"] is not None]
    row: dict[str, Any] = {
        "modality": _counts_text([s["modality"] or "?" for s in summaries]),
        "dims": _counts_text([f"{s['spatial_dims']}D" for s in summaries]),
        "orientation": _counts_text([s["orientation"] for s in summaries]),
        "slices": f"{min(slices)}-{max(slices)}" if slices else "",
        "intensity": " / ".join(str(v) for v in _median([[s["intensity"][k] for k in ("p1", "p50", "p99")]
                                                         for s in summaries], 1)),
    }
    if len(dims) == 1:
        row["spacing"] = _median([s["spacing"] for s in summaries])
        row["fov"] = _median([s["fov"] for s in summaries], 0)
    if any((s["modality"] or "").upper() == "CT" for s in summaries):
        row["hu_bins"] = " / ".join(str(v) for v in _median([[s["hu_bins"][k] for k in HU_BINS] for s in summaries]))
    return row


def _duplicate_warnings(hashes: Mapping[str, list[tuple[str, str]]]) -> list[str]:
    """One warning per pair of cases with identical pixel data (the first case against each other one)."""
    pairs = [(group[0], other) for group in hashes.values() if len(group) > 1 for other in group[1:]]
    across = [(a, b) for a, b in pairs if a[0] != b[0]]
    within = [(a, b) for a, b in pairs if a[0] == b[0]]
    out = []
    for title, found in (("across splits (the model is evaluated on images it trained on)", across),
                         ("within a split", within)):
        if found:
            listed = "; ".join(f"{sa} {pa} = {sb} {pb}" for (sa, pa), (sb, pb) in found[:_MAX_LISTED])
            more = f"; and {len(found) - _MAX_LISTED} more" if len(found) > _MAX_LISTED else ""
            out.append(f"{len(found)} pair(s) of cases with identical pixel data {title}: {listed}{more}")
    return out


def _class_errors(where: str, split: str, counts: Sequence[int], class_names: Sequence[str]) -> list[str]:
    missing = [name for name, count in zip(class_names, counts) if count == 0]
    if not missing or sum(counts) == 0:
        return []
    have = ", ".join(f"{n}: {c}" for n, c in zip(class_names, counts))
    why = ("the model cannot learn a class it never sees" if split == "training"
           else "its AUROC is undefined (nan) and no best model can be chosen" if split == "validation"
           else "its AUROC is undefined (nan)")
    names = ", ".join(map(repr, missing))
    return [(f"{where}: the {split} split has no case of class {names} ({have}); {why}. "
             f"Fix: add cases of {names} to it, or {_FIX_SPLITS}.")]


def _overlap_errors(where: str, owners: Mapping[str, set[str]]) -> list[str]:
    """An error naming the patients found in more than one split (none when there are none)."""
    shared = sorted(p for p, splits in owners.items() if len(splits) > 1)
    if not shared:
        return []
    listed = ", ".join(f"{p} ({'/'.join(s for s in SPLIT_KEYS if s in owners[p])})" for p in shared[:_MAX_LISTED])
    more = f" and {len(shared) - _MAX_LISTED} more" if len(shared) > _MAX_LISTED else ""
    return [(f"{where}: {len(shared)} patient(s) are in more than one split: {listed}{more}; a model would be "
             "evaluated on patients it trained on. Fix: split by patient (scripts/make_datalist.py does) or correct "
             "the patient_id values.")]


def _summarise(reader: ImageReader, paths: Sequence[Path], modality: str | None
               ) -> tuple[dict[str, Any], np.ndarray, str]:
    """Read one case once: its summary, an intensity sample, and the hash of its pixel data.

    Raises:
        BadCaseError: the case cannot be read (naming the file).
    """
    try:
        array, meta = _read_case(reader, paths)
    except BadCaseError:
        raise
    except Exception as error:  # any reader failure is a bad case, reported by name
        raise BadCaseError(paths[0], f"cannot be read ({type(error).__name__}: {error})") from error
    summary = case_summary(array, affine=meta.get("affine"), channel_dim=_channel_dim(meta, len(paths)),
                           modality=meta.get("Modality") or modality, sample=True)
    digest = hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=16)
    digest.update(repr(array.shape).encode())
    return summary, summary.pop("sample"), digest.hexdigest()


def _check(path: Path, class_names: Sequence[str] | None, reader: ImageReader | None
           ) -> tuple[DataCheckReport, dict[str, list[np.ndarray]]]:
    """The check itself; also returns the intensity samples of each split for the histogram."""
    start = time.perf_counter()
    doc = _read_datalist(path)
    names = list(class_names) if class_names else read_class_names(path, default=()) or _infer_class_names(doc)
    modality = (doc.get("modality") or {}).get("0") if isinstance(doc.get("modality"), Mapping) else doc.get("modality")
    reader = reader if reader is not None else MedicalImageReader()
    report = DataCheckReport(datalist=str(path), class_names=names)
    where = str(path)
    base = path.parent
    owners: dict[str, set[str]] = {}
    hashes: dict[str, list[tuple[str, str]]] = {}
    summaries: dict[str, list[dict]] = {}
    samples: dict[str, list[np.ndarray]] = {}
    for split in SPLIT_KEYS:
        items = doc.get(split) or []
        counts = np.zeros(len(names), dtype=np.int64)
        patients: set[str] = set()
        summaries[split], samples[split] = [], []
        for index, item in enumerate(items):
            paths = _images(item, base)
            case = os.fspath(paths[0]) if paths else f"{where}, {split} item {index}"
            patient = str(item.get("patient_id") or item.get("id") or case)
            patients.add(patient)
            owners.setdefault(patient, set()).add(split)
            try:
                counts += _label_counts(item.get("label"), names)
            except ValueError as error:
                report.errors.append(f"{case}: {error}")
            if not paths:
                report.errors.append(f"{case}: the datalist entry has no 'image'")
                continue
            try:
                summary, sample, digest = _summarise(reader, paths, modality)
            except BadCaseError as error:
                report.errors.append(str(error))
                continue
            samples[split].append(sample)
            summaries[split].append(summary)
            hashes.setdefault(digest, []).append((split, case))
        report.splits[split] = {"n_cases": len(items), "n_patients": len(patients),
                                "class_counts": counts.tolist(), "summary": _split_summary(summaries[split])}
        if not items and split != "test":
            report.errors.append(f"{where}: the {split} split is empty. Fix: {_FIX_SPLITS}.")
        elif not items:
            report.warnings.append(f"{where}: the test split is empty; evaluation (evaluate.json) has nothing to score.")
        else:
            report.errors += _class_errors(where, split, counts.tolist(), names)
    report.errors += _overlap_errors(where, owners)
    report.warnings += _duplicate_warnings(hashes)
    if summaries["training"]:
        report.fingerprint = {**build_fingerprint(summaries["training"], modality=modality),
                              "datalist": str(path), "class_names": names}
    report.seconds = round(time.perf_counter() - start, 3)
    return report, samples


def check_datalist(datalist: str | os.PathLike, *, class_names: Sequence[str] | None = None,
                   output_dir: str | os.PathLike | None = None, reader: ImageReader | None = None) -> DataCheckReport:
    """Check a datalist: read every image once, count, compare, summarise (see the module docstring).

    Args:
        datalist: the datalist JSON (image paths relative to its folder, or absolute).
        class_names: the classes in index order; default the datalist's (else inferred from the labels).
        output_dir: write the report's files there (see :data:`CHECK_FILES`); None writes nothing.
        reader: the image reader; default :class:`~medtl_monai.io.MedicalImageReader`.

    Returns:
        the report (errors do not raise here; see :attr:`DataCheckReport.ok`).

    Raises:
        FileNotFoundError: the datalist does not exist.
        ValueError: the datalist is not JSON.
    """
    path = Path(datalist)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: datalist does not exist")
    report, samples = _check(path, class_names, reader)
    if output_dir is not None:
        write_check(report, output_dir, samples, cache_key=cache_key(path, class_names))
    return report


def _file_stats(path: Path) -> list[Any]:
    """Size and modification time of a file, or of every file under a folder (no file is opened)."""
    if path.is_dir():
        return [[os.path.relpath(os.path.join(folder, f), path), *_file_stats(Path(folder) / f)]
                for folder, _dirs, files in sorted(os.walk(path)) for f in sorted(files)]
    try:
        stat = path.stat()
    except OSError:
        return [None]
    return [stat.st_size, stat.st_mtime_ns]


def cache_key(datalist: str | os.PathLike, class_names: Sequence[str] | None = None) -> str:
    """The key of a check: SHA-256 of the datalist's bytes, its image files' sizes and modification times, the class
    names and the check's version.

    Args:
        datalist: the datalist JSON.
        class_names: the classes the check was asked for.

    Returns:
        a hex SHA-256 digest.
    """
    path = Path(datalist)
    raw = path.read_bytes()
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError:
        doc = {}
    files = [[os.fspath(p), _file_stats(p)] for key in SPLIT_KEYS for item in doc.get(key) or ()
             for p in _images(item, path.parent)]
    record = {"version": CHECK_VERSION, "datalist": hashlib.sha256(raw).hexdigest(), "files": files,
              "class_names": list(class_names or ())}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _cached(output_dir: Path, key: str) -> DataCheckReport | None:
    saved = output_dir / "data_check.json"
    if not saved.is_file() or not (output_dir / "data_check.md").is_file():
        return None
    try:
        data = json.loads(saved.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("cache_key") != key or data.get("version") != CHECK_VERSION:
        return None
    if data.get("fingerprint") is not None and not (output_dir / "data_fingerprint.json").is_file():
        return None
    return DataCheckReport.from_dict(data, from_cache=True)


def check_before_training(datalist: str | os.PathLike, output_dir: str | os.PathLike,
                          class_names: Sequence[str] | None = None, *,
                          reader: ImageReader | None = None) -> DataCheckReport | None:
    """The data check at the start of training, cached: log the warnings, raise on an error.

    A bundle calls it from its ``initialize`` list, writing into the model folder (so that ``data_fingerprint.json``
    sits beside ``model.pt``)::

        "$medtl_monai.data.check_before_training(@datalist, @ckpt_dir, @class_names) if @check_data else None"

    The saved report is reused while the datalist and its image files are unchanged (see :func:`cache_key`).

    Args:
        datalist: the datalist JSON; when it does not exist nothing is checked (the workflow's own steps say how
            to make it).
        output_dir: the folder for the report's files (the bundle's ``ckpt_dir``).
        class_names: the classes in index order; default the datalist's.
        reader: the image reader; default :class:`~medtl_monai.io.MedicalImageReader`.

    Returns:
        the report, or None when the datalist does not exist.

    Raises:
        DataCheckError: the check found errors; the message lists them and names the report.
    """
    path = Path(datalist)
    if not path.is_file():
        logger.debug("data check skipped: %s does not exist", path)
        return None
    out = Path(output_dir)
    key = cache_key(path, class_names)
    report = _cached(out, key)
    if report is None:
        report, samples = _check(path, class_names, reader)
        write_check(report, out, samples, cache_key=key)
        logger.info("data check of %s: %d error(s), %d warning(s) in %.1f s; report %s", path, len(report.errors),
                    len(report.warnings), report.seconds, out / "data_check.md")
    else:
        logger.info("data check of %s: unchanged data, saved report %s reused", path, out / "data_check.md")
    for warning in report.warnings:
        logger.warning("data check: %s", warning)
    if report.errors:
        listed = "\n".join(f"  - {e}" for e in report.errors[:_MAX_LISTED])
        if len(report.errors) > _MAX_LISTED:
            listed += f"\n  - ... and {len(report.errors) - _MAX_LISTED} more (see the report)"
        raise DataCheckError(f"{path}: the data check found {len(report.errors)} error(s):\n{listed}\n"
                             f"Report: {out / 'data_check.md'}. Fix the data, or train anyway with --check_data false.")
    return report
