"""MONAI Label app serving medtl-monai classification bundles (one infer and one train task per bundle).

Start (in the environment made by ``scripts/setup_integration_env.sh label``)::

    monailabel start_server --app monailabel_app --studies /path/to/images --host 127.0.0.1 --port 8000 \
        --conf zoo_source github --conf bundles bundles/bimcv_truncated

``--conf`` keys: ``bundles`` (comma-separated bundle folders, default: every folder of ``<repo>/bundles`` with
``configs/inference.json``), ``models`` (comma-separated subset of their names), ``model_file`` (default
``models/model.pt``; ``models/model.ts`` or ``models/model.onnx`` work too), ``config_files`` (comma-separated
override files applied after ``train.json`` for training, e.g. ``configs/xray.json``; inference needs none, since
the network and its preprocessing come from the trained model's card), ``overrides`` (JSON
object of bundle config values for inference and training, e.g. ``{"max_epochs": 10}``), ``device``
(``cpu``/``cuda``).
A task's name is its bundle folder's name: ``POST /infer/<name>`` classifies an uploaded volume,
``POST /train/<name>`` trains on the datastore's classification labels (see ``lib/labels.py``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from medtl_monai.bundle import metadata_class_names
from lib.infers import BundleClassificationInfer
from lib.trainers import BundleClassificationTrain
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask

logger = logging.getLogger(__name__)

#: the repository's bundles folder (the default when ``--conf bundles`` is not given)
DEFAULT_BUNDLES = Path(__file__).resolve().parent.parent / "bundles"


def find_bundles(spec: str | None, names: str | None = None) -> dict[str, Path]:
    """Bundle folders by name from a comma-separated list (``None``: every bundle of :data:`DEFAULT_BUNDLES`).

    Raises:
        ValueError: a listed folder is not a bundle, or a requested name is not found.
    """
    if spec:
        folders = [Path(p.strip()).expanduser().resolve() for p in spec.split(",") if p.strip()]
        bad = [str(f) for f in folders if not (f / "configs" / "inference.json").is_file()]
        if bad:
            raise ValueError(f"not bundle folders (no configs/inference.json): {bad}")
    else:  # every classification bundle of the repository (metadata naming its classes)
        folders = []
        for p in sorted(DEFAULT_BUNDLES.iterdir()):
            if not (p / "configs" / "inference.json").is_file():
                continue
            try:
                metadata_class_names(p)
                folders.append(p)
            except (ValueError, OSError) as err:
                logger.warning("skipping bundle %s: %s", p, err)
    bundles = {f.name: f for f in folders}
    if names:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        missing = [n for n in wanted if n not in bundles]
        if missing:
            raise ValueError(f"models {missing} not among the bundles {sorted(bundles)}")
        bundles = {n: bundles[n] for n in wanted}
    return bundles


class MedTLApp(MONAILabelApp):
    """Classification with medtl-monai bundles: infer (class probabilities) and train (from datastore classes)."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.bundles = find_bundles(conf.get("bundles"), conf.get("models"))
        self.model_file = conf.get("model_file", "models/model.pt")
        self.extra_configs = [c.strip() for c in conf.get("config_files", "").split(",") if c.strip()]
        self.overrides: dict[str, Any] = json.loads(conf.get("overrides", "{}"))
        self.device = conf.get("device", "cuda" if torch.cuda.is_available() else "cpu")
        logger.info("medtl-monai bundles: %s", {k: str(v) for k, v in self.bundles.items()})
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="medtl-monai classification",
                         description="Transfer-learning classifiers (medtl-monai bundles)", version="0.1.0")

    def init_infers(self) -> dict[str, InferTask]:
        return {
            name: BundleClassificationInfer(folder, model_file=self.model_file, overrides=self.overrides, device=self.device)
            for name, folder in self.bundles.items()
        }

    def init_trainers(self) -> dict[str, TrainTask]:
        work = Path(self.app_dir) / "model"
        return {
            name: BundleClassificationTrain(folder, work_dir=work / name, overrides=self.overrides,
                                            config_file=["configs/train.json", *self.extra_configs])
            for name, folder in self.bundles.items()
        }


if __name__ == "__main__":  # a quick local check without the server: python main.py STUDIES IMAGE [MODEL]
    import sys

    logging.basicConfig(level=logging.INFO)
    app = MedTLApp(os.path.dirname(os.path.abspath(__file__)), sys.argv[1], {})
    model = sys.argv[3] if len(sys.argv) > 3 else next(iter(app.bundles))
    print(json.dumps(app.infer({"model": model, "image": sys.argv[2]})["params"], indent=2))
