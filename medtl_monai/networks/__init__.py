"""Networks: ImageNet backbones (ResNet, DenseNet) built on MONAI, truncated or slimmed, inflated to 3D, with a head.

Main entry point: :class:`TransferClassifier` (a bundle's ``network_def``).
"""

from .classifier import DEFAULT_3D_STEM, TransferClassifier
from .families import FAMILIES, FamilySpec, StemConfig, build_backbone, get_family
from .head import ClassificationHead
from .inflate import INFLATION_MODES, inflate_kernel, inflate_state_dict
from .pretrained import load_backbone_weights
from .profile import count_parameters, profile_model
from .truncate import feature_channels, parse_cut, slim_top, truncate_backbone
from .weights import adapt_input_channels, backbone_to_torchvision_keys, read_state_dict, resolve_weights_path, torchvision_to_backbone_keys

__all__ = [
    "TransferClassifier",
    "DEFAULT_3D_STEM",
    "FAMILIES",
    "FamilySpec",
    "StemConfig",
    "build_backbone",
    "get_family",
    "ClassificationHead",
    "INFLATION_MODES",
    "inflate_kernel",
    "inflate_state_dict",
    "load_backbone_weights",
    "count_parameters",
    "profile_model",
    "feature_channels",
    "parse_cut",
    "slim_top",
    "truncate_backbone",
    "adapt_input_channels",
    "backbone_to_torchvision_keys",
    "read_state_dict",
    "resolve_weights_path",
    "torchvision_to_backbone_keys",
]
