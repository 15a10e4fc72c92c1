"""``TransferClassifier``: the network every bundle of this project uses as ``network_def``."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
from torch import nn

from .families import StemConfig, build_backbone, get_family
from .head import ClassificationHead
from .inflate import INFLATION_MODES
from .input_size import min_input_size
from .pretrained import load_backbone_weights
from .size_check import check_input_size
from .truncate import feature_channels, parse_cut, slim_top, truncate_backbone
from .weights import resolve_weights_path

__all__ = ["DEFAULT_3D_STEM", "TransferClassifier"]

logger = logging.getLogger("medtl_monai.networks")

#: Stem used for 3D unless overridden: a 3-tap depth kernel with depth stride 2 (every slice is seen), then a
#: max-pool with depth stride 4, so the stem reduces depth 8x and in-plane 4x. The stem and layer1 dominate 3D
#: compute, so this is what lets a truncated 3D ResNet-50 cost under half the MACs of the fully inflated one
#: (measured in docs/benchmarks.md); CT inputs are resampled with more slices than the feature grid needs.
DEFAULT_3D_STEM = StemConfig(depth_kernel=3, depth_stride=2, pool_depth_stride=4)


#: ``weights`` value of a network whose trained weights come from a checkpoint loaded after construction.
CHECKPOINT_WEIGHTS = "checkpoint"


class TransferClassifier(nn.Module):
    """An ImageNet backbone, optionally cut (TruncatedTL) or slimmed (TransFusion) and inflated to 3D, with a
    global-average-pooling linear head.

    3D inputs use MONAI's layout ``(batch, channel, x, y, z)``: depth (the slice axis) is the last one, and the
    ``stem_depth_*`` settings apply to it.

    The model is ``backbone`` (an ``nn.Sequential`` of named stages: ``stem``, ``layer1``..``layer4`` for ResNets;
    ``stem``, ``denseblock1``, ``transition1``, .., ``denseblock4``, ``final_norm`` for DenseNets) followed by
    ``head``. Stage names are those used by ``cut``, by freezing schedules and by CAM target layers.

    Args:
        arch: ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101``, ``resnet152``, ``densenet121``,
            ``densenet169`` or ``densenet201``.
        spatial_dims: 2 (images) or 3 (volumes).
        in_channels: input channels; RGB ImageNet kernels are adapted (summed for 1 channel, tiled and rescaled
            for more).
        num_classes: output logits.
        cut: ``None`` (full network), a stage name such as ``"layer3"`` (keep the stem and stages up to it), or an
            int ``t`` (keep the stem and the first ``t`` residual blocks / dense layers; TruncatedTL's TTL-2 for
            ResNet-50 is ``11``).
        weights: ``None`` (random initialisation, with a warning), a path to a torchvision-format state dict,
            ``"imagenet"`` (the official file from the torch hub cache, downloaded with a hash check when online),
            or ``"checkpoint"``: no pretrained weights because a trained checkpoint is loaded afterwards
            (evaluation and inference configs), so no random-initialisation warning.
        inflation: 2D-to-3D rule for 3D networks, ``"center"`` (default) or ``"mean"``.
        stem_depth_kernel: depth of the inflated 7x7 stem kernel (3D only; default 3); odd, so that the kernel has
            a centre tap (centre inflation) and its padding keeps the depth extent.
        stem_depth_stride: depth stride of the stem convolution (3D only; default 2).
        pool_depth_stride: depth stride of the stem max-pool (3D only; default 4).
        dropout: dropout before the linear layer.
        slim_after: TransFusion slim variant: keep pretrained stages up to this one (``layer1``..``layer3``) and
            rebuild the following ones, randomly initialised, with ``slim_width`` of their channels.
        slim_width: channel fraction of the slim stages (default 1/2).
        weights_url: download address overriding the official one (``weights="imagenet"`` only).

    Raises:
        ValueError: an unknown arch, a cut that does not exist, a weights file that does not fit (another
            architecture, missing keys, wrong shapes or channel count, non-finite values), or invalid options (an
            even ``stem_depth_kernel``, a depth stride below 1).
    """

    __jit_unused_properties__ = ["stage_names", "config"]

    def __init__(
        self,
        arch: str = "resnet50",
        spatial_dims: int = 2,
        in_channels: int = 3,
        num_classes: int = 2,
        cut: str | int | None = None,
        weights: str | os.PathLike | None = None,
        inflation: str = "center",
        stem_depth_kernel: int | None = None,
        stem_depth_stride: int | None = None,
        pool_depth_stride: int | None = None,
        dropout: float = 0.0,
        slim_after: str | None = None,
        slim_width: float = 0.5,
        weights_url: str | None = None,
    ) -> None:
        super().__init__()
        spec = get_family(arch)
        if inflation not in INFLATION_MODES:
            raise ValueError(f"inflation={inflation!r} is not supported; choose one of {INFLATION_MODES}.")
        cut = parse_cut(cut, spec)
        if slim_after is not None and cut is not None:
            raise ValueError("slim_after (TransFusion) and cut (TruncatedTL) cannot be combined; set one of them.")
        for name, value in (("stem_depth_kernel", stem_depth_kernel), ("stem_depth_stride", stem_depth_stride),
                            ("pool_depth_stride", pool_depth_stride)):
            if value is not None and (int(value) != value or int(value) < 1):
                raise ValueError(f"{name}={value!r} must be a positive integer.")
        if stem_depth_kernel is not None and int(stem_depth_kernel) % 2 == 0:
            raise ValueError(f"stem_depth_kernel={stem_depth_kernel!r} must be odd: an even depth kernel has no centre "
                             "tap, so centre inflation and the depth padding would shift the volume by half a slice.")
        stem = StemConfig(
            depth_kernel=int(stem_depth_kernel or DEFAULT_3D_STEM.depth_kernel),
            depth_stride=int(stem_depth_stride or DEFAULT_3D_STEM.depth_stride),
            pool_depth_stride=int(pool_depth_stride or DEFAULT_3D_STEM.pool_depth_stride),
        )
        self.arch, self.spatial_dims, self.in_channels, self.num_classes = spec.name, spatial_dims, in_channels, num_classes
        self.cut, self.slim_after, self.slim_width = cut, slim_after, float(slim_width)
        self.inflation, self.dropout = inflation, float(dropout)
        self.stem_depth_kernel, self.stem_depth_stride = stem.depth_kernel, stem.depth_stride
        self.pool_depth_stride = stem.pool_depth_stride
        backbone = build_backbone(spec.name, spatial_dims, in_channels, stem)
        if str(weights).strip().lower() == CHECKPOINT_WEIGHTS:
            self.weights_source = CHECKPOINT_WEIGHTS
        elif weights is None or str(weights) == "":
            self.weights_source = None
            logger.warning(
                "%s: no pretrained weights given, the backbone starts from RANDOM initialisation "
                "(pass weights=/path/to/%s or weights='imagenet').",
                spec.name,
                spec.weights_file,
            )
        else:
            path = resolve_weights_path(weights, spec.name, url=weights_url)
            load_backbone_weights(backbone, spec, path, inflation)
            self.weights_source = str(path)
        if slim_after is not None:
            backbone = slim_top(backbone, spec, slim_after, slim_width, spatial_dims)
        self.backbone = truncate_backbone(backbone, spec, cut)
        self.head = ClassificationHead(feature_channels(self.backbone), num_classes, spatial_dims, dropout)

    @property
    def config(self) -> dict:
        """The constructor arguments that define this architecture (everything but the weights): what a model
        card saves beside the trained weights, so that ``TransferClassifier(**config, weights="checkpoint")``
        rebuilds the same network for them."""
        return {
            "arch": self.arch,
            "spatial_dims": int(self.spatial_dims),
            "in_channels": int(self.in_channels),
            "num_classes": int(self.num_classes),
            "cut": self.cut,
            "inflation": self.inflation,
            "stem_depth_kernel": int(self.stem_depth_kernel),
            "stem_depth_stride": int(self.stem_depth_stride),
            "pool_depth_stride": int(self.pool_depth_stride),
            "dropout": self.dropout,
            "slim_after": self.slim_after,
            "slim_width": self.slim_width,
        }

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Names of the backbone stages present in this model, bottom to top."""
        return tuple(name for name, _ in self.backbone.named_children())

    def get_stage(self, name: str) -> nn.Module:
        """Return the stage module called ``name``.

        Raises:
            ValueError: no such stage in this (possibly truncated) model.
        """
        stages = dict(self.backbone.named_children())
        if name not in stages:
            raise ValueError(f"stage {name!r} is not in this model; it has {list(stages)}.")
        return stages[name]

    def min_input_size(self) -> tuple[int, ...]:
        """The smallest spatial input this network accepts, per axis (MONAI's layout: depth last for volumes),
        worked out from the kernels, strides, paddings and pools of the stages it keeps
        (:func:`~medtl_monai.networks.input_size.min_input_size`)."""
        return min_input_size(self.backbone, self.spatial_dims, get_family(self.arch).family.shortcut_branches)

    def check_input_size(self, image_size: int | Sequence[int]) -> tuple[int, ...]:
        """Check that inputs of ``image_size`` fit this network (what a bundle does at start-up); with
        ``inflation="mean"`` and pretrained 2D weights, warn about stages too shallow along depth for it.

        Args:
            image_size: spatial input size, one int per axis (or one int for all).

        Returns:
            The size, one int per axis.

        Raises:
            ValueError: the input is too small; the message says what to change
                (:func:`~medtl_monai.networks.size_check.check_input_size`).
        """
        mean_inflated = self.inflation == "mean" and self.weights_source not in (None, CHECKPOINT_WEIGHTS)
        return check_input_size(self, image_size, mean_inflated=mean_inflated)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, before the head."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
