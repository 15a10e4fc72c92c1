"""Write an evaluation's per-case predictions (CSV) and its metrics (JSON) from a MONAI evaluator."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events

from .metrics import classification_summary

__all__ = ["PredictionWriter"]

logger = logging.getLogger("medtl_monai.evaluation")


def _case_id(batch_item: dict, index: int) -> str:
    if isinstance(batch_item, dict):
        if batch_item.get("id") is not None:
            return str(batch_item["id"])
        image = batch_item.get("image")
        meta = getattr(image, "meta", None) or batch_item.get("image_meta_dict") or {}
        name = meta.get("filename_or_obj")
        if name:
            return os.path.basename(str(name).rstrip("/"))
    return f"case{index:05d}"


class PredictionWriter:
    """Collect per-case class probabilities during an evaluation and write them as CSV (and metrics as JSON).

    The CSV has ``id``, ``label`` (empty for inference), one ``prob_<class>`` column per class and ``prediction``.
    When labels are present, ``metrics.json`` holds :func:`classification_summary` plus the engine's own metrics.

    Args:
        output_dir: folder for the files.
        class_names: names of the classes, in index order.
        csv_name: name of the predictions file.
        metrics_name: name of the metrics file (``None`` disables it).
        threshold: decision threshold for two classes.
        pred_key, label_key: keys of the decollated engine output.
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
    ) -> None:
        self.output_dir = Path(output_dir)
        self.class_names = [str(c) for c in class_names]
        self.csv_name, self.metrics_name, self.threshold = csv_name, metrics_name, float(threshold)
        self.pred_key, self.label_key = pred_key, label_key
        self.rows: list[dict] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self.rows = []

    def _collect(self, engine: Engine) -> None:
        outputs = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        batch = engine.state.batch if isinstance(engine.state.batch, list) else [None] * len(outputs)
        for item, out in zip(batch, outputs):
            probs = torch.as_tensor(out[self.pred_key]).detach().float().cpu().reshape(-1).numpy()
            label = out.get(self.label_key)
            if label is not None:
                label_t = torch.as_tensor(label).detach().cpu().reshape(-1)
                label = int(label_t.argmax()) if label_t.numel() == len(probs) and label_t.numel() > 1 else int(label_t[0])
            self.rows.append({"id": _case_id(item, len(self.rows)), "label": label, "probs": probs})

    def _write(self, engine: Engine) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / self.csv_name
        names = self.class_names
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "label", *[f"prob_{n}" for n in names], "prediction"])
            for row in self.rows:
                probs = row["probs"]
                pred = int(probs[1] >= self.threshold) if len(probs) == 2 else int(np.argmax(probs))
                label = "" if row["label"] is None else names[row["label"]]
                writer.writerow([row["id"], label, *[f"{p:.6f}" for p in probs], names[pred]])
        logger.info("wrote %d per-case predictions to %s", len(self.rows), path)
        labelled = [r for r in self.rows if r["label"] is not None]
        if self.metrics_name and labelled:
            summary = classification_summary(np.stack([r["probs"] for r in labelled]), [r["label"] for r in labelled], self.threshold)
            for key, value in engine.state.metrics.items():
                if isinstance(value, (int, float)):
                    summary[f"engine_{key}"] = float(value)
            summary["class_names"] = names
            metrics_path = self.output_dir / self.metrics_name
            metrics_path.write_text(json.dumps(summary, indent=2))
            logger.info("test metrics: %s (written to %s)", {k: summary[k] for k in ("auroc", "auprc", "accuracy", "sensitivity", "specificity")}, metrics_path)
