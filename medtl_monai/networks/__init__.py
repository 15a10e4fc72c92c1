"""Networks: ImageNet backbones (ResNet, DenseNet) built on MONAI, truncated or slimmed, lifted to 3D (inflated,
run over slices, or ACS convolutions), with a head; reading saved weights and starting from a previous run.

Main entry point: :class:`TransferClassifier` (a bundle's ``network_def``). Family differences live in the family
adapters (:class:`Family`, reached as ``get_family(arch).family``).
"""

from .acs import ACSConv3d, acs_split, convert_to_acs
from .checkpoint import HEAD_POLICIES, init_from_run, read_checkpoint, read_state_dict, unwrap
from .classifier import CHECKPOINT_WEIGHTS, DEFAULT_3D_STEM, LIFTINGS, TransferClassifier
from .families import FAMILIES, Family, FamilySpec, StemConfig, build_backbone, get_family
from .head import ClassificationHead
from .inflate import INFLATION_MODES, inflate_kernel, inflate_state_dict
from .input_size import min_input_size
from .onnx_runtime import GRAPH_OPTIMIZATION_LEVELS, OnnxRuntimeNetwork, import_onnxruntime
from .pretrained import load_backbone_weights
from .profile import count_parameters, profile_model
from .size_check import check_input_size
from .slices import SLICE_AGGREGATORS, GatedAttentionPool, SliceBackbone, SliceHead, slab_indices
from .sources import LAYOUTS, NAMED_SOURCES, WeightsSource, describe_weights, parse_weights_spec
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
    "LAYOUTS",
    "LIFTINGS",
    "NAMED_SOURCES",
    "SLICE_AGGREGATORS",
    "ACSConv3d",
    "ClassificationHead",
    "Family",
    "FamilySpec",
    "GatedAttentionPool",
    "OnnxRuntimeNetwork",
    "SliceBackbone",
    "SliceHead",
    "StemConfig",
    "TransferClassifier",
    "WeightsSource",
    "acs_split",
    "adapt_input_channels",
    "backbone_to_torchvision_keys",
    "build_backbone",
    "check_input_size",
    "convert_to_acs",
    "count_parameters",
    "describe_weights",
    "feature_channels",
    "get_family",
    "import_onnxruntime",
    "inflate_kernel",
    "inflate_state_dict",
    "init_from_run",
    "load_backbone_weights",
    "min_input_size",
    "parse_cut",
    "parse_weights_spec",
    "profile_model",
    "read_checkpoint",
    "read_state_dict",
    "resolve_weights_path",
    "slab_indices",
    "slim_top",
    "torchvision_to_backbone_keys",
    "truncate_backbone",
    "unwrap",
]
