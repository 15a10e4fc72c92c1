"""Export a bundle's trained model to ONNX: the network of its model card with the trained weights, at the input
size the model was trained at, checked against PyTorch."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..bundle import BundleModel
from .onnx import export_onnx

__all__ = ["export_bundle_onnx"]


def export_bundle_onnx(
    bundle_dir: str | os.PathLike,
    output: str | os.PathLike = "models/model.onnx",
    config_file: str | os.PathLike | Sequence[str | os.PathLike] = "inference.json",
    model_file: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
    batch_size: int = 1,
    dynamic_batch: bool = True,
) -> Path:
    """Export a bundle's trained network (its card's ``network_def`` + ``model.pt``) to ONNX, checked against PyTorch.

    The input shape is ``(batch, in_channels, *input size)`` from the model card, so a model trained with
    ``--image_size`` overrides exports at that size without repeating them.

    Args:
        bundle_dir: the bundle folder.
        output: the ``.onnx`` file (relative paths are placed in the bundle folder).
        config_file: the inference config(s).
        model_file: the trained weights (default ``model.pt`` in the config's ``ckpt_dir``).
        overrides: config values to set (e.g. ``{"ckpt_dir": ...}``).
        batch_size: batch of the example input.
        dynamic_batch: leave the batch dimension free.

    Returns:
        The path of the ONNX file.
    """
    model = BundleModel(bundle_dir, config_file=config_file, model_file=model_file, overrides=overrides)
    out = Path(output)
    out = out if out.is_absolute() else model.bundle_dir / out
    return export_onnx(model.network.cpu(), out, model.input_shape(batch_size), dynamic_batch=dynamic_batch)
