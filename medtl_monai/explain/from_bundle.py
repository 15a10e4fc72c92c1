"""The error report of a run's evaluation: the run's trained model, its preprocessing, its datalist and its
predictions, taken from the run the way the bundle's own workflows take them.

A run (``<bundle>/runs/<name>``, :func:`~medtl_monai.bundle.resolve_run`; by default the published run, else the
latest) holds everything the report needs: ``models/`` (the weights and the model card, read through
:class:`~medtl_monai.bundle.BundleModel`), ``config.json`` (the configs and overrides it was trained with, so the
datalist is the run's own) and ``eval/predictions.csv`` (``configs/evaluate.json`` run with ``--run_name``). The
report goes into ``<run>/eval/report`` unless ``report_dir`` says otherwise. The predictions must be cases of the
datalist split explained (:func:`~medtl_monai.explain.report.check_prediction_ids`). When the evaluation also
predicted the validation split (``<run>/eval/validation/predictions.csv``, as ``evaluate.json`` does by default),
the report adds the operating point and the temperature chosen on it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..bundle import BundleModel, load_config, require_file, resolve_run
from ..data import MissingDataError, load_split
from .report import check_prediction_ids, error_report, read_predictions

__all__ = ["bundle_error_report"]

logger = logging.getLogger("medtl_monai.explain")

#: the resolved config a training leaves in its run folder (``medtl_monai.bundle.run_config``)
_RUN_CONFIG = "config.json"


def _validation_beside(csv_path: Path) -> Path | None:
    """The validation predictions ``configs/evaluate.json`` writes beside the test ones, when they exist."""
    path = csv_path.parent / "validation" / csv_path.name
    return path if path.is_file() else None


def bundle_error_report(
    bundle: str | os.PathLike,
    config_files: Sequence[str | os.PathLike] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    run: str | os.PathLike | None = None,
    predictions: str | os.PathLike | None = None,
    report_dir: str | os.PathLike | None = None,
    split: str = "test",
    **report_options: Any,
) -> Path:
    """Write the error report of a run's evaluation (``scripts/error_report.py``).

    Args:
        bundle: the bundle folder.
        config_files: the configs that say where the data are; default: the run's ``config.json`` (its training
            configs and overrides), else ``train.json``. Give e.g. ``["train.json", "xray.json"]`` to read the
            bundle's configs instead.
        overrides: config keys to set (``dataset_dir``, ``datalist``, ...), as for the evaluation. A ``run_name``
            counts as ``run``. ``output_dir`` is refused: it would name the evaluation folder to the bundle and the
            report folder to a reader (use ``run``, ``predictions`` and ``report_dir``).
        run: the run explained: a name under ``<bundle>/runs/``, a run folder, or ``None`` (the published run, else
            the latest, else the bundle folder itself for a bundle with no runs).
        predictions: the evaluation's CSV (default ``<run>/eval/predictions.csv``).
        report_dir: the report's folder (default ``<run>/eval/report``).
        split: the datalist split the predictions are of (``configs/evaluate.json`` evaluates ``test``).
        report_options: passed to :func:`medtl_monai.explain.report.error_report` (``threshold``, ``n_correct``,
            ``max_cases``, ``cam_method``, ``cam_layers``, ``channel``).

    Returns:
        The path of ``report.html``.

    Raises:
        ValueError: ``output_dir`` among the overrides.
        MissingDataError: the run, a config, the trained model, the datalist, its split or the predictions do not
            exist.
        PredictionsMismatchError: a prediction id is not a case of the datalist split (predictions of another data
            set).
    """
    overrides = dict(overrides or {})
    if "output_dir" in overrides:
        raise ValueError("the error report takes no output_dir (--output_dir): the report goes to report_dir "
                         "(--report_dir, default <run>/eval/report) and the evaluation is read from the run "
                         "(--run, default the published run) or from predictions (--predictions).")
    named = overrides.pop("run_name", None)
    run_path = resolve_run(bundle, run if run is not None else named)
    root = Path(bundle).resolve()
    csv_path = Path(predictions) if predictions else run_path / "eval" / "predictions.csv"
    evaluate = f"configs/evaluate.json with --run_name {run_path.name}"
    require_file(csv_path, f"evaluate this run first ({evaluate})")
    if config_files is None:
        config_files = [run_path / _RUN_CONFIG] if (run_path / _RUN_CONFIG).is_file() else ["train.json"]
    parser = load_config(bundle, config_files, {**overrides, "run_name": run_path.name, "run_dir": str(run_path)})
    datalist = Path(require_file(parser.get_parsed_content("datalist"), "pass --dataset_dir or --datalist"))
    if not json.loads(datalist.read_text()).get(split):
        raise MissingDataError(f"{datalist}: no {split!r} split to explain.")
    items = load_split(datalist, split)
    source = f"{datalist} (split {split!r}, {len(items)} cases)"
    check_prediction_ids(csv_path, read_predictions(csv_path)[0], items, source,
                         hint=f"evaluate this run on that datalist first ({evaluate} --datalist {datalist}), or give "
                              "the report the datalist that was evaluated (--datalist or --dataset_dir)")
    model_overrides = {key: overrides[key] for key in ("ckpt_dir",) if key in overrides}
    model = BundleModel(bundle, overrides=model_overrides, device=str(parser.get_parsed_content("device")), run=run_path)
    logger.info("error report of run %s: %s on %s", run_path.name, csv_path, source)
    return error_report(
        csv_path,
        Path(report_dir) if report_dir else run_path / "eval" / "report",
        items=items,
        network=model.network,
        transform=model.transform,
        title=f"Error analysis: {root.name}" + (f", run {run_path.name}" if run_path != root else ""),
        items_source=source,
        validation_predictions=_validation_beside(csv_path),
        **report_options,
    )
