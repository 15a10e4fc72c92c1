"""A MONAI Deploy operator that classifies a volume with a medtl-monai bundle, as the bundle's own inference does.

MONAI Deploy's stock ``MonaiBundleInferenceOperator`` names each output *value* of a ``probabilities`` output with
``channel_def[str(int(value))]``, which turns softmax scores into wrong labels. This operator runs
:class:`medtl_monai.bundle.BundleModel` instead (the bundle's preprocessing without its ``LoadImaged``, its
network and postprocessing) and labels the argmax *index* with the metadata's ``channel_def``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai.deploy.core import Fragment, Image, Operator, OperatorSpec

from image_conversion import volume_to_channel_first
from medtl_monai.bundle import BundleModel

__all__ = ["BundleClassifierOperator"]

#: DICOM identifiers copied from the image metadata into the result.
SERIES_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesDescription", "selection_name")


class BundleClassifierOperator(Operator):
    """Classify the input ``Image`` with a bundle and emit the result dictionary and a one-line text report.

    Named input:
        image: an ``Image`` from ``DICOMSeriesToVolumeOperator`` (``(slice, row, column)`` array and DICOM metadata).

    Named outputs:
        result: ``{"class_names", "probabilities": {class: p}, "label", "label_index", "bundle", "model_file",
            "series": {...}}``.
        result_text: a short text report (for a DICOM SR writer).

    Args:
        fragment: the application.
        bundle_path: the bundle folder (``configs/``, ``models/``).
        model_file: model inside the bundle (``models/model.pt``, ``models/model.ts`` or ``models/model.onnx``).
        config_file: inference config(s) inside the bundle.
        overrides: config values to set (the same as given to the bundle's own inference).
        device: ``"cpu"`` or ``"cuda"`` for PyTorch models.
    """

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        bundle_path: str | os.PathLike,
        model_file: str = "models/model.pt",
        config_file: str | list[str] = "configs/inference.json",
        overrides: Mapping[str, Any] | None = None,
        device: str = "cpu",
        **kwargs: Any,
    ) -> None:
        self._logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        self.classifier = BundleModel(bundle_path, config_file=config_file, model_file=model_file,
                                           overrides=overrides, device=device)
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("image")
        spec.output("result")
        spec.output("result_text")

    def compute(self, op_input, op_output, context) -> None:
        image = op_input.receive("image")
        if not isinstance(image, Image):
            raise ValueError(f"input 'image' must be a monai.deploy Image, got {type(image).__name__}")
        meta = image.metadata()
        array, affine = volume_to_channel_first(image.asnumpy(), meta)
        tensor = BundleModel.image_from_array(array[0], affine)
        result = self.classifier(tensor)
        result["bundle"] = str(Path(self.classifier.bundle_dir).name)
        result["model_file"] = str(self.classifier.model_file)
        result["series"] = {k: str(meta[k]) for k in SERIES_KEYS if meta.get(k) is not None}
        self._logger.info("classified series %s: %s %s", result["series"].get("SeriesInstanceUID", "?"),
                          result["label"], result["probabilities"])
        op_output.emit(result, "result")
        op_output.emit(self.report_text(result), "result_text")

    @staticmethod
    def report_text(result: Mapping[str, Any]) -> str:
        """One line per class with its probability, then the chosen label."""
        lines = [f"{name}: {p:.4f}" for name, p in result["probabilities"].items()]
        return "Class probabilities: " + "; ".join(lines) + f". Predicted class: {result['label']}."
