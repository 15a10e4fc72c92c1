"""Export: a trained network to ONNX (checked against PyTorch with ONNX Runtime), from a network or from a bundle's
run (written beside the run's ``model.pt``).

TorchScript comes from MONAI's own ``python -m monai.bundle ckpt_export``; running an ONNX file is
:class:`~medtl_monai.networks.OnnxRuntimeNetwork`.
"""

from __future__ import annotations

from .bundle import ONNX_NAME, export_bundle_onnx
from .onnx import export_onnx, max_abs_difference

__all__ = ["ONNX_NAME", "export_bundle_onnx", "export_onnx", "max_abs_difference"]
