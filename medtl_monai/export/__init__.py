"""Export and serving: ONNX export, an ONNX Runtime network for bundles, and bundle loading for integrations.

``export_onnx`` / ``OnnxRuntimeNetwork`` need only PyTorch to export and ``onnxruntime`` to run.
:class:`BundleClassifier` reads a bundle's inference config, class names and model (``model.pt``, ``model.ts`` or
``model.onnx``) so that applications outside ``monai.bundle run`` (a MONAI Deploy operator, a MONAI Label task)
classify exactly as the bundle does; it imports neither MONAI Deploy nor MONAI Label.
"""

from __future__ import annotations

from .bundle import BundleClassifier, bundle_class_names, export_bundle_onnx
from .onnx import GRAPH_OPTIMIZATION_LEVELS, OnnxRuntimeNetwork, export_onnx, max_abs_difference

__all__ = [
    "BundleClassifier",
    "GRAPH_OPTIMIZATION_LEVELS",
    "OnnxRuntimeNetwork",
    "bundle_class_names",
    "export_bundle_onnx",
    "export_onnx",
    "max_abs_difference",
]
