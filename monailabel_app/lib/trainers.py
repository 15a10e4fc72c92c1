"""MONAI Label train task for a medtl-monai classification bundle: datastore classes -> datalist -> ``train.json``.

MONAI Label's stock bundle train task only knows label *files* (segmentation masks). This task reads each image's
class from the datastore (see :mod:`lib.labels`), writes a datalist with ``training`` and ``validation`` splits and
the bundle's class names, and runs the bundle's ``train.json`` with ``python -m monai.bundle run`` in a child
process, so the bundle's recipe (loss weights, scheduler, checkpoints into ``models/``) applies unchanged. The
infer task reloads the new ``models/model.pt`` on its next request.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lib.labels import classification_items, split_items
from medtl_monai.bundle import metadata_class_names
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.exception import MONAILabelError, MONAILabelException
from monailabel.interfaces.tasks.train import TrainTask

__all__ = ["BundleClassificationTrain"]

logger = logging.getLogger(__name__)


def _cli_value(value: Any) -> str:
    """A config value as a ``monai.bundle`` command-line argument (Python literals for booleans: ``False``)."""
    if isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else json.dumps(value)


class BundleClassificationTrain(TrainTask):
    """Train a classification bundle on the datastore's labelled images.

    Request keys (``POST /train/<model>`` body; defaults from :meth:`config`): ``max_epochs``, ``val_split``
    (fraction of each class held out for validation), ``seed``, ``fine_tune`` (start from the bundle's current
    ``models/model.pt`` when there is one, else from the config's ``weights``), ``overrides`` (more bundle config
    values), ``timeout`` (seconds for the training process). Each run is a new training (the bundle's checkpointer
    does not resume the previous run's epochs).

    Args:
        bundle_dir: the bundle folder (its ``models/`` receives the checkpoints).
        work_dir: folder for datalists and training logs.
        config_file: training config(s) inside the bundle (a list: later files override earlier ones).
        overrides: bundle config overrides applied to every run (e.g. ``{"batch_size": 4}``).
        description: shown in ``/info``.
    """

    def __init__(
        self,
        bundle_dir: str | os.PathLike,
        work_dir: str | os.PathLike,
        config_file: str | Sequence[str] = "configs/train.json",
        overrides: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> None:
        self.bundle_dir = Path(bundle_dir).resolve()
        self.work_dir = Path(work_dir)
        self.config_files = [config_file] if isinstance(config_file, str) else list(config_file)
        self.overrides = dict(overrides or {})
        self.class_names = metadata_class_names(self.bundle_dir)
        self._last: dict[str, Any] = {}
        classes = ", ".join(self.class_names)
        super().__init__(description or f"train {self.bundle_dir.name} ({classes}) on the datastore's labelled images")

    def config(self) -> dict[str, Any]:
        return {"max_epochs": 30, "val_split": 0.2, "seed": 0, "fine_tune": True, "timeout": 24 * 3600}

    def stats(self) -> dict[str, Any]:
        return dict(self._last)

    def write_datalist(self, datastore: Datastore, val_split: float, seed: int) -> tuple[Path, dict[str, list]]:
        """Write ``datalist.json`` (splits + ``class_names``) for the datastore's labelled images."""
        items = classification_items(datastore, self.class_names)
        splits = split_items(items, val_fraction=val_split, seed=seed)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.work_dir / "datalist.json"
        path.write_text(json.dumps({"class_names": self.class_names, **splits}, indent=2))
        return path, splits

    def __call__(self, request: Mapping[str, Any], datastore: Datastore) -> dict[str, Any]:
        params = {**self.config(), **dict(request)}
        try:
            datalist, splits = self.write_datalist(datastore, float(params["val_split"]), int(params["seed"]))
        except ValueError as err:
            raise MONAILabelException(MONAILabelError.INVALID_INPUT, str(err)) from err
        # each MONAI Label run is a new training on the current labels, not the continuation of the last run's epochs
        overrides = {**self.overrides, "resume": False, "datalist": str(datalist),
                     "max_epochs": int(params["max_epochs"]), "progress_bar": False}
        previous = self.bundle_dir / "models" / "model.pt"
        if str(params["fine_tune"]).lower() in ("true", "1") and previous.is_file():
            overrides["init_from"] = str(previous)  # start from the current model (new optimizer and schedule)
        overrides.update(dict(params.get("overrides") or {}))
        files = [str(self.bundle_dir / f) for f in self.config_files]
        config_arg = files[0] if len(files) == 1 else "[" + ",".join(f"'{f}'" for f in files) + "]"
        cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_arg]
        for key, value in overrides.items():
            cmd += [f"--{key}", _cli_value(value)]
        log_path = self.work_dir / "train.log"
        logger.info("training %s on %d + %d images: %s", self.bundle_dir.name, len(splits["training"]),
                    len(splits["validation"]), cmd)
        start = time.time()
        with open(log_path, "w") as log:
            proc = subprocess.run(cmd, cwd=str(self.work_dir), stdout=log, stderr=subprocess.STDOUT,
                                  timeout=float(params["timeout"]), check=False)
        self._last = {
            "bundle": self.bundle_dir.name,
            "returncode": proc.returncode,
            "n_training": len(splits["training"]),
            "n_validation": len(splits["validation"]),
            "datalist": str(datalist),
            "log": str(log_path),
            "model": str(self.bundle_dir / "models" / "model.pt"),
            "seconds": round(time.time() - start, 1),
        }
        if proc.returncode != 0:
            tail = log_path.read_text()[-2000:]
            message = f"bundle training failed (exit {proc.returncode}); log {log_path}:\n{tail}"
            raise MONAILabelException(MONAILabelError.APP_TRAIN_FAILED, message)
        return dict(self._last)
