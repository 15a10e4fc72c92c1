"""``TransferClassifier``: the network every bundle of this project uses as ``network_def``."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from .acs import convert_to_acs
from .families import StemConfig, build_backbone, get_family
from .head import ClassificationHead
from .inflate import INFLATION_MODES
from .input_size import min_input_size
from .pretrained import load_backbone_weights
from .size_check import check_input_size
from .slices import SliceBackbone, SliceHead, check_slice_options
from .truncate import feature_channels, parse_cut, slim_top, truncate_backbone
from .weights import resolve_weights_path

__all__ = ["DEFAULT_3D_STEM", "LIFTINGS", "TransferClassifier"]

logger = logging.getLogger("medtl_monai.networks")

#: Stem used for 3D unless overridden: a 3-tap depth kernel with depth stride 2 (every slice is seen), then a
#: max-pool with depth stride 4, so the stem reduces depth 8x and in-plane 4x. The stem and layer1 dominate 3D
#: compute, so this is what lets a truncated 3D ResNet-50 cost under half the MACs of the fully inflated one
#: (measured in docs/benchmarks.md); CT inputs are resampled with more slices than the feature grid needs.
DEFAULT_3D_STEM = StemConfig(depth_kernel=3, depth_stride=2, pool_depth_stride=4)


#: ``weights`` value of a network whose trained weights come from a checkpoint loaded after construction.
CHECKPOINT_WEIGHTS = "checkpoint"

#: How a 3D network reuses 2D ImageNet weights (docs/lifting.md): ``inflate`` (2D kernels inflated to 3D),
#: ``slices`` (2.5D: the 2D network over the slices, features aggregated) or ``acs`` (ACS convolutions).
LIFTINGS = ("inflate", "slices", "acs")

#: Defaults of the options that only ``lifting="slices"`` reads.
_SLICE_DEFAULTS = {"slab": 1, "slice_stride": 1, "aggregator": "mean", "chunk_slices": 0}


class TransferClassifier(nn.Module):
    """An ImageNet backbone, optionally cut (TruncatedTL) or slimmed (TransFusion) and lifted to 3D, with a
    global-average-pooling linear head.

    3D inputs use MONAI's layout ``(batch, channel, x, y, z)``: depth (the slice axis) is the last one, and the
    ``stem_depth_*`` settings apply to it. A 3D network reuses the 2D weights in one of three ways (``lifting``,
    docs/lifting.md): ``"inflate"`` (2D kernels inflated to 3D), ``"slices"`` (2.5D: the 2D network over slabs of
    slices, :class:`~medtl_monai.networks.slices.SliceBackbone`, the slice features aggregated by
    :class:`~medtl_monai.networks.slices.SliceHead`) or ``"acs"`` (ACS convolutions,
    :func:`~medtl_monai.networks.acs.convert_to_acs`: exactly the 2D network's parameters).

    The model is ``backbone`` (an ``nn.Sequential`` of named stages: ``stem``, ``layer1``..``layer4`` for ResNets;
    ``stem``, ``denseblock1``, ``transition1``, .., ``denseblock4``, ``final_norm`` for DenseNets) followed by
    ``head``. Stage names are those used by ``cut``, by freezing schedules and by CAM target layers; with every
    lifting the stages and the state-dict keys are the 2D network's, and ``forward(x) == head(forward_features(x))``.

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
        weights: ``None`` (random initialisation, with a warning), any setting of the ``weights=`` grammar
            (:func:`~medtl_monai.networks.sources.parse_weights_spec`, docs/weights.md: a torchvision-format or
            safetensors file, ``"imagenet"`` from the torch hub cache or downloaded with a hash check when online, a
            timm / Hugging Face name, ``"<layout>:<file>"`` for MedicalNet, Merlin or TorchXRayVision layouts, or a
            named source such as ``"medicalnet"``), or ``"checkpoint"``: no pretrained weights because a trained
            checkpoint is loaded afterwards (evaluation and inference configs), so no random-initialisation warning.
        inflation: 2D-to-3D rule of ``lifting="inflate"``, ``"center"`` (default) or ``"mean"``.
        stem_depth_kernel: depth of the inflated 7x7 stem kernel (``lifting="inflate"`` only; default 3); odd, so
            that the kernel has a centre tap (centre inflation) and its padding keeps the depth extent.
        stem_depth_stride: depth stride of the stem convolution (``lifting="inflate"`` only; default 2).
        pool_depth_stride: depth stride of the stem max-pool (``lifting="inflate"`` only; default 4).
        dropout: dropout before the linear layer.
        slim_after: TransFusion slim variant: keep pretrained stages up to this one (``layer1``..``layer3``) and
            rebuild the following ones, randomly initialised, with ``slim_width`` of their channels.
        slim_width: channel fraction of the slim stages (default 1/2).
        weights_url: download address overriding the official one (``weights="imagenet"`` only).
        lifting: 3D only: ``"inflate"`` (``None``: the default), ``"slices"`` or ``"acs"`` (see above). 2D
            networks take ``None`` or ``"inflate"`` (nothing to lift).
        slab: ``lifting="slices"``: slices per 2D input (odd; the 2D network takes ``in_channels * slab``
            channels: with ``in_channels=1`` and ``slab=3`` a 3-slice slab is the RGB input).
        slice_stride: ``lifting="slices"``: one slab every ``slice_stride`` slices.
        aggregator: ``lifting="slices"``: ``"mean"``, ``"max"`` or ``"attention"`` (gated attention MIL).
        chunk_slices: ``lifting="slices"``: 2D images per backbone call (``None`` or 0: all at once), bounding
            memory in inference and, with activation checkpointing, in training.

    Raises:
        ValueError: an unknown arch, a cut that does not exist, a weights file that does not fit (another
            architecture, missing keys, wrong shapes or channel count, non-finite values), or invalid options (an
            even ``stem_depth_kernel``, a depth stride below 1, an unknown lifting, a lifting option given to a
            lifting that does not read it).
    """

    __jit_unused_properties__ = ("stage_names", "config", "backbone_dims")

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
        lifting: str | None = None,
        slab: int = 1,
        slice_stride: int = 1,
        aggregator: str = "mean",
        chunk_slices: int | None = None,
    ) -> None:
        super().__init__()
        spec = get_family(arch)
        if inflation not in INFLATION_MODES:
            raise ValueError(f"inflation={inflation!r} is not supported; choose one of {INFLATION_MODES}.")
        lifting = _check_lifting(lifting, spatial_dims, inflation, stem_depth_kernel, stem_depth_stride,
                                 pool_depth_stride, slab=slab, slice_stride=slice_stride, aggregator=aggregator,
                                 chunk_slices=chunk_slices or 0)
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
        self.lifting = lifting
        self.slab, self.slice_stride, self.aggregator = int(slab), int(slice_stride), aggregator
        self.chunk_slices = int(chunk_slices or 0)
        lifted = lifting in ("slices", "acs")  # a 2D network applied to volumes: no stem depth settings
        self.stem_depth_kernel = None if lifted else stem.depth_kernel
        self.stem_depth_stride = None if lifted else stem.depth_stride
        self.pool_depth_stride = None if lifted else stem.pool_depth_stride
        build_dims = 2 if lifted else spatial_dims  # "slices" and "acs" are built, loaded and cut as 2D networks
        backbone = build_backbone(spec.name, build_dims, in_channels * self.slab, stem)
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
            backbone = slim_top(backbone, spec, slim_after, slim_width, build_dims)
        backbone = truncate_backbone(backbone, spec, cut)
        channels = feature_channels(backbone)
        if lifting == "slices":
            self.backbone: nn.Sequential = SliceBackbone(OrderedDict(backbone.named_children()), slab=self.slab,
                                                         slice_stride=self.slice_stride, chunk_slices=self.chunk_slices)
            self.head: nn.Module = SliceHead(channels, num_classes, aggregator, dropout)
        else:
            self.backbone = convert_to_acs(backbone) if lifting == "acs" else backbone
            self.head = ClassificationHead(channels, num_classes, spatial_dims, dropout)

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
            "stem_depth_kernel": self.stem_depth_kernel,
            "stem_depth_stride": self.stem_depth_stride,
            "pool_depth_stride": self.pool_depth_stride,
            "dropout": self.dropout,
            "slim_after": self.slim_after,
            "slim_width": self.slim_width,
            "lifting": self.lifting,
            "slab": self.slab,
            "slice_stride": self.slice_stride,
            "aggregator": self.aggregator,
            "chunk_slices": self.chunk_slices,
        }

    @property
    def backbone_dims(self) -> int:
        """Spatial dimensions the backbone's layers slide along: 2 for ``lifting="slices"`` (a 2D network run over
        the slices), else ``spatial_dims``."""
        return 2 if self.lifting == "slices" else int(self.spatial_dims)

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
        size = min_input_size(self.backbone, self.backbone_dims, get_family(self.arch).family.shortcut_branches)
        return size + (1,) * (int(self.spatial_dims) - self.backbone_dims)  # 2.5D: any number of slices

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
        mean_inflated = (self.lifting == "inflate" and self.inflation == "mean"
                         and self.weights_source not in (None, CHECKPOINT_WEIGHTS))
        return check_input_size(self, image_size, mean_inflated=mean_inflated)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, before the head: ``(B, C, *feature grid)``; for ``lifting="slices"`` the
        average-pooled features of every slab, ``(B, C, S)``."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def _check_lifting(lifting: str | None, spatial_dims: int, inflation: str, stem_depth_kernel: int | None,
                   stem_depth_stride: int | None, pool_depth_stride: int | None, **slice_options: object) -> str | None:
    """The lifting (``None`` in 2D, ``"inflate"`` by default in 3D) after checking that only the options it reads
    are set.

    Raises:
        ValueError: an unknown lifting, a lifting for a 2D network, or an option set for a lifting that ignores it.
    """
    if spatial_dims != 3:
        if lifting not in (None, "inflate"):
            raise ValueError(f"lifting={lifting!r} lifts 2D weights to volumes; a spatial_dims={spatial_dims} network "
                             "has nothing to lift (use lifting=None).")
        lifting = None
    elif lifting is None:
        lifting = "inflate"
    elif lifting not in LIFTINGS:
        raise ValueError(f"lifting={lifting!r} is not supported; choose one of {LIFTINGS}.")
    if lifting == "slices":
        check_slice_options(**slice_options)
    else:
        odd = [f"{k}={v!r}" for k, v in slice_options.items() if v != _SLICE_DEFAULTS[k]]
        if odd:
            raise ValueError(f"{', '.join(odd)} only apply to lifting='slices' (this network: lifting={lifting!r}).")
    if lifting in ("slices", "acs"):
        odd = [f"{name}={value!r}" for name, value in (("stem_depth_kernel", stem_depth_kernel),
               ("stem_depth_stride", stem_depth_stride), ("pool_depth_stride", pool_depth_stride)) if value is not None]
        if inflation != "center":
            odd.append(f"inflation={inflation!r}")
        if odd:
            raise ValueError(f"{', '.join(odd)} only apply to lifting='inflate' (this network: lifting={lifting!r}).")
    return lifting
