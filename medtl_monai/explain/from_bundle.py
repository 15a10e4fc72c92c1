"""The error report of a bundle's evaluation: the trained model, its preprocessing, the datalist and the predictions,
taken from the bundle the way its own workflows take them.

The training configs (``train.json`` plus override files such as ``xray.json``, and ``--key value`` overrides) say
where the data, the checkpoints and the evaluation are (``datalist``, ``ckpt_dir``, ``output_dir``); the trained
model and its preprocessing come from :class:`~medtl_monai.bundle.BundleModel` (the model card beside the weights).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..bundle import BundleModel, load_config, require_file
from ..data import SPLIT_KEYS, load_split
from .report import error_report

__all__ = ["bundle_error_report"]

logger = logging.getLogger("medtl_monai.explain")


def bundle_error_report(
    bundle: str | os.PathLike,
    config_files: Sequence[str | os.PathLike] = ("train.json",),
    overrides: Mapping[str, Any] | None = None,
    *,
    predictions: str | os.PathLike | None = None,
    report_dir: str | os.PathLike | None = None,
    **report_options: Any,
) -> Path:
    """Write the error report of a bundle's evaluation (``scripts/error_report.py``).

    Args:
        bundle: the bundle folder.
        config_files: the training configs (e.g. ``["train.json", "xray.json"]`` for the X-ray model).
        overrides: config keys to set (``dataset_dir``, ``output_dir``, ``ckpt_dir`` ...), as for the evaluation.
        predictions: the evaluation's CSV (default ``<output_dir>/predictions.csv``).
        report_dir: the report's folder (default ``<output_dir>/report``).
        report_options: passed to :func:`medtl_monai.explain.report.error_report` (``threshold``, ``n_correct``,
            ``max_cases``, ``cam_method``, ``cam_layers``, ``channel``).

    Returns:
        The path of ``report.html``.

    Raises:
        MissingDataError: a config, the trained model, the datalist or the predictions do not exist.
    """
    parser = load_config(bundle, config_files, overrides)
    output_dir = Path(parser.get_parsed_content("output_dir"))
    ckpt_dir = parser.get_parsed_content("ckpt_dir")
    require_file(Path(ckpt_dir) / "model.pt", "train the bundle first (configs/train.json)")
    model = BundleModel(bundle, overrides={"ckpt_dir": ckpt_dir}, device=str(parser.get_parsed_content("device")))
    datalist = parser.get_parsed_content("datalist")
    doc = json.loads(Path(require_file(datalist, "pass --dataset_dir or --datalist")).read_text())
    items = [item for split in SPLIT_KEYS if doc.get(split) for item in load_split(datalist, split)]
    csv_path = Path(predictions) if predictions else output_dir / "predictions.csv"
    require_file(csv_path, "evaluate the bundle first (configs/evaluate.json)")
    return error_report(
        csv_path,
        Path(report_dir) if report_dir else output_dir / "report",
        items=items,
        network=model.network,
        transform=model.transform,
        title=f"Error analysis: {Path(bundle).resolve().name}",
        **report_options,
    )
