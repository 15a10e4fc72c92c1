"""ONNX export of a classifier and an ONNX Runtime network that a bundle can use in place of the PyTorch one.

``export_onnx`` writes the graph with PyTorch's TorchScript-based exporter (no ``onnx``/``onnxscript`` needed to
export) and, when ``onnxruntime`` is installed, checks that ONNX Runtime gives the eager outputs.
:class:`OnnxRuntimeNetwork` is an ``nn.Module`` with no parameters whose ``forward`` runs an ONNX Runtime session,
so ``SupervisedEvaluator``, MONAI inferers and bundle configs take it like any network::

    "network": {"_target_": "medtl_monai.export.OnnxRuntimeNetwork", "path": "$@bundle_root + '/models/model.onnx'"}
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

__all__ = ["GRAPH_OPTIMIZATION_LEVELS", "OnnxRuntimeNetwork", "export_onnx", "max_abs_difference"]

logger = logging.getLogger("medtl_monai.export")

#: ONNX Runtime graph optimisation levels by name (``onnxruntime.GraphOptimizationLevel`` members).
GRAPH_OPTIMIZATION_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def _import_ort():
    try:
        import onnxruntime
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "onnxruntime is not installed: `pip install onnxruntime` (or the project's `test`/`bench` extras)."
        ) from err
    return onnxruntime


class OnnxRuntimeNetwork(nn.Module):
    """An ONNX model run by ONNX Runtime, callable like the PyTorch network it was exported from.

    ``forward`` takes a float tensor (a ``MetaTensor`` is fine), runs the session on its values and returns the
    first output as a ``torch.Tensor`` on the input's device. The module has no parameters: ``load_state_dict`` of
    a PyTorch checkpoint does not apply (disable checkpoint loaders when a config swaps it in).

    Args:
        path: the ``.onnx`` file.
        providers: ONNX Runtime execution providers, best first; default ``["CPUExecutionProvider"]``.
        graph_optimization_level: ``"disable"``, ``"basic"``, ``"extended"`` or ``"all"`` (default).
        intra_op_num_threads: threads inside one operator; ``None`` or 0 lets ONNX Runtime choose (one per
            physical core).
        inter_op_num_threads: threads across operators (parallel execution mode only); ``None`` lets ORT choose.
        optimized_model_path: also write the optimised graph there (for inspection).

    Raises:
        FileNotFoundError: the model file does not exist.
        ValueError: an unknown optimisation level.
        ImportError: onnxruntime is not installed.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        providers: Sequence[str] | None = None,
        graph_optimization_level: str = "all",
        intra_op_num_threads: int | None = None,
        inter_op_num_threads: int | None = None,
        optimized_model_path: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        ort = _import_ort()
        self._init_args = dict(path=path, providers=providers, graph_optimization_level=graph_optimization_level,
                               intra_op_num_threads=intra_op_num_threads, inter_op_num_threads=inter_op_num_threads,
                               optimized_model_path=optimized_model_path)
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model {str(self.path)!r} does not exist: export it first (scripts/export_onnx.py).")
        if graph_optimization_level not in GRAPH_OPTIMIZATION_LEVELS:
            raise ValueError(
                f"graph_optimization_level must be one of {sorted(GRAPH_OPTIMIZATION_LEVELS)}, got {graph_optimization_level!r}."
            )
        options = ort.SessionOptions()
        level = GRAPH_OPTIMIZATION_LEVELS[graph_optimization_level]
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        if intra_op_num_threads:
            options.intra_op_num_threads = int(intra_op_num_threads)
        if inter_op_num_threads:
            options.inter_op_num_threads = int(inter_op_num_threads)
        if optimized_model_path is not None:
            options.optimized_model_filepath = str(optimized_model_path)
        providers = list(providers or ["CPUExecutionProvider"])
        self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run_numpy(self, x: np.ndarray) -> np.ndarray:
        """Run the session on a float32 array and return the first output."""
        return self.session.run(self.output_names[:1], {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = torch.as_tensor(x).detach()
        if hasattr(values, "as_tensor"):  # MetaTensor -> plain tensor, metadata is not an input
            values = values.as_tensor()
        out = self.run_numpy(values.float().cpu().numpy())
        return torch.from_numpy(out).to(values.device)

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}, providers={self.session.get_providers()}"

    def __reduce__(self):  # a session does not pickle: copies (deepcopy, pickle) open the file again
        return (_rebuild, (self._init_args,))


def _rebuild(kwargs: dict[str, Any]) -> OnnxRuntimeNetwork:
    return OnnxRuntimeNetwork(**kwargs)


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
                _import_ort()
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
