"""Export a run's trained model to ONNX: the network of its model card with the trained weights, at the input size
the model was trained at, checked against PyTorch.

The ONNX file goes beside the run's ``model.pt`` (``<bundle>/runs/<run>/models/model.onnx``), where the bundle's
``inference_onnx.json`` reads it for the same run (``onnx_path = <ckpt_dir>/<onnx_file>``). It is not copied beside
the published ``<bundle>/models/model.pt``: publishing another run later would leave that copy describing the old
model; an application that wants one there writes it explicitly (``output=...``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..bundle import BundleModel
from .onnx import export_onnx

__all__ = ["export_bundle_onnx"]

#: the file name of a run's ONNX export, in its ``models/`` folder
ONNX_NAME = "model.onnx"


def export_bundle_onnx(
    bundle_dir: str | os.PathLike,
    output: str | os.PathLike | None = None,
    config_file: str | os.PathLike | Sequence[str | os.PathLike] = "inference.json",
    model_file: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
    batch_size: int = 1,
    dynamic_batch: bool = True,
    *,
    run: str | os.PathLike | None = None,
) -> Path:
    """Export a run's trained network (its card's ``network_def`` + ``model.pt``) to ONNX, checked against PyTorch.

    The input shape is ``(batch, in_channels, *input size)`` from the model card, so a model trained with
    ``--image_size`` overrides exports at that size without repeating them.

    Args:
        bundle_dir: the bundle folder.
        output: the ``.onnx`` file (a relative path is taken from the current directory); default ``model.onnx`` in
            the run's ``models/`` folder (the config's ``ckpt_dir``), where ``inference_onnx.json`` reads it.
        config_file: the inference config(s).
        model_file: the trained weights (default ``model.pt`` in the run's ``models/``; relative to the bundle).
        overrides: config values to set (e.g. ``{"ckpt_dir": ...}``).
        batch_size: batch of the example input.
        dynamic_batch: leave the batch dimension free.
        run: the run to export (a name under ``<bundle>/runs/``, a run folder, or ``None``: the published run, else
            the latest; see :class:`~medtl_monai.bundle.BundleModel`).

    Returns:
        The path of the ONNX file.

    Raises:
        FileNotFoundError: the run or its model does not exist.
    """
    model = BundleModel(bundle_dir, config_file=config_file, model_file=model_file, overrides=overrides, run=run)
    out = Path(output) if output is not None else Path(model.parser.get_parsed_content("ckpt_dir")) / ONNX_NAME
    return export_onnx(model.network.cpu(), out.resolve(), model.input_shape(batch_size), dynamic_batch=dynamic_batch)
