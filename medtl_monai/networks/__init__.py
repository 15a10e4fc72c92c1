"""Networks: ImageNet backbones (ResNet, DenseNet) built on MONAI, truncated or slimmed, inflated to 3D, with a head;
reading saved weights and starting from a previous run.

Main entry point: :class:`TransferClassifier` (a bundle's ``network_def``). Family differences live in the family
adapters (:class:`Family`, reached as ``get_family(arch).family``).
"""

from .checkpoint import HEAD_POLICIES, init_from_run, read_checkpoint, read_state_dict, unwrap
from .classifier import CHECKPOINT_WEIGHTS, DEFAULT_3D_STEM, TransferClassifier
from .families import FAMILIES, Family, FamilySpec, StemConfig, build_backbone, get_family
from .head import ClassificationHead
from .inflate import INFLATION_MODES, inflate_kernel, inflate_state_dict
from .onnx_runtime import GRAPH_OPTIMIZATION_LEVELS, OnnxRuntimeNetwork, import_onnxruntime
from .pretrained import load_backbone_weights
from .profile import count_parameters, profile_model
from .truncate import feature_channels, parse_cut, slim_top, truncate_backbone
from .weights import (
    adapt_input_channels,
    backbone_to_torchvision_keys,
    resolve_weights_path,
    torchvision_to_backbone_keys,
)

__all__ = [
    "CHECKPOINT_WEIGHTS",
    "TransferClassifier",
    "DEFAULT_3D_STEM",
    "FAMILIES",
    "Family",
    "FamilySpec",
    "GRAPH_OPTIMIZATION_LEVELS",
    "OnnxRuntimeNetwork",
    "import_onnxruntime",
    "HEAD_POLICIES",
    "StemConfig",
    "build_backbone",
    "get_family",
    "ClassificationHead",
    "INFLATION_MODES",
    "inflate_kernel",
    "inflate_state_dict",
    "init_from_run",
    "load_backbone_weights",
    "count_parameters",
    "profile_model",
    "feature_channels",
    "parse_cut",
    "read_checkpoint",
    "read_state_dict",
    "slim_top",
    "truncate_backbone",
    "unwrap",
    "adapt_input_channels",
    "backbone_to_torchvision_keys",
    "resolve_weights_path",
    "torchvision_to_backbone_keys",
]
