"""Run a bundle's inference outside ``monai.bundle run``: the same preprocessing, network and postprocessing.

Applications that bring their own image loading (MONAI Deploy turns a DICOM series into an array; MONAI Label
loads an uploaded file) build a :class:`BundleClassifier` from the bundle folder and hand it channel-first
``MetaTensor`` images with their affine. The config's ``LoadImaged`` is dropped; every later transform (orientation,
spacing, crop, resize, windows) runs as in the bundle, so the probabilities equal the bundle's own.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import Compose, LoadImaged

from .onnx import OnnxRuntimeNetwork, export_onnx

__all__ = ["BundleClassifier", "bundle_class_names", "export_bundle_onnx"]

logger = logging.getLogger("medtl_monai.export")

_MODEL_SUFFIXES = (".pt", ".pth", ".ts", ".onnx")


def _as_list(value: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    return [str(value)] if isinstance(value, (str, os.PathLike)) else [str(v) for v in value]


def bundle_class_names(meta: Mapping[str, Any] | str | os.PathLike, output_key: str = "pred") -> list[str]:
    """Class names in index order from a bundle's metadata (``network_data_format.outputs.<key>.channel_def``).

    Args:
        meta: the metadata dict, or the path of ``metadata.json`` or of the bundle folder.
        output_key: the output whose channels name the classes.

    Raises:
        ValueError: the metadata has no ``channel_def`` for that output, or its keys are not 0..N-1.
    """
    if not isinstance(meta, Mapping):
        path = Path(meta)
        path = path / "configs" / "metadata.json" if path.is_dir() else path
        meta = json.loads(path.read_text())
    channel_def = meta.get("network_data_format", {}).get("outputs", {}).get(output_key, {}).get("channel_def")
    if not channel_def:
        raise ValueError(f"the bundle metadata has no network_data_format.outputs.{output_key}.channel_def naming the classes.")
    keys = sorted(channel_def, key=int)
    if [int(k) for k in keys] != list(range(len(keys))):
        raise ValueError(f"channel_def keys must be 0..{len(keys) - 1}, got {keys}.")
    return [str(channel_def[k]) for k in keys]


class BundleClassifier:
    """A classification bundle's inference (preprocessing without loading, network, postprocessing) as a callable.

    Args:
        bundle_dir: the bundle folder (holding ``configs/`` and ``models/``).
        config_file: inference config(s), relative to ``bundle_dir`` or absolute; later files override earlier.
        model_file: ``.pt``/``.pth`` (a state dict for ``network_def``, or a checkpoint with a ``"model"`` or
            ``"network"`` entry), ``.ts`` (TorchScript, e.g. from ``ckpt_export``) or ``.onnx`` (run by ONNX
            Runtime); relative to ``bundle_dir`` or absolute. Default ``models/model.pt``.
        overrides: config values to set, as on the ``monai.bundle`` command line (e.g. ``{"image_size": [32, 32, 16]}``).
        device: where the PyTorch network runs (ONNX models run on ONNX Runtime's CPU provider).
        preprocessing_key, network_key, postprocessing_key: config ids of the transform list, network definition
            and postprocessing.
        image_key, pred_key: dictionary keys of the input image and of the prediction.

    Raises:
        FileNotFoundError: the bundle, a config or the model file does not exist.
        ValueError: an unknown model file type, or metadata without class names.
    """

    def __init__(
        self,
        bundle_dir: str | os.PathLike,
        config_file: str | os.PathLike | Sequence[str | os.PathLike] = "configs/inference.json",
        model_file: str | os.PathLike | None = None,
        overrides: Mapping[str, Any] | None = None,
        device: str | torch.device = "cpu",
        preprocessing_key: str = "preprocessing_transforms",
        network_key: str = "network_def",
        postprocessing_key: str = "postprocessing",
        image_key: str = "image",
        pred_key: str = "pred",
    ) -> None:
        self.bundle_dir = Path(bundle_dir).resolve()
        if not (self.bundle_dir / "configs").is_dir():
            raise FileNotFoundError(f"{str(self.bundle_dir)!r} is not a bundle folder (no configs/).")
        configs = [self._in_bundle(c) for c in _as_list(config_file)]
        for c in configs:
            if not c.is_file():
                raise FileNotFoundError(f"bundle config {str(c)!r} does not exist.")
        self.model_file = self._in_bundle(model_file or "models/model.pt")
        if self.model_file.suffix not in _MODEL_SUFFIXES:
            raise ValueError(f"model file must end with one of {_MODEL_SUFFIXES}, got {str(self.model_file)!r}.")
        if not self.model_file.is_file():
            raise FileNotFoundError(f"model file {str(self.model_file)!r} does not exist: train or export the bundle first.")
        self.device = torch.device(device)
        self.image_key, self.pred_key = image_key, pred_key
        self.parser = ConfigParser()
        self.parser.read_meta(str(self.bundle_dir / "configs" / "metadata.json"))
        self.parser.read_config([str(c) for c in configs])
        device_expr = f"$torch.device('{self.device}')"
        self.parser.update({"bundle_root": str(self.bundle_dir), "device": device_expr, **dict(overrides or {})})
        self.class_names = bundle_class_names(self.parser.get("_meta_"), pred_key)
        self._network_key = network_key
        transforms = self.parser.get_parsed_content(preprocessing_key)
        transforms = list(transforms.transforms) if isinstance(transforms, Compose) else list(transforms)
        self.preprocessing = Compose([t for t in transforms if not isinstance(t, LoadImaged)])
        self.load_transforms = Compose([t for t in transforms if isinstance(t, LoadImaged)])
        self.postprocessing = self.parser.get_parsed_content(postprocessing_key)
        self.network = self._load_network()

    def _in_bundle(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.bundle_dir / p

    def _load_network(self) -> torch.nn.Module:
        suffix = self.model_file.suffix
        if suffix == ".onnx":
            network: torch.nn.Module = OnnxRuntimeNetwork(self.model_file)
        elif suffix == ".ts":
            network = torch.jit.load(str(self.model_file), map_location=self.device)
        else:
            network = self.parser.get_parsed_content(self._network_key, instantiate=True)
            state = torch.load(str(self.model_file), map_location="cpu", weights_only=True)
            for key in ("model", "network"):
                if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
                    state = state[key]
            network.load_state_dict(state, strict=True)
            network = network.to(self.device)
        logger.info("bundle %s: %s network from %s", self.bundle_dir.name, suffix, self.model_file)
        return network.eval()

    def preprocess(self, image: torch.Tensor | np.ndarray | str | os.PathLike) -> torch.Tensor:
        """Preprocess one image: a channel-first ``MetaTensor`` (its affine is used) or a path (loaded by the config's
        ``LoadImaged``).

        Returns:
            The network input for one case, channel first, without a batch dimension.
        """
        if isinstance(image, (str, os.PathLike)):
            data = self.load_transforms({self.image_key: str(image)})
        else:
            data = {self.image_key: image}
        return self.preprocessing(data)[self.image_key]

    def predict(self, inputs: torch.Tensor) -> np.ndarray:
        """Probabilities for a preprocessed batch ``(B, C, *spatial)``: network, then the bundle's postprocessing.

        Returns:
            An array ``(B, num_classes)``.
        """
        with torch.no_grad():
            logits = self.network(torch.as_tensor(inputs).to(self.device))
        rows = []
        for i in range(logits.shape[0]):
            out = self.postprocessing({self.pred_key: logits[i]})[self.pred_key]
            rows.append(torch.as_tensor(out).detach().float().cpu().reshape(-1).numpy())
        return np.stack(rows)

    def result(self, probabilities: np.ndarray | Sequence[float]) -> dict[str, Any]:
        """A JSON-ready result for one case: class names, probabilities by class, the chosen (argmax) label."""
        probs = [float(p) for p in np.asarray(probabilities, dtype=np.float64).reshape(-1)]
        index = int(np.argmax(probs))
        return {
            "class_names": list(self.class_names),
            "probabilities": dict(zip(self.class_names, probs, strict=True)),
            "label": self.class_names[index],
            "label_index": index,
        }

    def __call__(self, image: torch.Tensor | np.ndarray | str | os.PathLike) -> dict[str, Any]:
        """Classify one image (see :meth:`preprocess`) and return :meth:`result`."""
        return self.result(self.predict(self.preprocess(image)[None])[0])

    @staticmethod
    def image_from_array(array: np.ndarray | torch.Tensor, affine: np.ndarray | torch.Tensor, **meta: Any) -> MetaTensor:
        """A channel-first ``MetaTensor`` from a spatial array and its voxel-to-RAS affine (what ``LoadImaged`` makes).

        Args:
            array: spatial array ``(x, y, z)`` (or ``(x, y)``), indexed as the affine expects.
            affine: 4x4 (3x3 for 2D) voxel-index-to-RAS-millimetre matrix.
            meta: extra metadata entries (e.g. ``filename_or_obj``).
        """
        values = torch.as_tensor(np.asarray(array, dtype=np.float32))[None]
        affine_t = torch.as_tensor(np.asarray(affine, dtype=np.float64))
        return MetaTensor(values, affine=affine_t, meta={"original_affine": affine_t.clone(), "space": "RAS",
                                                          "original_channel_dim": "no_channel", **meta})


def export_bundle_onnx(
    bundle_dir: str | os.PathLike,
    output: str | os.PathLike = "models/model.onnx",
    config_file: str | os.PathLike | Sequence[str | os.PathLike] = "configs/inference.json",
    model_file: str | os.PathLike = "models/model.pt",
    overrides: Mapping[str, Any] | None = None,
    batch_size: int = 1,
    dynamic_batch: bool = True,
) -> Path:
    """Export a bundle's trained network (``network_def`` + ``model.pt``) to ONNX, checked against PyTorch.

    The input shape is ``(batch, in_channels, *image_size)`` from the config (``in_channels``, ``image_size``),
    else from the metadata's ``network_data_format.inputs.image``: export with the same overrides the bundle's
    inference uses (e.g. ``{"image_size": [32, 32, 16]}``).

    Returns:
        The path of the ONNX file (relative outputs are placed in the bundle folder).
    """
    classifier = BundleClassifier(bundle_dir, config_file=config_file, model_file=model_file, overrides=overrides)
    parser = classifier.parser
    meta_input = parser.get("_meta_", {}).get("network_data_format", {}).get("inputs", {}).get("image", {})
    channels = parser.get_parsed_content("in_channels") if "in_channels" in parser else meta_input.get("num_channels")
    size = parser.get_parsed_content("image_size") if "image_size" in parser else meta_input.get("spatial_shape")
    dims = int(parser.get_parsed_content("spatial_dims")) if "spatial_dims" in parser else len(size)
    size = [int(size)] * dims if isinstance(size, (int, float, str)) else [int(s) for s in size]
    out = Path(output)
    out = out if out.is_absolute() else classifier.bundle_dir / out
    return export_onnx(classifier.network.cpu(), out, (int(batch_size), int(channels), *size), dynamic_batch=dynamic_batch)
