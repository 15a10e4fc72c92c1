"""Error-analysis report of an evaluation: one self-contained HTML page, its PNGs and a CSV for relabelling.

:func:`error_report` reads the evaluation's ``predictions.csv`` (``medtl_monai.evaluation.PredictionWriter``: ``id``,
``label``, ``prob_<class>``..., ``prediction``) and writes into ``output_dir``::

    report.html       metrics with 95% CIs, ROC and precision-recall curves with bootstrap bands, confusion
                      matrix, calibration plot (before and after temperature scaling fitted on validation), the
                      operating point chosen on validation with test sensitivity / specificity and CIs, every
                      misclassified case (most confident first) and the most confident correct cases, each with its
                      image (3D: the axial slice through the CAM peak) and its CAM overlay; images are embedded
    roc.png, pr.png, confusion.png, calibration.png
    cases/<id>_image.png, cases/<id>_cam.png
    relabel.csv       id, label, prediction, probability, misclassified, note (empty, for the reader)

The predictions must be cases of the datalist items given: :func:`check_prediction_ids` refuses a predictions file
with an id that is not among them (an evaluation of another data set would otherwise give a report whose every case
has "no image"). Cases are named by their datalist id only. Nothing from image headers (patient name, patient id, dates) is written:
the page shows ids, labels, probabilities and pixels. CAMs explain the *predicted* class (why the model said so).
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..evaluation import (
    apply_temperature,
    classification_summary,
    logits_from_probabilities,
    patient_groups,
    post_hoc_metrics,
    pr_band,
    read_prediction_table,
    roc_band,
    summary_with_ci,
)
from . import _html, _plots
from ._hooks import default_target_layers
from .cam import GradientCAM, make_cam
from .overlay import cam_figure, peak_index, save_figure, slice_figure
from .writer import case_filename

__all__ = [
    "CaseRow",
    "PredictionsMismatchError",
    "check_prediction_ids",
    "error_report",
    "rank_cases",
    "read_predictions",
    "write_relabel_csv",
]

#: how many unknown ids an error message shows
_SHOWN_IDS = 5

logger = logging.getLogger("medtl_monai.explain")


@dataclass(frozen=True)
class CaseRow:
    """One evaluated case.

    Attributes:
        id: datalist id.
        label: true class index.
        probs: class probabilities.
        prediction: predicted class index (at the report's threshold).
    """

    id: str
    label: int
    probs: tuple[float, ...]
    prediction: int

    @property
    def confidence(self) -> float:
        """Probability of the predicted class."""
        return self.probs[self.prediction]

    @property
    def correct(self) -> bool:
        return self.label == self.prediction


def _predict(probs: Sequence[float], threshold: float) -> int:
    return int(probs[1] >= threshold) if len(probs) == 2 else int(np.argmax(probs))


def read_predictions(path: str | os.PathLike, threshold: float = 0.5) -> tuple[list[CaseRow], list[str]]:
    """Read a ``predictions.csv`` (:func:`~medtl_monai.evaluation.read_prediction_table`) and re-derive predictions
    at ``threshold`` (two classes; else arg-max).

    Args:
        path: the CSV.
        threshold: probability of class 1 from which a case is called class 1 (two classes only).

    Returns:
        ``(labelled rows, class names)``; unlabelled rows (inference) and skipped cases are left out.

    Raises:
        ValueError: not a predictions file, a label that is not a class name, or no labelled row.
    """
    table = read_prediction_table(path)
    if not len(table):
        raise ValueError(f"{str(path)!r} has no labelled case; the report needs an evaluation, not an inference.")
    rows = [CaseRow(i, int(y), tuple(float(v) for v in p), _predict(p, threshold))
            for i, y, p in zip(table.ids, table.labels, table.probs)]
    return rows, list(table.class_names)


class PredictionsMismatchError(ValueError):
    """A predictions file whose cases are not the cases of the datalist a report explains."""


def check_prediction_ids(
    predictions: str | os.PathLike,
    rows: Sequence[CaseRow],
    items: Sequence[Mapping],
    source: str = "the datalist items",
    hint: str = "explain the datalist that was evaluated, or evaluate the model on this one first",
) -> None:
    """Refuse predictions with an id that is not one of ``items`` (a subset, e.g. ``--limit_cases``, is fine).

    Args:
        predictions: the predictions file (named in the error).
        rows: its rows (:func:`read_predictions`).
        items: the datalist items the report explains.
        source: what ``items`` are, for the error (e.g. ``"/data/datalist.json (split 'test', 12 cases)"``).
        hint: what to do about it, for the error.

    Raises:
        PredictionsMismatchError: ``"<predictions>: N of M prediction ids are not in <source>, e.g. ...; <hint>"``.
    """
    known = {str(item["id"]) for item in items if "id" in item}
    ids = {r.id for r in rows}
    unknown = sorted(ids - known)
    if unknown:
        shown = ", ".join(unknown[:_SHOWN_IDS]) + (", ..." if len(unknown) > _SHOWN_IDS else "")
        raise PredictionsMismatchError(
            f"{predictions}: {len(unknown)} of its {len(ids)} prediction ids are not in {source}, e.g. {shown}; "
            f"these predictions are not of this datalist: {hint}."
        )


def rank_cases(rows: Sequence[CaseRow], n_correct: int = 5) -> tuple[list[CaseRow], list[CaseRow]]:
    """Every misclassified case, most confident first, and the ``n_correct`` most confident correct cases."""
    by_confidence = sorted(rows, key=lambda r: (-r.confidence, r.id))
    return [r for r in by_confidence if not r.correct], [r for r in by_confidence if r.correct][: max(int(n_correct), 0)]


def write_relabel_csv(rows: Sequence[CaseRow], class_names: Sequence[str], path: str | os.PathLike) -> Path:
    """Write ``id, label, prediction, probability (of the prediction), misclassified, note`` for every case,
    misclassified cases first (most confident first), with an empty ``note`` column to fill in.

    Returns:
        The path written.
    """
    wrong, _ = rank_cases(rows, 0)
    right = sorted((r for r in rows if r.correct), key=lambda r: (r.confidence, r.id))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label", "prediction", "probability", "misclassified", "note"])
        for r in [*wrong, *right]:
            writer.writerow([r.id, class_names[r.label], class_names[r.prediction], f"{r.confidence:.6f}",
                             "yes" if not r.correct else "no", ""])
    return path


def _case_pictures(item: Mapping, transform, cam: GradientCAM, class_index: int, folder: Path, channel: int) -> tuple[bytes, bytes]:
    """Preprocess one case, explain ``class_index`` and save (image, overlay) PNGs; returns their bytes."""
    data = transform(dict(item))
    image = data["image"]
    device = next(cam.nn_module.parameters()).device
    x = (image.as_tensor() if hasattr(image, "as_tensor") else torch.as_tensor(image))[None].float().to(device)
    heat = cam.compute(x, class_idx=class_index).cam[0, 0].cpu()
    affine = getattr(image, "affine", None)
    stem = case_filename(str(item["id"]))
    plain = save_figure(slice_figure(image, index=peak_index(heat), affine=affine, channel=channel), folder / f"{stem}_image.png")
    overlay = save_figure(cam_figure(image, heat, affine=affine, channel=channel, with_image=False), folder / f"{stem}_cam.png")
    return plain, overlay


def _facts(row: CaseRow, names: Sequence[str]) -> str:
    return (f"label: {names[row.label]} · predicted: {names[row.prediction]} · "
            f"p({names[row.prediction]}) = {row.confidence:.3f}")


def _with_interval(entry: Mapping) -> str:
    """``value [low, high]`` of a metric with its CI."""
    return f"{entry['value']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"


def _curve_note(ci: Mapping, binary: bool) -> str:
    method = ci["auroc"]["method"]
    bands = "Shaded: pointwise 95% bootstrap bands of the ROC and precision-recall curves. " if binary else ""
    return (f"Brackets: 95% confidence intervals ({method}). {bands}"
            "Calibration: the reliability curve of the raw probabilities and, when a validation evaluation exists, "
            "after temperature scaling fitted on validation.")


def _post_hoc_html(post_hoc: Mapping) -> str:
    """The operating point and calibration chosen on validation, as two tables and a note."""
    parts: list[str] = []
    point, calibration = post_hoc["operating_point"], post_hoc["calibration"]
    if "skipped" in point:
        parts.append(f'<p class="note">Operating point: {_html.escape_text(point["skipped"])}.</p>')
    else:
        rule = point["rule"] + ("" if point["target"] is None else f" (target {point['target']:g})")
        parts.append(_html.metrics_table({
            "rule": rule, "threshold": f"{point['threshold']:.4f}",
            "validation cases": str(point["chosen_on_cases"]),
            "validation sensitivity": f"{point['validation']['sensitivity']:.3f}",
            "validation specificity": f"{point['validation']['specificity']:.3f}",
            "test sensitivity": _with_interval(point["sensitivity"]),
            "test specificity": _with_interval(point["specificity"]),
        }))
    if "skipped" in calibration:
        parts.append(f'<p class="note">Calibration: {_html.escape_text(calibration["skipped"])}.</p>')
    else:
        test = calibration["test"]
        parts.append(_html.metrics_table({
            "temperature": f"{calibration['temperature']:.3f}",
            "test ECE raw": _with_interval(test["raw"]["ece"]),
            "test ECE scaled": _with_interval(test["temperature_scaled"]["ece"]),
            "test Brier raw": _with_interval(test["raw"]["brier"]),
            "test Brier scaled": _with_interval(test["temperature_scaled"]["brier"]),
        }))
    parts.append('<p class="note">The threshold and the temperature were chosen on the validation split only; the '
                 "test numbers above are their first use on the test split (the ROC plot marks the operating "
                 "point).</p>")
    return "".join(parts)


def error_report(
    predictions: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    items: Sequence[Mapping] | None = None,
    network: nn.Module | None = None,
    transform=None,
    threshold: float = 0.5,
    n_correct: int = 5,
    max_cases: int | None = None,
    cam_method: str = "layercam",
    cam_layers: str | Sequence[str] | None = None,
    channel: int = 0,
    title: str = "Error analysis",
    items_source: str | None = None,
    validation_predictions: str | os.PathLike | None = None,
    n_resamples: int = 1000,
) -> Path:
    """Write the error-analysis report of an evaluation (see the module docstring for the files).

    Args:
        predictions: the evaluation's ``predictions.csv``.
        output_dir: folder for the report (e.g. ``<bundle>/eval/report``).
        items: the datalist items explained (``id``, ``image``, ...), to find each case's image; every prediction id
            must be one of them. ``None``: no pictures and no check.
        network: the trained classifier (for CAMs); ``None``: no pictures.
        transform: the evaluation's preprocessing (loads and prepares an item's ``image``).
        threshold: decision threshold on the probability of class 1 (two classes).
        n_correct: how many of the most confident correct cases to show.
        max_cases: show at most this many misclassified cases (all are in the CSV); ``None``: all.
        cam_method: ``"layercam"`` or ``"gradcam"``.
        cam_layers: CAM target layers (stage names), fused; ``None``: the network's last two stages (as
            ``configs/explain.json``).
        channel: image channel shown (the CT bundle's channel 0 is the lung window).
        title: page title.
        items_source: what ``items`` are, named in the error when the ids do not match (e.g. the datalist file).
        validation_predictions: the validation split's ``predictions.csv`` of the same model; with it the report
            adds the operating point and the temperature chosen on validation
            (:func:`~medtl_monai.evaluation.post_hoc_metrics`): the point on the ROC curve, test sensitivity and
            specificity at it with CIs, and the calibration before and after temperature scaling.
        n_resamples: bootstrap resamples of the confidence intervals and bands (whole patients when ``items`` carry
            ``patient_id``).

    Returns:
        The path of ``report.html``.

    Raises:
        ValueError: an unreadable predictions file (see :func:`read_predictions`).
        PredictionsMismatchError: a prediction id is not one of ``items`` (see :func:`check_prediction_ids`).
    """
    rows, names = read_predictions(predictions, threshold)
    if items is not None:
        check_prediction_ids(predictions, rows, items, items_source or f"the {len(items)} datalist items given")
    out = Path(output_dir)
    (out / "cases").mkdir(parents=True, exist_ok=True)
    probs = np.array([r.probs for r in rows])
    labels = np.array([r.label for r in rows])
    groups = patient_groups([r.id for r in rows], items) if items is not None else None
    summary = classification_summary(probs, labels, threshold)
    ci = summary_with_ci(probs, labels, threshold, groups=groups, n_resamples=n_resamples)
    post_hoc = (post_hoc_metrics(validation_predictions, predictions, items=items, n_resamples=n_resamples)
                if validation_predictions is not None and Path(validation_predictions).is_file() else None)
    point = post_hoc["operating_point"] if post_hoc and "skipped" not in post_hoc["operating_point"] else None
    temperature = (post_hoc["calibration"]["temperature"]
                   if post_hoc and "skipped" not in post_hoc["calibration"] else None)
    matrix = _plots.confusion_matrix(labels, [r.prediction for r in rows], len(names))
    binary = len(names) == 2
    scaled = None if temperature is None else apply_temperature(logits_from_probabilities(probs), temperature)
    if binary:
        scores, targets, what = probs[:, 1], labels == 1, f"p({names[1]})"
        scaled_scores = None if scaled is None else scaled[:, 1]
        bands = {"roc": roc_band(targets, scores, groups, n_resamples), "pr": pr_band(targets, scores, groups, n_resamples)}
    else:
        scores, targets, what = probs.max(1), probs.argmax(1) == labels, "confidence"
        scaled_scores = None if scaled is None else scaled.max(1)
        bands = {"roc": None, "pr": None}
    marker = None if point is None else (1.0 - point["specificity"]["value"], point["sensitivity"]["value"])
    figures = {
        "roc": _plots.roc_figure(probs, labels, names, summary["auroc"], band=bands["roc"], point=marker),
        "pr": _plots.pr_figure(probs, labels, names, summary["auprc"], band=bands["pr"]),
        "confusion": _plots.confusion_figure(matrix, names, f"threshold {threshold:g}" if binary else "arg-max"),
        "calibration": _plots.calibration_figure(scores, targets, what, scaled=scaled_scores, temperature=temperature),
    }
    pngs = {key: save_figure(fig, out / f"{key}.png") for key, fig in figures.items()}
    relabel = write_relabel_csv(rows, names, out / "relabel.csv")

    wrong, right = rank_cases(rows, n_correct)
    shown_wrong = wrong if max_cases is None else wrong[: int(max_cases)]
    by_id = {str(item["id"]): item for item in (items or []) if "id" in item}
    cam = None
    if network is not None and transform is not None:
        cam = make_cam(cam_method, network, cam_layers or default_target_layers(network, count=2))

    def card(row: CaseRow) -> str:
        pictures: list[str] = []
        if cam is not None and row.id in by_id:
            try:
                plain, overlay = _case_pictures(by_id[row.id], transform, cam, row.prediction, out / "cases", channel)
                pictures = [_html.png_img(plain, "image"), _html.png_img(overlay, "CAM overlay")]
            except Exception as err:  # one unreadable case must not stop the report; the log says why
                logger.warning("case %s: no pictures (%s)", row.id, type(err).__name__)
                logger.debug("case %s picture error", row.id, exc_info=True)
        if not pictures:
            pictures = [_html.png_img(None, "image and CAM")]
        return _html.case_card(row.id, _facts(row, names), row.correct, pictures)

    metrics = {"cases": str(len(rows)), "patients": "-" if ci["n_patients"] is None else str(ci["n_patients"]),
               "misclassified": str(len(wrong))}
    for label, key in (("AUROC", "auroc"), ("AUPRC", "auprc"), ("accuracy", "accuracy"),
                       ("sensitivity", "sensitivity"), ("specificity", "specificity"), ("Brier", "brier"),
                       ("ECE", "ece")):
        metrics[label] = _with_interval(ci[key])
    metrics["threshold"] = f"{threshold:g}" if binary else "arg-max"
    curves = "".join(f"<figure>{_html.png_img(pngs[k], k)}<figcaption>{k}.png</figcaption></figure>" for k in figures)
    more = f" (showing the first {len(shown_wrong)})" if len(shown_wrong) < len(wrong) else ""
    sections = [
        ("summary", "Summary", _html.metrics_table(metrics)),
        ("curves", "Curves, confusion matrix and calibration",
         f'<div class="figures">{curves}</div><p class="note">{_html.escape_text(_curve_note(ci, binary))}</p>'),
        *([("validation", "Chosen on validation: operating point and calibration", _post_hoc_html(post_hoc))]
          if post_hoc else []),
        ("misclassified", f"Misclassified cases: {len(wrong)}{more}, most confident first",
         f'<div class="cases">{"".join(card(r) for r in shown_wrong)}</div>'),
        ("correct", f"Most confident correct cases: {len(right)}", f'<div class="cases">{"".join(card(r) for r in right)}</div>'),
        ("files", "Files", (f'<p class="note">Relabelling sheet: <a href="{relabel.name}">{relabel.name}</a> '
                           "(every case, misclassified first, with an empty note column). CAMs show the evidence for "
                           "the predicted class; red = strongest.</p>")),
    ]
    intro = f"{len(rows)} labelled cases from {Path(predictions).name}; cases are named by datalist id."
    path = out / "report.html"
    path.write_text(_html.page(title, sections, intro), encoding="utf-8")
    logger.info("error report: %s (%d misclassified of %d)", path, len(wrong), len(rows))
    return path
