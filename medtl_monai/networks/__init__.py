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
from .input_size import min_input_size
from .onnx_runtime import GRAPH_OPTIMIZATION_LEVELS, OnnxRuntimeNetwork, import_onnxruntime
from .pretrained import load_backbone_weights
from .profile import count_parameters, profile_model
from .size_check import check_input_size
from .truncate import feature_channels, parse_cut, slim_top, truncate_backbone
from .weights import (
    adapt_input_channels,
    backbone_to_torchvision_keys,
    resolve_weights_path,
    torchvision_to_backbone_keys,
)

__all__ = [
    "CHECKPOINT_WEIGHTS",
    "DEFAULT_3D_STEM",
    "FAMILIES",
    "GRAPH_OPTIMIZATION_LEVELS",
    "HEAD_POLICIES",
    "INFLATION_MODES",
    "ClassificationHead",
    "Family",
    "FamilySpec",
    "OnnxRuntimeNetwork",
    "StemConfig",
    "TransferClassifier",
    "adapt_input_channels",
    "backbone_to_torchvision_keys",
    "build_backbone",
    "check_input_size",
    "count_parameters",
    "feature_channels",
    "get_family",
    "import_onnxruntime",
    "inflate_kernel",
    "inflate_state_dict",
    "init_from_run",
    "load_backbone_weights",
    "min_input_size",
    "parse_cut",
    "profile_model",
    "read_checkpoint",
    "read_state_dict",
    "resolve_weights_path",
    "slim_top",
    "torchvision_to_backbone_keys",
    "truncate_backbone",
    "unwrap",
]
