"""Turn a data set's own layout into datalist items (``{"id", "image", "label", "patient_id"}``).

Four source layouts are understood:

* ``bimcv``: the BIDS-like tree of BIMCV-COVID19+ (``sub-*/ses-*/mod-ct|mod-rx/sub-*_ses-*_..._ct|cr|dx.<ext>``
  plus JSON sidecars) with a labels table (TSV/CSV) keyed by subject and session, by an ``id`` such as
  ``sub-S0001_ses-E0001``, or by subject only (the label then holds for all of its sessions).
* ``csv``: a folder with one entry per case (a DICOM study folder, a NIfTI file, ...) plus a CSV ``id,label
  [,patient_id]``; the path of a case is ``root / pattern.format(id=...)`` with a few file extensions tried.
* ``folders``: one sub-folder per class, ``root/<class>/**/<image>`` (the layout of most public X-ray sets); the
  patient id comes from a regular expression on the image's path, else from the file's stem.
* ``chexpert``: a CheXpert-style table, one row per image with a ``Path`` column and one column per observation
  holding ``1`` / ``0`` / ``-1`` (uncertain) / blank (not mentioned, read as 0); the patient id comes from a column or
  from ``patientNNNNN`` in the path (:func:`chexpert_items`).

Every item is ``{"id", "image", "label", "patient_id"}``; ``label`` is the class index, or a multi-hot list of 0/1
for multi-label tasks (``chexpert``: 1 / 0 / -1 per observation). :func:`~medtl_monai.data.write_datalist` stores
them as a datalist JSON.
"""

from __future__ import annotations

import ast
import csv
import logging
import re
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from .cases import default_input_kinds, folder_cases

__all__ = ["CHEXPERT_META_COLUMNS", "MODALITY_DIRS", "bimcv_items", "chexpert_items", "chexpert_target", "csv_items",
           "encode_label", "folder_items", "infer_class_names", "read_table"]

logger = logging.getLogger(__name__)

#: BIMCV modality folder and accepted BIDS suffixes for each modality name used in this project.
MODALITY_DIRS: dict[str, tuple[str, tuple[str, ...]]] = {"ct": ("mod-ct", ("ct",)), "xray": ("mod-rx", ("cr", "dx"))}

_IMAGE_EXTS = (".nii.gz", ".nii", ".mha", ".nrrd", ".dcm", ".png", ".jpg", ".jpeg")
_SUBJECT_COLS = ("participant_id", "participant", "subject_id", "subject", "patient_id", "PatientID")
_SESSION_COLS = ("session_id", "session", "ses", "ReportID")


