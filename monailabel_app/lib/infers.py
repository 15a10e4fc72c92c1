"""MONAI Label infer task for a medtl-monai classification bundle.

MONAI Label's stock bundle infer task guesses the task type from the bundle folder's name and appends a
``Restored`` post-transform (which maps a segmentation mask back to the input space and fails on a vector of class
scores). This task is typed ``classification``, runs the bundle's own preprocessing, inferer and postprocessing
(through :class:`medtl_monai.export.BundleModel`) and returns the class probabilities with the class names of
the metadata's ``channel_def``. The network is reloaded when the model file changes (after training).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.inferers import Inferer, SimpleInferer
from monai.transforms import Compose

from medtl_monai.bundle import BundleModel, metadata_class_names, read_model_card
from monailabel.interfaces.exception import MONAILabelError, MONAILabelException
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask

__all__ = ["BundleClassificationInfer", "spatial_dims_of"]

logger = logging.getLogger(__name__)


def spatial_dims_of(bundle_dir: str | os.PathLike) -> int:
    """The ``spatial_dims`` of a bundle's model: from the card of its trained model, else of its training defaults."""
    bundle = Path(bundle_dir)
    return int(read_model_card(bundle / "models", bundle).network["spatial_dims"])


class BundleClassificationInfer(BasicInferTask):
    """Classification inference with a bundle, without ``Restored``, labels from ``channel_def``.

    Args:
        bundle_dir: the bundle folder.
        model_file: model inside the bundle (``models/model.pt``, ``.ts`` or ``.onnx``).
        config_file: inference config(s) inside the bundle (a list: later files override earlier ones, e.g.
            ``["configs/inference.json", "configs/xray.json"]``).
        overrides: bundle config overrides (as on the ``monai.bundle`` command line).
        device: ``"cpu"``/``"cuda"``; MONAI Label's request ``device`` wins when given.
        description: shown in ``/info``.
    """

    def __init__(
        self,
        bundle_dir: str | os.PathLike,
        model_file: str = "models/model.pt",
        config_file: str | Sequence[str] = "configs/inference.json",
        overrides: Mapping[str, Any] | None = None,
        device: str = "cpu",
        description: str | None = None,
    ) -> None:
        self.bundle_dir = Path(bundle_dir).resolve()
        self.model_file, self.config_file = model_file, config_file
        self.overrides = dict(overrides or {})
        self.device = device
        self._classifier: BundleModel | None = None
        self._stamp: float | None = None
        self._lock = threading.Lock()
        class_names = metadata_class_names(self.bundle_dir)
        super().__init__(
            path=str(self.bundle_dir / model_file),
            network=None,
            type=InferType.CLASSIFICATION,
            labels=list(class_names),
            dimension=spatial_dims_of(self.bundle_dir),
            description=description or f"{self.bundle_dir.name}: class probabilities ({', '.join(class_names)})",
            config={"device": device},
            load_strict=True,
        )

    def classifier(self) -> BundleModel:
        """The bundle's inference, (re)built when the model file is new or changed.

        Raises:
            MONAILabelException: the bundle has no trained model yet.
        """
        path = self.bundle_dir / self.model_file
        if not path.is_file():
            raise MONAILabelException(MONAILabelError.INFERENCE_ERROR, f"{path} does not exist: train the model first.")
        stamp = path.stat().st_mtime
        with self._lock:
            if self._classifier is None or stamp != self._stamp:
                logger.info("loading bundle %s with %s", self.bundle_dir, path)
                self._classifier = BundleModel(self.bundle_dir, config_file=self.config_file, model_file=self.model_file,
                                                    overrides=self.overrides, device=self.device)
                self._stamp = stamp
            return self._classifier

    def pre_transforms(self, data: Any = None) -> Sequence[Callable]:
        c = self.classifier()
        return [*c.load_transforms.transforms, *c.preprocessing.transforms]

    def run_pre_transforms(self, data: dict[str, Any], transforms: Sequence[Callable]) -> dict[str, Any]:
        # MONAI Label adds "image_path" (a string); MONAI's Spacingd updates every "image_*" entry as a metadata dict
        # for NIfTI inputs, so the entry is kept aside while the bundle's transforms run.
        path = data.pop("image_path", None)
        data = super().run_pre_transforms(data, transforms)
        if path is not None:
            data["image_path"] = path
        return data

    def inferer(self, data: Any = None) -> Inferer:
        parser = self.classifier().parser
        return parser.get_parsed_content("inferer") if "inferer" in parser else SimpleInferer()

    def inverse_transforms(self, data: Any = None) -> None:
        return None  # class scores are not an image: nothing to map back (no Restored)

    def post_transforms(self, data: Any = None) -> Sequence[Callable]:
        post = self.classifier().postprocessing
        return list(post.transforms) if isinstance(post, Compose) else [post]

    def _get_network(self, device: str, data: Any) -> torch.nn.Module:
        network = self.classifier().network
        return network.to(torch.device(device)) if isinstance(network, torch.nn.Module) and device else network

    def writer(self, data: dict[str, Any], extension: Any = None, dtype: Any = None) -> tuple[None, dict[str, Any]]:
        """No label file; the JSON holds MONAI Label's ``prediction`` list plus ``probabilities`` and ``label``."""
        c = self.classifier()
        probs = torch.as_tensor(data[self.output_label_key]).detach().float().cpu().reshape(-1).numpy()
        result = c.result(probs)
        result["prediction"] = [
            {"idx": i, "label": name, "score": float(p)} for i, (name, p) in enumerate(zip(c.class_names, probs, strict=True))
        ]
        result["bundle"] = self.bundle_dir.name
        return None, result

    def is_valid(self) -> bool:
        return (self.bundle_dir / self.model_file).is_file()

    @staticmethod
    def probabilities(result: Mapping[str, Any]) -> np.ndarray:
        """The probability vector of a result (in class order)."""
        return np.asarray([result["probabilities"][name] for name in result["class_names"]], dtype=np.float64)
