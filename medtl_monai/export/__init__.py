"""Export: a trained network to ONNX (checked against PyTorch with ONNX Runtime), from a network or from a bundle.

TorchScript comes from MONAI's own ``python -m monai.bundle ckpt_export``; running an ONNX file is
:class:`~medtl_monai.networks.OnnxRuntimeNetwork`.
"""

from __future__ import annotations

from .bundle import export_bundle_onnx
from .onnx import export_onnx, max_abs_difference

__all__ = ["export_bundle_onnx", "export_onnx", "max_abs_difference"]
