"""A bundle's trained model as the bundle serves it, for code that runs outside ``monai.bundle run``.

:class:`BundleModel` reads a bundle's inference config (and its model card through it), its trained weights
(``model.pt``, ``model.ts`` or ``model.onnx``) and its postprocessing, so that the error report, the ONNX export,
the MONAI Deploy operator and the MONAI Label tasks classify exactly as the bundle's own inference does. The model is
the one of a run (``<bundle>/runs/<name>/models``, :func:`~medtl_monai.bundle.resolve_run`): by default the published
run, else the latest; a bundle with no runs (a model-zoo, MONAI Deploy or MONAI Label copy holding only
``models/model.pt`` and its card) serves its own ``models/``.
Applications that bring their own image loading (MONAI Deploy turns a DICOM series into an array; MONAI Label loads
an uploaded file) hand it channel-first ``MetaTensor`` images with their affine: the config's ``LoadImaged`` is set
aside and every later transform (orientation, spacing, crop, resize, windows) runs as in the bundle.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, LoadImaged

from ..networks import OnnxRuntimeNetwork, read_state_dict
from .card import CARD_NAME
from .config import load_config
from .runs import find_run_file, resolve_run

__all__ = ["BundleModel"]

logger = logging.getLogger("medtl_monai.bundle")

_MODEL_SUFFIXES = (".pt", ".pth", ".ts", ".onnx")


class BundleModel:
    """A classification bundle's trained model: preprocessing, network with its weights, postprocessing, classes.

    Args:
        bundle_dir: the bundle folder (holding ``configs/`` and ``models/``).
        config_file: inference config(s) (names in ``configs/``, or paths); later files override earlier ones.
        model_file: ``.pt``/``.pth`` (a state dict for ``network_def`` or a checkpoint holding one), ``.ts``
            (TorchScript, e.g. from ``ckpt_export``) or ``.onnx`` (run by ONNX Runtime); relative to ``bundle_dir``
            or absolute. Default: ``model.pt`` in the run's ``models/`` (the config's ``ckpt_dir``).
        overrides: config values to set, as on the ``monai.bundle`` command line (e.g. ``{"ckpt_dir": ...}``); they
            win over what ``run`` sets.
        device: where the PyTorch network runs (ONNX models run on ONNX Runtime's CPU provider).
        image_key, pred_key: dictionary keys of the input image and of the prediction.
        run: the run whose model is served: a name under ``<bundle>/runs/``, a run folder, or ``None`` for the
            published run, else the latest, else the bundle's own ``models/``. The config gets ``run_dir`` = that
            folder and ``ckpt_dir`` = its ``models/`` (so the model card read is the run's). With ``run=None`` and a
            ``model_file`` that has a model card beside it (``<bundle>/models/model.pt``, the published copy that
            MONAI Deploy and MONAI Label load), that card is used: the card always describes the weights loaded.
            A ``run_name`` in ``overrides`` counts as ``run`` (as on the ``monai.bundle run`` command line).

    Attributes:
        run_dir: the run folder (the bundle folder for a bundle with no runs).
        model_file: the weights file loaded.
        parser: the parsed inference config.
        class_names: the model's classes, in output order (from its card).
        network: the network with the trained weights, in eval mode.
        load_transforms: the config's ``LoadImaged`` (for items holding paths).
        preprocessing: every other preprocessing transform (for images already loaded).
        postprocessing: the config's postprocessing (softmax; sigmoid for a multi-label model's card).
        multi_label: whether the model's card says multi-label (per-class sigmoid probabilities).

    Raises:
        FileNotFoundError: the bundle, the run or the model file does not exist.
        ValueError: an unknown model file type.
    """

    def __init__(
        self,
        bundle_dir: str | os.PathLike,
        config_file: str | os.PathLike | Sequence[str | os.PathLike] = "inference.json",
        model_file: str | os.PathLike | None = None,
        overrides: Mapping[str, Any] | None = None,
        device: str | torch.device = "cpu",
        image_key: str = "image",
        pred_key: str = "pred",
        *,
        run: str | os.PathLike | None = None,
    ) -> None:
        self.bundle_dir = Path(bundle_dir).resolve()
        if not (self.bundle_dir / "configs").is_dir():
            raise FileNotFoundError(f"{str(self.bundle_dir)!r} is not a bundle folder (no configs/).")
        self.device = torch.device(device)
        self.image_key, self.pred_key = image_key, pred_key
        if run is None and (overrides or {}).get("run_name"):  # ``--run_name`` means the same as for monai.bundle run
            run = str(overrides["run_name"])
        self.run_dir = resolve_run(self.bundle_dir, run)
        given = self._in_bundle(model_file) if model_file else None
        located = {"run_dir": str(self.run_dir), "ckpt_dir": str(self._models_dir(given, run))}
        self.parser = load_config(self.bundle_dir, config_file,
                                  {"device": f"$torch.device('{self.device}')", **located, **dict(overrides or {})})
        ckpt_dir = Path(self.parser.get_parsed_content("ckpt_dir"))
        self.model_file = given if given is not None else ckpt_dir / "model.pt"
        if self.model_file.suffix not in _MODEL_SUFFIXES:
            raise ValueError(f"model file must end with one of {_MODEL_SUFFIXES}, got {str(self.model_file)!r}.")
        if not self.model_file.is_file():
            raise FileNotFoundError(f"model file {str(self.model_file)!r} does not exist: train or export the bundle first.")
        self.class_names = [str(c) for c in self.parser.get_parsed_content("class_names")]
        transforms = self.parser.get_parsed_content("preprocessing")
        transforms = list(transforms.transforms) if isinstance(transforms, Compose) else list(transforms)
        self.preprocessing = Compose([t for t in transforms if not isinstance(t, LoadImaged)])
        self.load_transforms = Compose([t for t in transforms if isinstance(t, LoadImaged)])
        self.postprocessing = self.parser.get_parsed_content("postprocessing")
        self.multi_label = bool(self.parser.get_parsed_content("model_card").multi_label)
        self.network = self._load_network()

    def _models_dir(self, model_file: Path | None, run: str | os.PathLike | None) -> Path:
        """The folder of the model card: beside an explicit model file when it has one and no run was asked for,
        else the run's ``models/`` (or the run folder itself when its checkpoints sit at its top)."""
        if run is None and model_file is not None and (model_file.parent / CARD_NAME).is_file():
            return model_file.parent
        found = find_run_file(self.run_dir, "model.pt")
        return found.parent if found is not None else self.run_dir / "models"

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
            network = self.parser.get_parsed_content("network_def", instantiate=True)
            network.load_state_dict(read_state_dict(self.model_file), strict=True)
            network = network.to(self.device)
        logger.info("bundle %s: %s network from %s", self.bundle_dir.name, suffix, self.model_file)
        return network.eval()

    @property
    def transform(self) -> Compose:
        """Loading and preprocessing together, for datalist items holding image paths."""
        return Compose([*self.load_transforms.transforms, *self.preprocessing.transforms])

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

    def result(self, probabilities: np.ndarray | Sequence[float], threshold: float = 0.5) -> dict[str, Any]:
        """A JSON-ready result for one case: class names, probabilities by class, the chosen (argmax) label; for a
        multi-label model (sigmoid per class) also ``labels``, the classes whose probability is ``>= threshold``."""
        probs = [float(p) for p in np.asarray(probabilities, dtype=np.float64).reshape(-1)]
        index = int(np.argmax(probs))
        result = {
            "class_names": list(self.class_names),
            "probabilities": dict(zip(self.class_names, probs, strict=True)),
            "label": self.class_names[index],
            "label_index": index,
        }
        if self.multi_label:
            result["labels"] = [name for name, p in zip(self.class_names, probs) if p >= threshold]
        return result

    def __call__(self, image: torch.Tensor | np.ndarray | str | os.PathLike) -> dict[str, Any]:
        """Classify one image (see :meth:`preprocess`) and return :meth:`result`."""
        return self.result(self.predict(self.preprocess(image)[None])[0])

    def input_shape(self, batch_size: int = 1) -> tuple[int, ...]:
        """``(batch, channels, *spatial)`` of the network's input, from the model card."""
        card = self.parser.get_parsed_content("model_card")
        pre = card.preprocessing
        channels = int(card.network["in_channels"])
        dims = int(card.network["spatial_dims"])
        size = pre.get("spatial_size", pre.get("size"))
        if size is None:
            raise ValueError(f"the model card of {self.model_file} gives no input size (spatial_size or size).")
        spatial = [int(size)] * dims if isinstance(size, (int, float)) else [int(s) for s in size]
        return (int(batch_size), channels, *spatial)

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
