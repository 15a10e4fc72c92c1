"""A network that runs an ONNX file with ONNX Runtime, callable like the PyTorch network it was exported from.

:class:`OnnxRuntimeNetwork` is an ``nn.Module`` with no parameters whose ``forward`` runs an ONNX Runtime session,
so ``SupervisedEvaluator``, MONAI inferers and bundle configs take it like any network::

    "network": {"_target_": "medtl_monai.networks.OnnxRuntimeNetwork", "path": "$@bundle_root + '/models/model.onnx'"}

``onnxruntime`` is an optional dependency (the ``test`` and ``bench`` extras): it is imported when a network is built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

__all__ = ["GRAPH_OPTIMIZATION_LEVELS", "OnnxRuntimeNetwork", "import_onnxruntime"]

#: ONNX Runtime graph optimisation levels by name (``onnxruntime.GraphOptimizationLevel`` members).
GRAPH_OPTIMIZATION_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def import_onnxruntime():
    """Import ``onnxruntime``, with an install hint when it is missing."""
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
        ort = import_onnxruntime()
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
