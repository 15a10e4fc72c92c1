"""What is chosen on the validation split and reported on the test split: the operating point and the calibration.

``configs/evaluate.json`` predicts the **validation** split (``<eval>/validation/predictions.csv``) before the test
split (``<eval>/predictions.csv``). :func:`post_hoc_metrics` then

- chooses a decision threshold on the validation cases (:func:`~medtl_monai.evaluation.choose_threshold`: Youden's J
  by default, or a target sensitivity or specificity) and reports the test sensitivity and specificity at it with
  bootstrap CIs (:func:`~medtl_monai.evaluation.apply_threshold`, which refuses test cases the threshold saw);
- fits a temperature on the validation cases (:func:`~medtl_monai.evaluation.fit_temperature`; Guo et al., ICML
  2017) and reports the test ECE and Brier score before and after it, with CIs; when the training split is known it
  also reports them after the prior correction of a class-weighted model (:func:`~medtl_monai.evaluation.
  prior_correction`; Saerens et al. 2002), which is what applies to the bundles' models (they train with
  inverse-frequency class weights, so their raw probabilities are those of a balanced data set).

Nothing here reads a test label to choose anything: the threshold and the temperature come from validation only,
which is what TRIPOD+AI and CLAIM ask of a reported operating point. :func:`add_post_hoc_metrics` adds the result to
the test ``metrics.json`` (keys ``operating_point`` and ``calibration``), the config step of ``evaluate.json``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .bootstrap import bootstrap_distribution, percentile_interval, resampling_method
from .calibration import apply_temperature, fit_temperature, logits_from_probabilities, prior_correction
from .operating_point import apply_threshold, choose_threshold
from .prediction_table import PredictionTable, patient_groups, read_prediction_table

__all__ = ["add_post_hoc_metrics", "post_hoc_metrics"]

logger = logging.getLogger("medtl_monai.evaluation")


def _with_ci(labels: np.ndarray, prob_sets: Mapping[str, np.ndarray], groups: Sequence | None, n_resamples: int,
             confidence: float, seed: int) -> dict[str, dict]:
    """ECE and Brier of each probability set, with CIs from the same resamples."""
    names = list(prob_sets)
    estimates, resampled = bootstrap_distribution(labels, [prob_sets[n] for n in names], ["ece", "brier"],
                                                  n_resamples, groups, seed)
    method = resampling_method(groups, n_resamples)
    out: dict[str, dict] = {}
    for i, name in enumerate(names):
        out[name] = {}
        for j, metric in enumerate(("ece", "brier")):
            low, high = percentile_interval(resampled[i, j], confidence)
            out[name][metric] = {"value": float(estimates[i, j]), "ci_low": low, "ci_high": high, "method": method,
                                 "confidence": confidence}
    return out


def _training_prevalence(training_labels: Sequence[int] | None, k: int) -> np.ndarray | None:
    if training_labels is None:
        return None
    counts = np.bincount(np.asarray(training_labels, dtype=np.int64), minlength=k).astype(np.float64)
    return counts / counts.sum() if len(counts) == k and counts.sum() > 0 and np.all(counts > 0) else None


def _operating_point(validation: PredictionTable, test: PredictionTable, groups: Sequence | None, rule: str,
                     target: float | None, n_resamples: int, confidence: float, seed: int) -> dict:
    if len(test.class_names) != 2:
        return {"skipped": f"operating points are for two classes; this task has {len(test.class_names)} (arg-max)"}
    if len(set(validation.labels.tolist())) < 2:
        return {"skipped": f"the validation split ({len(validation)} cases) lacks a class; no threshold is chosen"}
    point = choose_threshold(validation.labels, validation.probs[:, 1], rule, target, ids=validation.ids)
    result = apply_threshold(point, test.labels, test.probs[:, 1], ids=test.ids, groups=groups,
                             n_resamples=n_resamples, confidence=confidence, seed=seed)
    result["chosen_on"] = "validation"
    result["validation"] = {"sensitivity": point.sensitivity, "specificity": point.specificity,
                            "n_cases": point.n_cases}
    return result


def _calibration(validation: PredictionTable, test: PredictionTable, groups: Sequence | None,
                 training_labels: Sequence[int] | None, n_resamples: int, confidence: float, seed: int) -> dict:
    if len(set(validation.labels.tolist())) < 2:
        return {"skipped": f"the validation split ({len(validation)} cases) lacks a class; no temperature is fitted"}
    temperature = fit_temperature(logits_from_probabilities(validation.probs), validation.labels)
    sets = {"raw": test.probs,
            "temperature_scaled": apply_temperature(logits_from_probabilities(test.probs), temperature)}
    prevalence = _training_prevalence(training_labels, len(test.class_names))
    if prevalence is not None:
        sets["prior_corrected"] = prior_correction(test.probs, prevalence, balanced=True)
    test_ci = _with_ci(test.labels, sets, groups, n_resamples, confidence, seed)
    scaled_validation = apply_temperature(logits_from_probabilities(validation.probs), temperature)
    validation_ci = _with_ci(validation.labels, {"raw": validation.probs, "temperature_scaled": scaled_validation},
                             None, n_resamples, confidence, seed)
    return {
        "temperature": temperature,
        "fitted_on": "validation",
        "n_validation_cases": len(validation),
        "training_prevalence": None if prevalence is None else [float(p) for p in prevalence],
        "test": test_ci,
        "validation": validation_ci,
        "note": ("temperature_scaled: T fitted by NLL on validation (ranking and arg-max unchanged); prior_corrected: "
                 "probabilities of a class-weighted model moved to the training prevalence (what applies to the "
                 "bundles' class-weighted loss)"),
    }


def post_hoc_metrics(validation_csv: str | os.PathLike, test_csv: str | os.PathLike, *,
                     items: Sequence[Mapping] | None = None, training_labels: Sequence[int] | None = None,
                     rule: str = "youden", target: float | None = None, n_resamples: int = 2000,
                     confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """The operating point and the calibration chosen on validation, reported on test with CIs.

    Args:
        validation_csv: the validation split's ``predictions.csv``.
        test_csv: the test split's ``predictions.csv``.
        items: datalist items (any splits) whose ``patient_id`` makes the test CIs a cluster bootstrap.
        training_labels: the training split's labels, for the prior correction of a class-weighted model.
        rule: threshold rule (``youden``, ``sensitivity``, ``specificity``).
        target: the target rate of the ``sensitivity`` / ``specificity`` rules.
        n_resamples: bootstrap resamples.
        confidence: coverage of the intervals.
        seed: seed of the resampling.

    Returns:
        ``{"operating_point": {...}, "calibration": {...}}``; a part that cannot be computed (more than two classes
        for the operating point, a validation split without both classes) is ``{"skipped": reason}``.

    Raises:
        ValueError: the two files have different classes, share case ids, or one has no labelled case.
    """
    validation, test = read_prediction_table(validation_csv), read_prediction_table(test_csv)
    for table in (validation, test):
        if not len(table):
            raise ValueError(f"{table.path}: no labelled, predicted case.")
    if validation.class_names != test.class_names:
        raise ValueError(f"{validation.path} has classes {list(validation.class_names)} but {test.path} has "
                         f"{list(test.class_names)}.")
    shared = sorted(set(validation.ids) & set(test.ids))
    if shared:
        raise ValueError(f"{validation.path} and {test.path} share {len(shared)} cases (e.g. {shared[:3]}): the "
                         "validation split must be disjoint from the test split.")
    groups = patient_groups(test.ids, items) if items is not None else None
    return {
        "operating_point": _operating_point(validation, test, groups, rule, target, n_resamples, confidence, seed),
        "calibration": _calibration(validation, test, groups, training_labels, n_resamples, confidence, seed),
    }


def _interval(entry: Mapping) -> str:
    return f"{entry['value']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"


def add_post_hoc_metrics(output_dir: str | os.PathLike, datalist: str | os.PathLike | None = None, *,
                         validation_subdir: str = "validation", csv_name: str = "predictions.csv",
                         metrics_name: str = "metrics.json", rule: str = "youden", target: float | None = None,
                         n_resamples: int = 2000) -> dict[str, Any] | None:
    """Add :func:`post_hoc_metrics` to an evaluation's ``metrics.json`` (rewritten in one step) and log them.

    Args:
        output_dir: the evaluation folder (``predictions.csv``, ``metrics.json``, ``validation/predictions.csv``).
        datalist: the datalist evaluated (patient ids for the CIs, training labels for the prior correction).
        validation_subdir: the validation evaluation's subfolder.
        csv_name: the predictions files' name.
        metrics_name: the test metrics file's name.
        rule: threshold rule.
        target: target rate of the sensitivity / specificity rules.
        n_resamples: bootstrap resamples.

    Returns:
        What was added, or ``None`` when there is no validation or no labelled test evaluation (logged).
    """
    out = Path(output_dir)
    validation_csv, test_csv, metrics_path = out / validation_subdir / csv_name, out / csv_name, out / metrics_name
    if not (validation_csv.is_file() and metrics_path.is_file()):
        logger.info("no operating point or calibration: %s or %s is missing", validation_csv, metrics_path)
        return None
    items, training_labels = None, None
    if datalist is not None and Path(datalist).is_file():
        doc = json.loads(Path(datalist).read_text())
        items = [item for split in ("training", "validation", "test") for item in doc.get(split) or []]
        training = doc.get("training") or []
        if training and all(isinstance(item.get("label"), int) for item in training):
            training_labels = [item["label"] for item in training]
    added = post_hoc_metrics(validation_csv, test_csv, items=items, training_labels=training_labels, rule=rule,
                             target=target, n_resamples=n_resamples)
    metrics = json.loads(metrics_path.read_text())
    metrics.update(added)
    temporary = metrics_path.with_name(f".{metrics_path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(metrics, indent=2))
    os.replace(temporary, metrics_path)
    point, calibration = added["operating_point"], added["calibration"]
    if "skipped" not in point:
        logger.info("operating point (%s on %d validation cases): threshold %.4f; test sensitivity %s, specificity %s",
                    point["rule"], point["chosen_on_cases"], point["threshold"], _interval(point["sensitivity"]),
                    _interval(point["specificity"]))
    if "skipped" not in calibration:
        test = calibration["test"]
        logger.info("calibration: temperature %.3f (fitted on validation); test ECE %s raw, %s temperature-scaled",
                    calibration["temperature"], _interval(test["raw"]["ece"]),
                    _interval(test["temperature_scaled"]["ece"]))
    return added