def read_table(path: str | PathLike) -> tuple[list[str], list[dict[str, str]]]:
    """Read a CSV (``,``) or TSV (``.tsv``: tab) table with a header row.

    Args:
        path: the table file.

    Returns:
        the column names and the rows as dictionaries of stripped strings.

    Raises:
        ValueError: if the file does not exist or has no header.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"labels table {path} does not exist")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        if not reader.fieldnames:
            raise ValueError(f"labels table {path} has no header row")
        columns = [c.strip() for c in reader.fieldnames]
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    return columns, rows


def _require_column(path: Path, columns: Sequence[str], name: str) -> None:
    if name not in columns:
        raise ValueError(f"{path}: missing column {name!r}; columns are {list(columns)}")


def _check_on_missing(on_missing: str) -> None:
    if on_missing not in ("error", "skip"):
        raise ValueError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")


def _first_column(columns: Sequence[str], candidates: Iterable[str]) -> str | None:
    return next((c for c in candidates if c in columns), None)


def _split_label(value: str, multi_label: bool) -> list[str]:
    """One label, or the names of a multi-label cell: ``"a|b"``, ``"a;b"`` or a Python/JSON list ``"['a', 'b']"``."""
    if not multi_label:
        return [value]
    if value.startswith("["):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, (list, tuple)):
            return [str(v).strip() for v in parsed if str(v).strip()]
    return [v.strip() for v in re.split(r"[|;]", value) if v.strip()]


def infer_class_names(values: Iterable[str], *, multi_label: bool = False) -> list[str]:
    """Sorted class names found in label cells (numerically when all of them are integers).

    Args:
        values: raw label cells.
        multi_label: cells may hold several names (see :func:`encode_label`).

    Returns:
        the sorted distinct names.
    """
    names = {name for v in values for name in _split_label(v, multi_label)}
    if names and all(re.fullmatch(r"-?\d+", n) for n in names):
        return sorted(names, key=int)
    return sorted(names)


def encode_label(value: str, class_names: Sequence[str], *, multi_label: bool = False,
                 where: str = "") -> int | list[int]:
    """Turn a label cell into a class index, or a multi-hot list for multi-label tasks.

    Args:
        value: the cell; for multi-label, names separated by ``|`` or ``;`` or a list literal (empty: no class).
        class_names: the classes, in index order.
        multi_label: return a multi-hot list of length ``len(class_names)``.
        where: file and row, for error messages.

    Returns:
        the index, or the multi-hot list.

    Raises:
        ValueError: if a name is not in ``class_names`` (or a single-label cell is empty).
    """
    index = {name: i for i, name in enumerate(class_names)}
    names = _split_label(value, multi_label)
    unknown = [n for n in names if n not in index]
    if unknown or (not multi_label and not value):
        raise ValueError(f"{where}: label {value!r} is not in the class list {list(class_names)}")
    if not multi_label:
        return index[names[0]]
    hot = [0] * len(class_names)
    for n in names:
        hot[index[n]] = 1
    return hot


def _entities(name: str) -> dict[str, str]:
    """BIDS entities (``key-value`` parts) of a file name, plus its ``suffix`` (last ``_`` part)."""
    stem = name
    for ext in _IMAGE_EXTS:
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    parts = stem.split("_")
    ents = dict(p.split("-", 1) for p in parts if "-" in p)
    ents["suffix"] = parts[-1] if "-" not in parts[-1] else ""
    ents["stem"] = stem
    return ents


def _strip(value: str, prefix: str) -> str:
    return value.removeprefix(prefix)


def _label_rows(labels: Path, rows: list[dict[str, str]], columns: Sequence[str]) -> dict[tuple[str, str | None], tuple[int, dict[str, str]]]:
    """Label rows keyed by ``(subject, session)``; the session is None for a subject-level label."""
    sub_col = _first_column(columns, _SUBJECT_COLS)
    ses_col = _first_column(columns, _SESSION_COLS)
    id_col = "id" if "id" in columns else None
    if sub_col is None and id_col is None:
        raise ValueError(f"{labels}: missing a subject column (one of {list(_SUBJECT_COLS)}) or an 'id' column; "
                         f"columns are {list(columns)}")
    table: dict[tuple[str, str | None], tuple[int, dict[str, str]]] = {}
    for line, row in enumerate(rows, start=2):
        if id_col is not None and row.get(id_col):
            ents = _entities(row[id_col])
            key = (ents.get("sub", _strip(row[id_col], "sub-")), ents.get("ses"))
        else:
            sub = _strip(row.get(sub_col or "", ""), "sub-")
            ses = _strip(row[ses_col], "ses-") if ses_col and row.get(ses_col) else None
            key = (sub, ses)
        table[key] = (line, row)
    return table


def _session_images(root: Path, modality: str, views: Sequence[str] | None) -> dict[tuple[str, str], list[Path]]:
    """Image files of one modality under ``root``, grouped by ``(subject, session)``, in name order."""
    mod_dir, suffixes = MODALITY_DIRS[modality]
    wanted_views = None if views is None else {v.lower() for v in views}
    by_session: dict[tuple[str, str], list[Path]] = {}
    for path in sorted(root.glob(f"**/sub-*/ses-*/{mod_dir}/*")):
        ents = _entities(path.name)
        if ents["suffix"] not in suffixes or not path.name.lower().endswith(_IMAGE_EXTS):
            continue
        if wanted_views is not None and ents.get("vp", "").lower() not in wanted_views:
            continue
        by_session.setdefault((ents.get("sub", ""), ents.get("ses", "")), []).append(path)
    return by_session


def bimcv_items(
    root: str | PathLike,
    labels: str | PathLike,
    *,
    modality: str = "ct",
    class_names: Sequence[str] | None = None,
    label_column: str = "label",
    multi_label: bool = False,
    views: Sequence[str] | None = None,
    on_missing: str = "error",
) -> tuple[list[dict[str, Any]], list[str]]:
    """List the labelled images of a BIMCV-COVID19+-like BIDS tree.

    Images are ``<root>/**/sub-<S>/ses-<E>/mod-ct|mod-rx/*_<suffix>.<ext>`` (suffix ``ct`` for CT, ``cr``/``dx`` for
    X-ray). The labels table is matched on its subject column (``participant_id``, ``participant``, ``subject``,
    ``PatientID``, ...) and session column (``session_id``, ``session``, ``ReportID``, ...), or on an ``id`` column
    such as ``sub-S0001_ses-E0001``; with a subject column only, the label holds for every session. ``sub-``/``ses-``
    prefixes are optional. Images without a label row are skipped (logged).

    The item ``id`` is ``sub-<S>_ses-<E>`` when the session holds one matching image, else the file's stem.

    Args:
        root: the dataset root.
        labels: the labels TSV/CSV.
        modality: ``"ct"`` or ``"xray"``.
        class_names: classes in index order; ``None`` infers them (sorted).
        label_column: the column holding labels.
        multi_label: labels are lists of names; items get multi-hot lists.
        views: keep only these X-ray view positions (BIDS ``vp-`` entity, e.g. ``("pa", "ap")``); ``None`` keeps all.
        on_missing: ``"error"`` or ``"skip"`` for label rows (with a session) that have no image.

    Returns:
        the items sorted by id, and the class names.

    Raises:
        ValueError: for an unknown modality, a missing column, a label outside ``class_names``, or (with
            ``on_missing="error"``) a label row without an image.
    """
    if modality not in MODALITY_DIRS:
        raise ValueError(f"modality must be one of {sorted(MODALITY_DIRS)}, got {modality!r}")
    _check_on_missing(on_missing)
    root, labels = Path(root), Path(labels)
    columns, rows = read_table(labels)
    _require_column(labels, columns, label_column)
    table = _label_rows(labels, rows, columns)
    if class_names is None:
        class_names = infer_class_names((r[label_column] for r in rows), multi_label=multi_label)

    items: list[dict[str, Any]] = []
    used: set[tuple[str, str | None]] = set()
    for (sub, ses), paths in sorted(_session_images(root, modality, views).items()):
        key = (sub, ses) if (sub, ses) in table else (sub, None)
        if key not in table:
            logger.info("no label for sub-%s ses-%s in %s; skipped", sub, ses, labels)
            continue
        used.add(key)
        line, row = table[key]
        label = encode_label(row[label_column], class_names, multi_label=multi_label, where=f"{labels}, line {line}")
        for path in paths:
            item_id = f"sub-{sub}_ses-{ses}" if len(paths) == 1 else _entities(path.name)["stem"]
            items.append({"id": item_id, "image": str(path), "label": label, "patient_id": f"sub-{sub}"})
    if on_missing == "error":
        for key, (line, _) in table.items():
            if key[1] is not None and key not in used:
                raise ValueError(f"{labels}, line {line}: no {modality} image for sub-{key[0]} ses-{key[1]} under "
                                 f"{root / f'sub-{key[0]}' / f'ses-{key[1]}' / MODALITY_DIRS[modality][0]}")
    return sorted(items, key=lambda it: it["id"]), list(class_names)


def _find_case(root: Path, relative: str) -> Path | None:
    base = root / relative
    if base.exists():
        return base
    return next((p for ext in _IMAGE_EXTS if (p := base.with_name(base.name + ext)).exists()), None)


def csv_items(
    root: str | PathLike,
    labels: str | PathLike,
    *,
    pattern: str = "{id}",
    id_column: str = "id",
    label_column: str = "label",
    patient_column: str | None = "patient_id",
    class_names: Sequence[str] | None = None,
    multi_label: bool = False,
    on_missing: str = "error",
) -> tuple[list[dict[str, Any]], list[str]]:
    """List the cases of a folder (DICOM study folders, NIfTI files, ...) labelled by a CSV ``id,label[,patient_id]``.

    The image of a row is ``root / pattern.format(id=<id>)``; if that does not exist, the same path with
    ``.nii.gz``, ``.nii``, ``.mha``, ``.nrrd``, ``.dcm``, ``.png``, ``.jpg`` or ``.jpeg`` appended. For DICOM
    studies with one series folder per modality use e.g. ``pattern="{id}/CT"``.

    Args:
        root: the folder holding the cases.
        labels: the CSV (or ``.tsv``) table.
        pattern: the case path relative to ``root``, with ``{id}`` replaced by the row's id.
        id_column: the column with case ids.
        label_column: the column with labels.
        patient_column: the column with patient ids; if ``None`` or absent, each case is its own patient.
        class_names: classes in index order; ``None`` infers them (sorted).
        multi_label: labels are lists of names; items get multi-hot lists.
        on_missing: ``"error"`` or ``"skip"`` for rows whose image does not exist.

    Returns:
        the items in table order, and the class names.

    Raises:
        ValueError: for a missing column, a label outside ``class_names``, a duplicated id, or (with
            ``on_missing="error"``) a row without an image.
    """
    _check_on_missing(on_missing)
    root, labels = Path(root), Path(labels)
    columns, rows = read_table(labels)
    for col in (id_column, label_column):
        _require_column(labels, columns, col)
    has_patient = patient_column is not None and patient_column in columns
    if class_names is None:
        class_names = infer_class_names((r[label_column] for r in rows), multi_label=multi_label)

    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        where = f"{labels}, line {line}"
        case_id = row[id_column]
        if not case_id or case_id in seen:
            raise ValueError(f"{where}: empty or duplicated id {case_id!r}")
        seen.add(case_id)
        label = encode_label(row[label_column], class_names, multi_label=multi_label, where=where)
        path = _find_case(root, pattern.format(id=case_id))
        if path is None:
            if on_missing == "skip":
                continue
            raise ValueError(f"{where}: no image for id {case_id!r} at {root / pattern.format(id=case_id)}")
        patient = row.get(patient_column, "") if has_patient else ""
        items.append({"id": case_id, "image": str(path), "label": label, "patient_id": patient or case_id})
    return items, list(class_names)


#: CheXpert's columns that are not observations (kept out of the class list when none is given)
CHEXPERT_META_COLUMNS: tuple[str, ...] = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")

#: a CheXpert cell and the target it encodes: blank (not mentioned) counts as absent, as in CheXpert's labeller
_CHEXPERT_VALUES: dict[str, int] = {"": 0, "1": 1, "1.0": 1, "0": 0, "0.0": 0, "-1": -1, "-1.0": -1}


def chexpert_target(value: str, *, where: str = "") -> int:
    """The target of one observation cell of a CheXpert-style table: ``1`` present, ``0`` absent, ``-1`` uncertain;
    a blank cell (not mentioned in the report) is ``0``, as in the CheXpert labeller's convention (Irvin et al.,
    AAAI 2019). The uncertain value is kept for the training policy (``uncertain_policy`` of the multi-label bundle).

    Args:
        value: the cell (``"1.0"``, ``"0"``, ``"-1.0"``, ``""``...).
        where: file, line and column, for the error message.

    Returns:
        1, 0 or -1.

    Raises:
        ValueError: any other value.
    """
    text = value.strip()
    if text not in _CHEXPERT_VALUES:
        raise ValueError(f"{where}: {value!r} is not a CheXpert label (1, 0, -1 or blank)")
    return _CHEXPERT_VALUES[text]


def chexpert_items(
    root: str | PathLike,
    labels: str | PathLike,
    *,
    classes: Sequence[str] | None = None,
    path_column: str = "Path",
    patient_column: str | None = None,
    patient_regex: str = r"(patient\d+)",
    on_missing: str = "error",
) -> tuple[list[dict[str, Any]], list[str]]:
    """List the images of a CheXpert-style table: one row per image, a path column, one column per observation
    holding ``1`` / ``0`` / ``-1`` (uncertain) / blank (not mentioned, read as 0; :func:`chexpert_target`).

    Each item's ``label`` is the list of the observations' targets in ``classes`` order, ``-1`` kept. The image is
    ``root / <path>`` (with the extensions of :func:`csv_items` tried); its id is the path without its extension.

    Args:
        root: the folder the paths are relative to (for CheXpert, the folder holding ``CheXpert-v1.0-small/``).
        labels: the CSV (or ``.tsv``) table.
        classes: the observation columns, in class order; ``None``: every column but the path, the patient column
            and CheXpert's ``Sex``, ``Age``, ``Frontal/Lateral``, ``AP/PA``.
        path_column: the column of image paths.
        patient_column: the column of patient ids; ``None``: the first group of ``patient_regex`` searched in the
            path (CheXpert's ``patient00001``).
        patient_regex: the patient id in the path when there is no patient column.
        on_missing: ``"error"`` or ``"skip"`` for rows whose image does not exist.

    Returns:
        the items in table order, and the class names.

    Raises:
        ValueError: a missing column, an empty or duplicated path, a cell that is not a CheXpert label, a path the
            patient regex does not match, or (with ``on_missing="error"``) a row without an image.
    """
    _check_on_missing(on_missing)
    root, labels = Path(root), Path(labels)
    columns, rows = read_table(labels)
    _require_column(labels, columns, path_column)
    if patient_column is not None:
        _require_column(labels, columns, patient_column)
    if classes is None:
        skip = {path_column, patient_column, *CHEXPERT_META_COLUMNS}
        classes = [c for c in columns if c not in skip]
    if not classes:
        raise ValueError(f"{labels}: no observation columns; columns are {list(columns)}")
    for name in classes:
        _require_column(labels, columns, name)
    pattern = re.compile(patient_regex)
    if pattern.groups < 1:
        raise ValueError(f"patient_regex '{patient_regex}' has no group; write the patient id part as (...)")

    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        where = f"{labels}, line {line}"
        relative = row[path_column]
        if not relative or relative in seen:
            raise ValueError(f"{where}: empty or duplicated {path_column} {relative!r}")
        seen.add(relative)
        label = [chexpert_target(row[name], where=f"{where}, column {name!r}") for name in classes]
        if patient_column is not None:
            patient = row[patient_column]
        else:
            match = pattern.search(relative)
            if match is None:
                raise ValueError(f"{where}: patient_regex '{patient_regex}' does not match {relative!r}; give the "
                                 "patient id column (patient_column / --patient_column)")
            patient = match.group(1)
        path = _find_case(root, relative)
        if path is None:
            if on_missing == "skip":
                continue
            raise ValueError(f"{where}: no image at {root / relative}")
        case_id = Path(relative).with_suffix("").as_posix() if Path(relative).suffix else relative
        items.append({"id": case_id, "image": str(path), "label": label, "patient_id": patient or case_id})
    return items, list(classes)


def _class_images(folder: Path, modality: str) -> list[Path]:
    """The images of one class folder: DICOM series folders and NIfTI files for CT; for X-ray, NIfTI files, pictures
    and every DICOM file (a folder of radiographs is not a series)."""
    spatial_dims = 3 if modality == "ct" else 2
    kinds = default_input_kinds(spatial_dims)
    if spatial_dims == 2:
        kinds = tuple(k for k in kinds if k != "file")
    try:
        found = [Path(item["image"]) for item in folder_cases(folder, kinds)]
    except ValueError:
        found = []
    if spatial_dims == 2:
        found += [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() == ".dcm"]
    return sorted(set(found))


def _stem(path: Path) -> str:
    """A file's name without its image extension (``.nii.gz`` included); a folder's name."""
    lower = path.name.lower()
    for ext in (*_IMAGE_EXTS, ".bmp"):
        if lower.endswith(ext):
            return path.name[: -len(ext)]
    return path.name if path.is_dir() else path.stem


def folder_items(
    root: str | PathLike,
    *,
    modality: str = "xray",
    class_names: Sequence[str] | None = None,
    patient_regex: str | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """List the images of a folder laid out as one sub-folder per class (``root/<class>/**/<image>``).

    The class of an image is the name of the sub-folder of ``root`` it is under. Images are found with
    :func:`~medtl_monai.data.folder_cases`: for CT, DICOM series folders and NIfTI files; for X-ray, NIfTI files,
    pictures (PNG, JPEG, BMP) and every ``.dcm`` file. The item ``id`` is the image's path relative to ``root``
    without its extension (e.g. ``pneumonia/person1_bacteria_1``); the ``patient_id`` is the first group of
    ``patient_regex`` searched in that relative path (e.g. ``r"(person\\d+)_"``), else the file's stem.

    Args:
        root: the folder holding one sub-folder per class.
        modality: ``"ct"`` or ``"xray"`` (which kinds of image are collected).
        class_names: classes in index order, each a sub-folder name; ``None`` takes every sub-folder, sorted.
            Sub-folders not named are skipped (logged).
        patient_regex: a regular expression with one group giving the patient id; ``None`` uses the file stem.

    Returns:
        the items sorted by id, and the class names.

    Raises:
        ValueError: for an unknown modality, a root without class sub-folders, a named class without a folder or
            images, a regular expression without a group, or a path it does not match (``<path>: <problem>``).
    """
    if modality not in MODALITY_DIRS:
        raise ValueError(f"modality must be one of {sorted(MODALITY_DIRS)}, got {modality!r}")
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: folder does not exist")
    pattern = re.compile(patient_regex) if patient_regex else None
    if pattern is not None and pattern.groups < 1:
        raise ValueError(f"patient_regex '{patient_regex}' has no group; write the patient id part as (...)")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if class_names is None:
        class_names = folders
    if not class_names:
        raise ValueError(f"{root}: no class sub-folders (expected root/<class>/<images>)")
    skipped = sorted(set(folders) - set(class_names))
    if skipped:
        logger.warning("%s: sub-folders %s are not in the class list %s; skipped", root, skipped, list(class_names))
    items: list[dict[str, Any]] = []
    for label, name in enumerate(class_names):
        folder = root / name
        images = _class_images(folder, modality) if folder.is_dir() else []
        if not images:
            problem = f"holds no {modality} images" if folder.is_dir() else "does not exist"
            raise ValueError(f"{folder}: class folder {problem}")
        for path in images:
            relative = path.relative_to(root).as_posix()
            if pattern is not None:
                match = pattern.search(relative)
                if match is None:
                    raise ValueError(f"{path}: patient_regex '{patient_regex}' does not match '{relative}'")
                patient = match.group(1)
            else:
                patient = _stem(path)
            item_id = (Path(relative).parent / _stem(path)).as_posix()
            items.append({"id": item_id, "image": str(path), "label": label, "patient_id": patient})
    return sorted(items, key=lambda it: it["id"]), list(class_names)
