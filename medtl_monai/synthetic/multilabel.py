"""A small multi-label chest X-ray set in the CheXpert layout, for training and testing the multi-label switch offline.

:func:`make_multilabel_demo` draws patients (some with a second study), renders each study's frontal radiograph from
the chest phantom (:mod:`.phantom`) with any of three findings, and writes::

    <out>/dataset_description.json
    <out>/labels.csv                    Path,Sex,Age,Frontal/Lateral,AP/PA,Opacity,Effusion,Cardiomegaly
    <out>/images/patient00001/study1/view1_frontal.png   (8-bit grey, CheXpert's folder names)
    <out>/datalist_multilabel.json      multi-label datalist, patient-level split

The findings, each drawn on its own: **Opacity** = ground-glass opacities in the lungs (the demo's positive class);
**Effusion** = pleural fluid at one lung base with a fluid level (:attr:`~.phantom.Findings.effusions`);
**Cardiomegaly** = a heart 35-50 % wider (a patient's heart is the same in all of their studies). The table is
written as CheXpert's labeller writes its own: ``1.0`` present, ``0.0`` absent, blank = not mentioned (absent),
``-1.0`` uncertain; an uncertain cell hides the truth, which may be either. The datalist is built by the same code as
``scripts/make_datalist.py --chexpert_csv`` (:func:`~medtl_monai.data.builders.chexpert_items`, then
:func:`~medtl_monai.data.patient_split`). Everything is seeded: the same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from ..data import patient_split, write_datalist
from ..data.builders import chexpert_items
from .phantom import Anatomy, render_xray, sample_anatomy, sample_findings

__all__ = ["MULTILABEL_CLASSES", "enlarge_heart", "make_multilabel_demo"]

#: the observations of the multi-label demo, in class order
MULTILABEL_CLASSES: tuple[str, str, str] = ("Opacity", "Effusion", "Cardiomegaly")

_MARKER = "medtl_monai.synthetic.multilabel"
_DATALIST = "datalist_multilabel.json"


def enlarge_heart(anat: Anatomy, factor: float) -> Anatomy:
    """The anatomy with a heart ``factor`` times wider (left-right), ``sqrt(factor)`` deeper and taller.

    Args:
        anat: the patient's anatomy.
        factor: the widening, e.g. 1.4.

    Returns:
        a new :class:`~.phantom.Anatomy`.
    """
    centre, (ra, rb, rc) = anat.heart
    grow = float(np.sqrt(factor))
    return dataclasses.replace(anat, heart=(centre, (ra * factor, rb * grow, rc * grow)))


def _cell(present: bool, rng: np.random.Generator, uncertain_prob: float, blank_prob: float) -> str:
    """The table cell of a finding as a report labeller would write it."""
    if rng.random() < uncertain_prob:
        return "-1.0"
    if present:
        return "1.0"
    return "" if rng.random() < blank_prob else "0.0"


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        marker = out / "dataset_description.json"
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; pass overwrite=True (--overwrite) to replace a demo data set")
        if not (marker.is_file() and _MARKER in marker.read_text()):
            raise FileExistsError(f"{out} is not empty and was not written by {_MARKER}; refusing to delete it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(np.rint(image / 4095.0 * 255.0), 0, 255).astype(np.uint8), mode="L").save(path)


def make_multilabel_demo(
    output_dir: str | PathLike,
    *,
    n_images: int = 96,
    seed: int = 0,
    size: int = 64,
    prevalence: Sequence[float] = (0.4, 0.35, 0.35),
    uncertain_prob: float = 0.08,
    blank_prob: float = 0.4,
    second_study_prob: float = 0.25,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the multi-label demo set (see the module docstring for the layout and the findings).

    Args:
        output_dir: the output folder (e.g. ``<demo>/multilabel``).
        n_images: number of radiographs (studies).
        seed: the random seed (anatomy, findings, noise, table cells and split).
        size: side of the radiographs in pixels (over 360 mm).
        prevalence: probability of Opacity, Effusion and Cardiomegaly (of a study; of a patient for Cardiomegaly).
        uncertain_prob: probability that a cell is written ``-1.0`` (uncertain) whatever the truth.
        blank_prob: probability that an absent finding is left blank (not mentioned) rather than ``0.0``.
        second_study_prob: probability that a patient has a second study.
        fractions: training, validation and test fractions of patients.
        overwrite: replace an existing multi-label demo set in ``output_dir``.

    Returns:
        ``root``, ``labels``, ``datalist`` (paths), ``n_images``, ``n_patients``, ``class_names`` and ``counts``
        (per class: ``positive``, ``negative``, ``uncertain`` cells).

    Raises:
        ValueError: fewer than 4 images, or three prevalences not in [0, 1].
        FileExistsError: ``output_dir`` is not empty (and not a multi-label demo set with ``overwrite=True``).
    """
    if n_images < 4:
        raise ValueError(f"n_images must be at least 4, got {n_images}")
    if len(prevalence) != len(MULTILABEL_CLASSES) or not all(0 <= p <= 1 for p in prevalence):
        raise ValueError(f"prevalence must be {len(MULTILABEL_CLASSES)} probabilities, got {list(prevalence)}")
    out = Path(output_dir)
    _prepare(out, overwrite)
    (out / "dataset_description.json").write_text(json.dumps({
        "Name": "medtl_monai multi-label chest X-ray demo (CheXpert layout)", "License": "CC0",
        "GeneratedBy": [{"Name": _MARKER, "Description": f"make_multilabel_demo(n_images={n_images}, seed={seed})"}],
    }, indent=2) + "\n")
    plan = np.random.default_rng([seed, 0x3117])
    rows: list[list[str]] = []
    patient = 0
    while len(rows) < n_images:
        patient += 1
        anat = sample_anatomy(np.random.default_rng([seed, patient, 0]))
        cardiomegaly = bool(plan.random() < prevalence[2])
        if cardiomegaly:
            anat = enlarge_heart(anat, float(plan.uniform(1.35, 1.5)))
        sex, age = ("Female", "Male")[int(plan.integers(2))], int(plan.integers(25, 90))
        n_studies = 2 if plan.random() < second_study_prob and len(rows) + 2 <= n_images else 1
        for study in range(1, n_studies + 1):
            rng = np.random.default_rng([seed, patient, study])
            opacity, effusion = bool(rng.random() < prevalence[0]), bool(rng.random() < prevalence[1])
            findings = sample_findings(rng, anat, positive=opacity)
            if effusion:
                findings = dataclasses.replace(findings, effusions=[(float(rng.choice((-1.0, 1.0))),
                                                                     float(rng.uniform(35, 60)))])
            image = render_xray(anat, findings, size=size, exposure=float(rng.uniform(0.9, 1.1)), rng=rng)
            relative = f"images/patient{patient:05d}/study{study}/view1_frontal.png"
            _write_png(out / relative, image)
            cells = [_cell(truth, rng, uncertain_prob, blank_prob) for truth in (opacity, effusion, cardiomegaly)]
            rows.append([relative, sex, str(age), "Frontal", "PA", *cells])
    labels = out / "labels.csv"
    with labels.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *MULTILABEL_CLASSES])
        writer.writerows(rows)
    items, class_names = chexpert_items(out, labels, classes=MULTILABEL_CLASSES)
    split = patient_split(items, fractions=fractions, seed=seed)
    datalist = write_datalist(out / _DATALIST, split, class_names=class_names, modality="CR", multi_label=True,
                              description="medtl_monai multi-label demo (semi-synthetic chest radiographs)",
                              extra={"split_seed": seed, "split_fractions": list(fractions),
                                     "uncertain_label": -1})
    targets = np.array([item["label"] for item in items])
    counts = {name: {"positive": int((targets[:, k] == 1).sum()), "negative": int((targets[:, k] == 0).sum()),
                     "uncertain": int((targets[:, k] == -1).sum())} for k, name in enumerate(class_names)}
    return {"root": out, "labels": labels, "datalist": datalist, "n_images": len(rows), "n_patients": patient,
            "class_names": class_names, "counts": counts}
