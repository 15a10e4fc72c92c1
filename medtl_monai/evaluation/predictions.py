"""Write an evaluation's per-case predictions (CSV) and its metrics (JSON) from a MONAI evaluator."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from ..data.skipping import CASE_INDEX_KEY
from ..io.checks import MODALITY_FLAG_KEY
from .bootstrap import summary_with_ci
from .metrics import classification_summary
from .multilabel import multilabel_summary

__all__ = ["STATUSES", "PredictionWriter"]

logger = logging.getLogger("medtl_monai.evaluation")

#: The ``status`` of a row: predicted, predicted but flagged (e.g. a modality the model was not trained on), or
#: skipped (unusable input, no prediction).
STATUSES: tuple[str, ...] = ("ok", "flagged", "skipped")


def _image_meta(batch_item: dict) -> dict:
    image = batch_item.get("image")
    return getattr(image, "meta", None) or batch_item.get("image_meta_dict") or {}


def _case_id(batch_item: dict, index: int) -> str:
    if isinstance(batch_item, dict):
        if batch_item.get("id") is not None:
            return str(batch_item["id"])
        name = _image_meta(batch_item).get("filename_or_obj")
        if name:
            return os.path.basename(str(name).rstrip("/"))
    return f"case{index:05d}"


def _plain(value: Any) -> Any:
    """A batch value as CSV text material: tensors and arrays as numbers or lists, None as ``""``."""
    if value is None:
        return ""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        value = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
        return value.item() if value.size == 1 else value.tolist()
    if isinstance(value, (list, tuple)):
        return ";".join(str(_plain(v)) for v in value)
    return value


def _write_atomically(path: Path, write: Callable[[Any], None]) -> None:
    """Write ``path`` through a temporary file in its folder, then replace it in one step."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # same folder: os.replace is one step
    try:
        with open(temporary, "w", newline="") as f:
            write(f)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class PredictionWriter:
    """Collect per-case class probabilities during an evaluation and write them as CSV (and metrics as JSON).

    The CSV has ``id``, ``label`` (empty for inference), one ``prob_<class>`` column per class, ``prediction``,
    ``status`` (:data:`STATUSES`), ``error`` (why a case was flagged or skipped, as ``<path>: <problem>``), then the
    ``extra_columns``. Cases that the engine's data loader set aside (a
    :class:`~medtl_monai.data.SkippingDataLoader`) are rows with status ``skipped`` and no probabilities; rows follow
    the order of the data when the items carry their index (:class:`~medtl_monai.data.SkipBadCasesDataset`). When
    labels are present, ``metrics.json`` holds :func:`classification_summary` of the predicted rows, under ``"ci"``
    every metric with its 95% bootstrap confidence interval (:func:`~medtl_monai.evaluation.summary_with_ci`: whole
    patients resampled when the items carry patient ids; the method, the number of cases and of patients), and the
    engine's own metrics.

    Both files are written fresh for each run: stale ones are removed when the run starts, and each is written to a
    temporary file that replaces the old one in one step at the end, so a reader never sees a partial or an old file.

    Args:
        output_dir: folder for the files.
        class_names: names of the classes, in index order.
        csv_name: name of the predictions file.
        metrics_name: name of the metrics file (``None`` disables it).
        threshold: decision threshold for two classes.
        pred_key, label_key: keys of the decollated engine output.
        flag_keys: keys of each batch item holding ``""`` or a problem (as
            :class:`~medtl_monai.io.checks.CheckModalityd` writes them); a problem marks the row ``flagged``.
        extra_columns: further columns, each copied from the batch item's key of that name, else from the image's
            metadata (e.g. ``"Modality"``), else empty.
        patient_key: the batch items' patient id (datalists' ``patient_id``), for the cluster bootstrap.
        n_resamples: bootstrap resamples of the confidence intervals.
        multi_label: the predictions are one sigmoid probability per class (``configs/multi_label.json``): the CSV
            has ``label_<class>`` columns (1, 0, or -1 for uncertain; empty for inference) instead of ``label``, one
            ``prob_<class>`` per class, and ``prediction`` = the classes at or above ``threshold`` joined by ``;``;
            ``metrics.json`` holds :func:`~medtl_monai.evaluation.multilabel_summary` (per-class AUROC, AUPRC,
            sensitivity and specificity with their CIs, uncertain entries left out of their class; mean AUROC and
            AUPRC, also over ``summary_classes``) and the engine's metrics.
        summary_classes: multi-label: classes whose mean AUROC / AUPRC is reported as well (``None``: none).
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        class_names: Sequence[str],
        csv_name: str = "predictions.csv",
        metrics_name: str | None = "metrics.json",
        threshold: float = 0.5,
        pred_key: str = "pred",
        label_key: str = "label",
        flag_keys: Sequence[str] = (MODALITY_FLAG_KEY,),
        extra_columns: Sequence[str] = (),
        patient_key: str = "patient_id",
        n_resamples: int = 2000,
        multi_label: bool = False,
        summary_classes: Sequence[str] | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.class_names = [str(c) for c in class_names]
        self.csv_name, self.metrics_name, self.threshold = csv_name, metrics_name, float(threshold)
        self.pred_key, self.label_key = pred_key, label_key
        self.flag_keys = tuple(flag_keys)
        self.extra_columns = [str(c) for c in extra_columns]
        self.patient_key, self.n_resamples = patient_key, int(n_resamples)
        self.multi_label = bool(multi_label)
        self.summary_classes = None if summary_classes is None else [str(c) for c in summary_classes]
        clash = set(self.extra_columns) & {"id", "label", "prediction", "status", "error"}
        if clash:
            raise ValueError(f"extra_columns {sorted(clash)} clash with the standard columns of the predictions file.")
        self.rows: list[dict] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.remove_stale_files)
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _files(self) -> list[Path]:
        return [self.output_dir / name for name in (self.csv_name, self.metrics_name) if name]

    def remove_stale_files(self, engine: Engine | None = None) -> None:
        """Remove the predictions and metrics files of a previous run (when the engine starts; a bundle's
        ``initialize`` calls it too, so that a run that fails before its engine starts leaves no stale file)."""
        for path in self._files():
            if path.is_file():
                path.unlink()
                logger.info("removed %s of a previous run", path)

    def _reset(self, engine: Engine) -> None:
        self.rows = []

    def _collect(self, engine: Engine) -> None:
        outputs = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        batch = engine.state.batch if isinstance(engine.state.batch, list) else [None] * len(outputs)
        for item, out in zip(batch, outputs):
            probs = torch.as_tensor(out[self.pred_key]).detach().float().cpu().reshape(-1).numpy()
            label = out.get(self.label_key)
            if label is not None and self.multi_label:
                label = [int(v) for v in torch.as_tensor(label).detach().cpu().reshape(-1).tolist()]
            elif label is not None:
                label_t = torch.as_tensor(label).detach().cpu().reshape(-1)
                label = int(label_t.argmax()) if label_t.numel() == len(probs) and label_t.numel() > 1 else int(label_t[0])
            item = item if isinstance(item, dict) else {}
            flags = [str(_plain(item.get(key))) for key in self.flag_keys if _plain(item.get(key)) not in ("", [])]
            index = _plain(item.get(CASE_INDEX_KEY))
            self.rows.append({
                "id": _case_id(item, len(self.rows)), "label": label, "probs": probs,
                "status": "flagged" if flags else "ok", "error": "; ".join(flags),
                "index": index if isinstance(index, int) else None,
                "patient": _plain(item.get(self.patient_key)),
                "extra": {name: _plain(item[name] if name in item else _image_meta(item).get(name))
                          for name in self.extra_columns},
            })

    def _skipped_rows(self, engine: Engine) -> list[dict]:
        records = getattr(getattr(engine, "data_loader", None), "skipped", None) or []
        return [{"id": r["id"], "label": None, "probs": None, "status": "skipped", "error": r["error"],
                 "index": r.get("index"), "extra": {name: "" for name in self.extra_columns}} for r in records]

    def _write(self, engine: Engine) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        rows = self.rows + self._skipped_rows(engine)
        if rows and all(r["index"] is not None for r in rows):
            rows.sort(key=lambda r: r["index"])
        names = self.class_names
        if self.multi_label:
            self._write_multilabel(engine, rows)
            return

        def write_csv(f) -> None:
            writer = csv.writer(f)
            writer.writerow(["id", "label", *[f"prob_{n}" for n in names], "prediction", "status", "error",
                             *self.extra_columns])
            for row in rows:
                probs = row["probs"]
                if probs is None:
                    cells, prediction = [""] * len(names), ""
                else:
                    pred = int(probs[1] >= self.threshold) if len(probs) == 2 else int(np.argmax(probs))
                    cells, prediction = [f"{p:.6f}" for p in probs], names[pred]
                label = "" if row["label"] is None else names[row["label"]]
                writer.writerow([row["id"], label, *cells, prediction, row["status"], row["error"],
                                 *[row["extra"][c] for c in self.extra_columns]])

        path = self.output_dir / self.csv_name
        _write_atomically(path, write_csv)
        counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
        logger.info("wrote %d rows to %s (%d ok, %d flagged, %d skipped)", len(rows), path, *counts.values())
        labelled = [r for r in self.rows if r["label"] is not None]
        if self.metrics_name and labelled:
            probs, labels = np.stack([r["probs"] for r in labelled]), [r["label"] for r in labelled]
            summary = classification_summary(probs, labels, self.threshold)
            patients = [r["patient"] for r in labelled]
            groups = [str(p) for p in patients] if all(p not in (None, "") for p in patients) else None
            summary["ci"] = summary_with_ci(probs, labels, self.threshold, groups=groups, n_resamples=self.n_resamples)
            for key, value in engine.state.metrics.items():
                if isinstance(value, (int, float)):
                    summary[f"engine_{key}"] = float(value)
            summary["class_names"] = names
            metrics_path = self.output_dir / self.metrics_name
            _write_atomically(metrics_path, lambda f: f.write(json.dumps(summary, indent=2)))
            logger.info("test metrics: %s (written to %s)", {k: summary[k] for k in ("auroc", "auprc", "accuracy", "sensitivity", "specificity")}, metrics_path)

    def _write_multilabel(self, engine: Engine, rows: list[dict]) -> None:
        """The multi-label files: ``label_<class>`` / ``prob_<class>`` columns, the multi-label summary."""
        names = self.class_names

        def write_csv(f) -> None:
            writer = csv.writer(f)
            writer.writerow(["id", *[f"label_{n}" for n in names], *[f"prob_{n}" for n in names], "prediction",
                             "status", "error", *self.extra_columns])
            for row in rows:
                probs, label = row["probs"], row["label"]
                if probs is None:
                    cells, prediction = [""] * len(names), ""
                else:
                    cells = [f"{p:.6f}" for p in probs]
                    prediction = ";".join(n for n, p in zip(names, probs) if p >= self.threshold)
                labels = [""] * len(names) if label is None else [str(v) for v in label]
                writer.writerow([row["id"], *labels, *cells, prediction, row["status"], row["error"],
                                 *[row["extra"][c] for c in self.extra_columns]])

        path = self.output_dir / self.csv_name
        _write_atomically(path, write_csv)
        logger.info("wrote %d multi-label rows to %s", len(rows), path)
        labelled = [r for r in self.rows if r["label"] is not None]
        if not (self.metrics_name and labelled):
            return
        bad = [r["id"] for r in labelled if len(r["label"]) != len(names) or len(r["probs"]) != len(names)]
        if bad:
            raise ValueError(f"{path}: cases {bad[:5]} do not have one label and one probability per class {names}.")
        patients = [r["patient"] for r in labelled]
        groups = [str(p) for p in patients] if all(p not in (None, "") for p in patients) else None
        summary = multilabel_summary(np.stack([r["probs"] for r in labelled]), [r["label"] for r in labelled], names,
                                     summary_classes=self.summary_classes, threshold=self.threshold, groups=groups,
                                     n_resamples=self.n_resamples)
        for key, value in engine.state.metrics.items():
            if isinstance(value, (int, float)):
                summary[f"engine_{key}"] = float(value)
        metrics_path = self.output_dir / self.metrics_name
        _write_atomically(metrics_path, lambda f: f.write(json.dumps(summary, indent=2)))
        logger.info("test metrics: mean AUROC %.4f, mean AUPRC %.4f (written to %s)", summary["auroc"],
                    summary["auprc"], metrics_path)
