"""ONNX export of a classifier, checked against PyTorch with ONNX Runtime.

``export_onnx`` writes the graph with PyTorch's TorchScript-based exporter (no ``onnx``/``onnxscript`` needed to
export) and, when ``onnxruntime`` is installed, checks that ONNX Runtime
(:class:`~medtl_monai.networks.OnnxRuntimeNetwork`) gives the eager outputs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..networks import OnnxRuntimeNetwork, import_onnxruntime

__all__ = ["export_onnx", "max_abs_difference"]

logger = logging.getLogger("medtl_monai.export")


def max_abs_difference(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Largest absolute difference between two arrays of the same shape."""
    a_np = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b_np = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    if a_np.shape != b_np.shape:
        raise ValueError(f"shapes differ: {a_np.shape} and {b_np.shape}")
    return float(np.abs(a_np.astype(np.float64) - b_np.astype(np.float64)).max()) if a_np.size else 0.0


def export_onnx(
    network: nn.Module,
    path: str | os.PathLike,
    example_shape: Sequence[int],
    dynamic_batch: bool = True,
    *,
    opset_version: int = 17,
    input_name: str = "image",
    output_name: str = "pred",
    verify: bool | None = None,
    atol: float = 1e-4,
    seed: int = 0,
) -> Path:
    """Export ``network`` to ONNX, in eval mode, and check ONNX Runtime's outputs against PyTorch's.

    Args:
        network: the model (a ``TransferClassifier`` or any module with one tensor input and one tensor output).
        path: the ``.onnx`` file to write (its folder is created).
        example_shape: input shape ``(batch, channels, *spatial)`` used to trace the graph.
        dynamic_batch: leave the batch dimension free (named ``batch``) so one file serves any batch size.
        opset_version: ONNX opset.
        input_name: name of the graph input (the bundle's input key, ``image``).
        output_name: name of the graph output (the bundle's output key, ``pred``).
        verify: run ONNX Runtime on random inputs (the example shape, and batch 2 when the batch is dynamic) and
            raise if the outputs differ from eager by more than ``atol``; ``None`` verifies when onnxruntime is
            installed.
        atol: tolerance of the check.
        seed: seed of the random check inputs.

    Returns:
        The path written.

    Raises:
        ValueError: ``example_shape`` has fewer than 3 dimensions, or the exported model does not reproduce the
            eager outputs within ``atol``.
    """
    shape = tuple(int(s) for s in example_shape)
    if len(shape) < 3:
        raise ValueError(f"example_shape must be (batch, channels, *spatial), got {shape}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = network.training
    network.eval()
    device = next((p.device for p in network.parameters()), torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    example = torch.rand(shape, generator=generator).to(device)
    dynamic_axes = {input_name: {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
    try:
        with torch.no_grad():
            torch.onnx.export(
                network, (example,), str(path), input_names=[input_name], output_names=[output_name],
                dynamic_axes=dynamic_axes, opset_version=opset_version, dynamo=False, do_constant_folding=True,
            )
        if verify is None:
            try:
                import_onnxruntime()
                verify = True
            except ImportError:
                verify = False
                logger.warning("onnxruntime is not installed: %s was not checked against PyTorch", path)
        if verify:
            session = OnnxRuntimeNetwork(path)
            batches = [shape[0], shape[0] + 1] if dynamic_batch else [shape[0]]
            for batch in batches:
                x = torch.rand((batch, *shape[1:]), generator=generator)
                with torch.no_grad():
                    expected = network(x.to(device)).float().cpu()
                diff = max_abs_difference(session(x), expected)
                if not diff <= atol:
                    raise ValueError(f"ONNX export {str(path)!r} differs from PyTorch by {diff:.3g} (> {atol}) at batch {batch}.")
                logger.info("ONNX export %s matches PyTorch at batch %d (max abs difference %.2e)", path, batch, diff)
    finally:
        network.train(was_training)
    return path
