"""A small, reproducible, semi-synthetic chest data set in the BIMCV-COVID19+ layout, as NIfTI and as DICOM.

:func:`make_demo_dataset` draws patients (some with two sessions, so that patient-level splits matter), renders each
session's CT volume and PA/AP radiograph from the same phantom (:mod:`.phantom`) and writes (with :mod:`.nifti`
and :mod:`.dicom`)::

    <out>/dataset_description.json, participants.tsv, labels.csv (id,label,patient_id)
    <out>/sub-S0001/ses-E0001/mod-ct/sub-S0001_ses-E0001_run-1_bp-chest_ct.nii.gz (+ .json sidecar)
    <out>/sub-S0001/ses-E0001/mod-rx/sub-S0001_ses-E0001_run-1_bp-chest_vp-pa_cr.nii.gz (+ .json sidecar)
    <out>/dicom/sub-S0001_ses-E0001/CT/NNNN.dcm (one file per slice, names in random order)
    <out>/dicom/sub-S0001_ses-E0001/CR.dcm (some MONOCHROME1)
    <out>/datalist.json (CT NIfTI), datalist_xray.json, datalist_dicom.json (CT series), datalist_xray_dicom.json

The datalists share one patient-level stratified split. Positive sessions ("positive") show ground-glass opacities
near -500 HU; negatives ("negative") share the confounders (vessels, nodules, dependent atelectasis). Everything
is seeded: the same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import datetime
import functools
import json
import multiprocessing
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from ..data import bimcv_items, csv_items, patient_split, write_datalist
from .dicom import uid, write_ct_series, write_xray
from .nifti import write_bids_sidecar, write_ct_nifti, write_xray_nifti
from .phantom import CTGeometry, render_ct, render_xray, sample_anatomy, sample_findings

__all__ = ["CLASS_NAMES", "DemoCase", "make_demo_dataset", "plan_cases"]

#: Class names of the demo task, in index order.
CLASS_NAMES: tuple[str, str] = ("negative", "positive")

_FORMATS = ("nifti", "dicom")
_MODALITIES = ("ct", "xray")
_MARKER = "medtl_monai.synthetic.demo"
_EARLIER_MARKERS = ("medtl_monai.data.demo",)  # data sets written before the package had a synthetic room
_UID_ROOT = "medtl_monai-demo"  # first entropy source of every UID of the data set
_CT_INTERCEPT = -1024  # RescaleIntercept of the CT files: stored value = HU + 1024, 12 bits used
_CT_MAX_HU = 3071
_XRAY_MAX = 4095  # 12-bit radiographs


@dataclass(frozen=True)
class DemoCase:
    """One session of the demo data set.

    Attributes:
        patient: 1-based patient number.
        session: 1-based global session number.
        visit: 0 for a patient's first session, 1 for the follow-up.
        label: a name from :data:`CLASS_NAMES`.
        sex: ``"F"`` or ``"M"``.
        age: age in years.
    """

    patient: int
    session: int
    visit: int
    label: str
    sex: str
    age: int

    @property
    def subject(self) -> str:
        """BIDS subject, e.g. ``sub-S0001``."""
        return f"sub-S{self.patient:04d}"

    @property
    def case_id(self) -> str:
        """Case id, e.g. ``sub-S0001_ses-E0001``."""
        return f"{self.subject}_ses-E{self.session:04d}"


def plan_cases(n_cases: int, *, seed: int = 0, second_session_prob: float = 0.2) -> list[DemoCase]:
    """Draw patients and sessions with balanced labels (at most one session apart).

    A patient has two sessions with probability ``second_session_prob`` (both with the patient's label); labels
    are given to patients in random order so that positive sessions number ``n_cases // 2`` when possible.

    Args:
        n_cases: number of sessions (cases).
        seed: the random seed.
        second_session_prob: probability that a patient has a follow-up session.

    Returns:
        the cases ordered by session number.

    Raises:
        ValueError: if ``n_cases < 2``.
    """
    if n_cases < 2:
        raise ValueError(f"n_cases must be at least 2, got {n_cases}")
    rng = np.random.default_rng([seed, 0x5E55])
    sizes: list[int] = []
    while sum(sizes) < n_cases:
        two = rng.random() < second_session_prob and sum(sizes) + 2 <= n_cases
        sizes.append(2 if two else 1)
    target, positive = n_cases // 2, [False] * len(sizes)
    count = 0
    for p in rng.permutation(len(sizes)):
        if count + sizes[p] <= target:
            positive[p], count = True, count + sizes[p]
    cases, session = [], 0
    for p, size in enumerate(sizes):
        sex, age = ("F", "M")[int(rng.integers(2))], int(rng.integers(25, 90))
        for visit in range(size):
            session += 1
            cases.append(DemoCase(patient=p + 1, session=session, visit=visit,
                                  label=CLASS_NAMES[int(positive[p])], sex=sex, age=age))
    return cases


def _case_files(out: Path, case: DemoCase, view: str) -> dict[str, Path]:
    ses = f"ses-E{case.session:04d}"
    base = out / case.subject / ses
    stem = f"{case.case_id}_run-1_bp-chest"
    return {
        "ct_nifti": base / "mod-ct" / f"{stem}_ct.nii.gz",
        "xray_nifti": base / "mod-rx" / f"{stem}_vp-{view.lower()}_cr.nii.gz",
        "ct_dicom": out / "dicom" / case.case_id / "CT",
        "xray_dicom": out / "dicom" / case.case_id / "CR.dcm",
    }


def _case_header(case: DemoCase, seed: int) -> dict[str, Any]:
    """The DICOM patient and study attributes shared by a session's files (synthetic identity ``DEMO^PATIENT0001``)."""
    date = datetime.date(2020, 3, 1) + datetime.timedelta(days=int(case.patient % 200 + 21 * case.visit))
    return {
        "PatientName": f"DEMO^PATIENT{case.patient:04d}",
        "PatientID": f"DEMO{case.patient:04d}",
        "PatientSex": case.sex,
        "PatientAge": f"{case.age:03d}Y",
        "PatientBirthDate": "",
        "StudyInstanceUID": uid(_UID_ROOT, seed, case.case_id, "study"),
        "StudyID": "1",
        "StudyDate": date.strftime("%Y%m%d"),
        "StudyTime": "120000",
        "AccessionNumber": f"E{case.session:04d}",
        "ReferringPhysicianName": "",
        "StudyDescription": "DEMO CHEST",
        "Manufacturer": "medtl_monai demo phantom",
        "InstitutionName": "SYNTHETIC",
        "BodyPartExamined": "CHEST",
        "BurnedInAnnotation": "NO",
    }


def _quantise_hu(hu: np.ndarray) -> np.ndarray:
    """HU rounded to int16 within what a CT with RescaleIntercept -1024 stores in 12 bits (-1024 .. 3071)."""
    return np.clip(np.rint(hu), _CT_INTERCEPT, _CT_MAX_HU).astype(np.int16)


def _write_case(out: Path, case: DemoCase, *, seed: int, formats: Sequence[str], modalities: Sequence[str],
                ct_shape: tuple[int, int, int], xray_size: int, monochrome1_prob: float) -> None:
    """Render and write one session (deterministic in ``seed`` and the case, whatever the order of cases)."""
    anat = sample_anatomy(np.random.default_rng([seed, case.patient, 0]))
    rng = np.random.default_rng([seed, case.patient, case.visit + 1])
    findings = sample_findings(rng, anat, positive=case.label == CLASS_NAMES[1])
    pixel = round(float(rng.uniform(3.3, 3.7)), 3)
    spacing = (8.0, pixel, pixel)
    grid = CTGeometry.centred(ct_shape, spacing, z0=anat.lung_base - float(rng.uniform(20, 45)))
    table_z = round(float(rng.uniform(-650, -450)), 1)  # scanner z of the body origin
    origin = (float(grid.x[0]), float(grid.y[0]), table_z + float(grid.z[0]))
    view = "PA" if rng.random() < 0.8 else "AP"
    photometric = "MONOCHROME1" if rng.random() < monochrome1_prob else "MONOCHROME2"
    exposure = float(rng.uniform(0.9, 1.1))
    file_order = rng.permutation(ct_shape[0])
    files = _case_files(out, case, view)
    header = _case_header(case, seed)
    if "ct" in modalities:
        hu = _quantise_hu(render_ct(anat, findings, grid, rng=rng)[0])
        series_uid = uid(_UID_ROOT, seed, case.case_id, "ct-series")
        frame_uid = uid(_UID_ROOT, seed, case.case_id, "frame")
        if "nifti" in formats:
            write_ct_nifti(files["ct_nifti"], hu, spacing=spacing, origin=origin)
            write_bids_sidecar(files["ct_nifti"].with_name(files["ct_nifti"].name.replace(".nii.gz", ".json")), {
                "Modality": "CT", "BodyPartExamined": "CHEST", "Manufacturer": "medtl_monai demo phantom",
                "PixelSpacing": [pixel, pixel], "SliceThickness": spacing[0], "RescaleSlope": 1,
                "RescaleIntercept": 0, "ImageOrientationPatient": [1, 0, 0, 0, 1, 0], "ImagePositionPatient": origin,
                "StudyInstanceUID": header["StudyInstanceUID"], "SeriesInstanceUID": series_uid,
                "StudyDate": header["StudyDate"], "PatientSex": case.sex, "PatientAge": case.age,
            })
        if "dicom" in formats:
            # head first: InstanceNumber 1 is the most superior slice; file names carry no order at all;
            # positions to 0.1 um (the NIfTI keeps the exact origin)
            write_ct_series(
                files["ct_dicom"], stored=(hu.astype(np.int32) - _CT_INTERCEPT).astype(np.int16), slope=1,
                intercept=_CT_INTERCEPT, pixel_spacing=(pixel, pixel), slice_spacing=spacing[0],
                origin=tuple(round(v, 4) for v in origin), series_uid=series_uid, series_number=2,
                frame_uid=frame_uid, shuffle=False, instance_numbers=range(ct_shape[0], 0, -1), file_order=file_order,
                seed=seed, header={**header, "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
                                   "SeriesDescription": "CHEST DEMO", "PositionReferenceIndicator": "",
                                   "PatientPosition": "HFS", "KVP": 120, "ConvolutionKernel": "STANDARD",
                                   "RescaleType": "HU", "WindowCenter": -600, "WindowWidth": 1500},
            )
    if "xray" in modalities:
        image = np.rint(render_xray(anat, findings, size=xray_size, exposure=exposure, rng=rng))
        pixel_xr = 360.0 / xray_size
        series_uid = uid(_UID_ROOT, seed, case.case_id, "cr-series")
        if "nifti" in formats:
            write_xray_nifti(files["xray_nifti"], image, pixel_spacing=pixel_xr)
            write_bids_sidecar(files["xray_nifti"].with_name(files["xray_nifti"].name.replace(".nii.gz", ".json")), {
                "Modality": "CR", "BodyPartExamined": "CHEST", "ViewPosition": view,
                "PhotometricInterpretation": "MONOCHROME2", "DicomPhotometricInterpretation": photometric,
                "PixelSpacing": [pixel_xr, pixel_xr], "ImagerPixelSpacing": [pixel_xr, pixel_xr],
                "BitsStored": 12, "StudyInstanceUID": header["StudyInstanceUID"], "SeriesInstanceUID": series_uid,
                "StudyDate": header["StudyDate"], "PatientSex": case.sex, "PatientAge": case.age,
            })
        if "dicom" in formats:
            stored = np.clip(image, 0, _XRAY_MAX).astype(np.uint16)
            if photometric == "MONOCHROME1":  # white = low values: a reader inverts them back
                stored = _XRAY_MAX - stored
            write_xray(files["xray_dicom"], stored=stored, photometric=photometric, modality="CR", bits_stored=12,
                       pixel_spacing=(pixel_xr, pixel_xr), imager_pixel_spacing=(pixel_xr, pixel_xr),
                       window=(2048, 4096), seed=seed, series_uid=series_uid,
                       header={**header, "ImageType": ["ORIGINAL", "PRIMARY"], "ViewPosition": view})


def _write_tables(out: Path, cases: Sequence[DemoCase]) -> tuple[Path, Path]:
    labels = out / "labels.csv"
    with labels.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "label", "patient_id"])
        writer.writerows([c.case_id, c.label, c.subject] for c in cases)
    participants = out / "participants.tsv"
    with participants.open("w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["participant_id", "sex", "age", "n_sessions", "label"])
        firsts = [c for c in cases if c.visit == 0]
        n_sessions = {c.patient: sum(d.patient == c.patient for d in cases) for c in firsts}
        writer.writerows([c.subject, c.sex, c.age, n_sessions[c.patient], c.label] for c in firsts)
    return labels, participants


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        marker = out / "dataset_description.json"
        ours = marker.is_file() and any(m in marker.read_text() for m in (_MARKER, *_EARLIER_MARKERS))
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; pass overwrite=True (--overwrite) to replace a demo data set")
        if not ours:
            raise FileExistsError(f"{out} is not empty and was not written by {_MARKER}; refusing to delete it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def make_demo_dataset(
    output_dir: str | PathLike,
    *,
    n_cases: int = 300,
    seed: int = 0,
    formats: Sequence[str] = _FORMATS,
    modalities: Sequence[str] = _MODALITIES,
    ct_shape: tuple[int, int, int] = (40, 96, 96),
    xray_size: int = 256,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    second_session_prob: float = 0.2,
    monochrome1_prob: float = 0.25,
    overwrite: bool = False,
    workers: int | None = None,
) -> dict[str, Any]:
    """Write the demo data set (see the module docstring for the layout).

    CT volumes are ``ct_shape = (slices, rows, columns)`` at 8 mm slices and 3.3-3.7 mm pixels (the in-plane spacing
    varies per session, like fields of view on real scanners); radiographs are ``xray_size`` square over 360 mm.

    Args:
        output_dir: the output folder.
        n_cases: number of sessions.
        seed: the random seed (anatomy, findings, noise, split and UIDs).
        formats: any of ``"nifti"``, ``"dicom"``.
        modalities: any of ``"ct"``, ``"xray"``.
        ct_shape: CT volume size ``(slices, rows, columns)``.
        xray_size: side of the radiographs in pixels.
        fractions: training, validation and test fractions of patients for the datalists.
        second_session_prob: probability that a patient has two sessions.
        monochrome1_prob: fraction of DICOM radiographs stored as MONOCHROME1.
        overwrite: replace an existing demo data set in ``output_dir``.
        workers: processes writing cases in parallel (each case has its own seed, so the files do not depend on
            it); ``None`` uses the CPU count (at most 8), 1 writes in this process.

    Returns:
        a summary: ``root``, ``labels``, ``participants``, ``datalists`` (name -> path), ``n_cases``,
        ``n_patients``, ``n_positive``.

    Raises:
        ValueError: for unknown formats or modalities.
        FileExistsError: if ``output_dir`` is not empty (and not a demo data set with ``overwrite=True``).
    """
    if not formats or set(formats) - set(_FORMATS):
        raise ValueError(f"formats must be a non-empty subset of {_FORMATS}, got {formats!r}")
    if not modalities or set(modalities) - set(_MODALITIES):
        raise ValueError(f"modalities must be a non-empty subset of {_MODALITIES}, got {modalities!r}")
    out = Path(output_dir)
    cases = plan_cases(n_cases, seed=seed, second_session_prob=second_session_prob)
    _prepare(out, overwrite)
    (out / "dataset_description.json").write_text(json.dumps({
        "Name": "medtl_monai semi-synthetic chest CT / X-ray demo", "BIDSVersion": "1.8.0", "License": "CC0",
        "GeneratedBy": [{"Name": _MARKER, "Description": f"make_demo_dataset(n_cases={n_cases}, seed={seed})"}],
    }, indent=2) + "\n")
    write = functools.partial(_write_case, out, seed=seed, formats=tuple(formats), modalities=tuple(modalities),
                              ct_shape=tuple(ct_shape), xray_size=xray_size, monochrome1_prob=monochrome1_prob)
    workers = min(os.cpu_count() or 1, 8) if workers is None else max(1, int(workers))
    if workers == 1 or len(cases) < 2 * workers:
        for case in cases:
            write(case)
    else:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(workers) as pool:
            for _ in pool.imap_unordered(write, cases, chunksize=4):
                pass
    labels, participants = _write_tables(out, cases)
    datalists = _write_datalists(out, labels, formats=formats, modalities=modalities, seed=seed, fractions=fractions)
    return {"root": out, "labels": labels, "participants": participants, "datalists": datalists,
            "n_cases": len(cases), "n_patients": len({c.patient for c in cases}),
            "n_positive": sum(c.label == CLASS_NAMES[1] for c in cases)}


def _write_datalists(out: Path, labels: Path, *, formats: Sequence[str], modalities: Sequence[str], seed: int,
                     fractions: Sequence[float]) -> dict[str, Path]:
    """One patient-level split, applied to every datalist written (through the project's own datalist builders)."""
    sources: dict[str, tuple[list[dict[str, Any]], str]] = {}
    for mod, dicom_pattern, name, dicom_name, modality in (
        ("ct", "{id}/CT", "datalist", "datalist_dicom", "CT"),
        ("xray", "{id}/CR.dcm", "datalist_xray", "datalist_xray_dicom", "CR"),
    ):
        if mod not in modalities:
            continue
        if "nifti" in formats:
            sources[name] = (bimcv_items(out, labels, modality=mod, class_names=CLASS_NAMES)[0], modality)
        if "dicom" in formats:
            sources[dicom_name] = (csv_items(out / "dicom", labels, pattern=dicom_pattern,
                                             class_names=CLASS_NAMES)[0], modality)
    reference = next(iter(sources.values()))[0]
    split = patient_split(reference, fractions=fractions, seed=seed)
    where = {item["patient_id"]: key for key, items in split.items() for item in items}
    paths = {}
    for name, (items, modality) in sources.items():
        parts: dict[str, list[dict[str, Any]]] = {key: [] for key in split}
        for item in items:
            parts[where[item["patient_id"]]].append(item)
        paths[name] = write_datalist(out / f"{name}.json", parts, class_names=CLASS_NAMES, modality=modality,
                                     description="medtl_monai demo data (semi-synthetic chest phantoms)",
                                     extra={"split_seed": seed, "split_fractions": list(fractions)})
    return paths
