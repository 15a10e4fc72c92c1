"""Backbone families: which MONAI network and arguments reproduce each torchvision ImageNet architecture.

A backbone is an ``nn.Sequential`` of named *stages*, the names used everywhere in this package (``cut=``,
freezing schedules, CAM target layers):

- ResNet-18/34/50/101/152: ``stem`` (conv 7x7/2, BN, ReLU, max-pool 3x3/2), ``layer1`` .. ``layer4``.
- DenseNet-121/169/201: ``stem`` (conv 7x7/2, BN, ReLU, max-pool 3x3/2), ``denseblock1``, ``transition1``,
  ``denseblock2``, ``transition2``, ``denseblock3``, ``transition3``, ``denseblock4``, ``final_norm`` (BN + ReLU,
  torchvision's ``features.norm5`` followed by its functional ReLU).

Residual stages and dense blocks are MONAI's own modules (``monai.networks.nets.ResNet`` / ``DenseNet``), built with
the arguments that make them torchvision's architectures (stem stride 2, shortcut type "B" without bias), so one
code path serves 2D and 3D through MONAI's layer factories. Only the stem is built here, so that its depth kernel
and stride can differ from the in-plane ones for 3D volumes. Everything that differs between the families lives in
their adapters (:mod:`._resnet`, :mod:`._densenet`), reached through :attr:`FamilySpec.family`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch.nn as nn
from monai.networks.layers.factories import Conv, Norm, Pool

from ._densenet import DENSENET
from ._family import Family
from ._resnet import RESNET

__all__ = ["FAMILIES", "Family", "FamilySpec", "StemConfig", "build_backbone", "get_family", "make_stem"]

_URL_BASE = "https://download.pytorch.org/models/"


@dataclass(frozen=True)
class FamilySpec:
    """Static description of one architecture and its official torchvision ImageNet (V1) weights.

    Attributes:
        name: architecture name, e.g. ``"resnet50"``.
        family: the family adapter (:class:`~medtl_monai.networks.Family`) that knows how it is built and cut.
        blocks: residual blocks (ResNet) or dense layers (DenseNet) per stage.
        weights_file: official torchvision file name; its 8 hex digits are the SHA-256 prefix torch.hub checks.
        bottleneck: ResNet only, whether the blocks are bottlenecks (expansion 4).
        growth_rate: DenseNet only.
        init_features: DenseNet only, channels after the stem.
    """

    name: str
    family: Family
    blocks: tuple[int, ...]
    weights_file: str
    bottleneck: bool = False
    growth_rate: int = 32
    init_features: int = 64

    @property
    def weights_url(self) -> str:
        """Download address of the official ImageNet weights."""
        return _URL_BASE + self.weights_file

    @property
    def hash_prefix(self) -> str:
        """SHA-256 prefix encoded in the official file name (``name-<hash>.pth``)."""
        return self.weights_file.rsplit("-", 1)[-1].split(".")[0]

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Names of the backbone stages, bottom to top (``final_norm`` excluded)."""
        return self.family.stage_names(self)

    @property
    def block_stages(self) -> tuple[str, ...]:
        """Stages that hold residual blocks / dense layers, in order (used by layer-level cuts)."""
        return self.family.block_stages(self)

    def stage_groups(self, stages: Sequence[str]) -> list[tuple[str, ...]]:
        """Group a backbone's stages into the units that strategies freeze and unfreeze together.

        The stem and each block stage start a group; a stage without blocks of its own (a DenseNet's
        ``transitionK`` or ``final_norm``) joins the group before it, so that a dense block and the normalisation
        of its output train together. For a ResNet every stage is its own group.

        Args:
            stages: the stage names of a (possibly truncated) backbone, bottom to top.

        Returns:
            The groups, bottom to top.
        """
        starts = {"stem", *self.block_stages}
        groups: list[list[str]] = []
        for name in stages:
            if not groups or name in starts:
                groups.append([name])
            else:
                groups[-1].append(name)
        return [tuple(g) for g in groups]


FAMILIES: dict[str, FamilySpec] = {
    spec.name: spec
    for spec in (
        FamilySpec("resnet18", RESNET, (2, 2, 2, 2), "resnet18-f37072fd.pth"),
        FamilySpec("resnet34", RESNET, (3, 4, 6, 3), "resnet34-b627a593.pth"),
        FamilySpec("resnet50", RESNET, (3, 4, 6, 3), "resnet50-0676ba61.pth", bottleneck=True),
        FamilySpec("resnet101", RESNET, (3, 4, 23, 3), "resnet101-63fe2227.pth", bottleneck=True),
        FamilySpec("resnet152", RESNET, (3, 8, 36, 3), "resnet152-394f9c45.pth", bottleneck=True),
        FamilySpec("densenet121", DENSENET, (6, 12, 24, 16), "densenet121-a639ec97.pth"),
        FamilySpec("densenet169", DENSENET, (6, 12, 32, 32), "densenet169-b2777c0a.pth"),
        FamilySpec("densenet201", DENSENET, (6, 12, 48, 32), "densenet201-c1103571.pth"),
    )
}


def get_family(arch: str) -> FamilySpec:
    """Look up an architecture by name.

    Args:
        arch: e.g. ``"resnet50"`` or ``"densenet121"`` (case-insensitive).

    Raises:
        ValueError: when ``arch`` is not a known family, listing the known ones.
    """
    key = str(arch).lower()
    if key not in FAMILIES:
        raise ValueError(f"arch={arch!r} is not a supported architecture; choose one of {sorted(FAMILIES)}.")
    return FAMILIES[key]


@dataclass(frozen=True)
class StemConfig:
    """Kernel and stride of the stem along depth (3D only); in-plane they are torchvision's (7, 2 and pool 3, 2).

    Depth is the LAST spatial axis, MONAI's convention for volumes loaded and oriented by its transforms
    (channel, x, y, z with z the slice axis).

    Attributes:
        depth_kernel: depth extent of the 7x7 stem convolution once inflated.
        depth_stride: depth stride of the stem convolution.
        pool_depth_stride: depth stride of the stem max-pool (depth kernel 2 * (stride // 2) + 1, so every slice is seen).
    """

    depth_kernel: int = 7
    depth_stride: int = 2
    pool_depth_stride: int = 2


def make_stem(spatial_dims: int, in_channels: int, out_channels: int, stem: StemConfig | None = None) -> nn.Sequential:
    """Build the common ImageNet stem: conv 7x7 stride 2 (no bias), BatchNorm, ReLU, max-pool 3x3 stride 2.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels of the network.
        out_channels: stem width (64 for every supported family).
        stem: depth settings for ``spatial_dims == 3``; ignored in 2D.

    Returns:
        ``nn.Sequential`` with children ``conv``, ``norm``, ``act``, ``pool``.
    """
    stem = stem or StemConfig()
    if spatial_dims == 3:  # MONAI's layout (C, X, Y, Z): depth is the last spatial axis
        kernel: tuple[int, ...] = (7, 7, stem.depth_kernel)
        stride: tuple[int, ...] = (2, 2, stem.depth_stride)
        pool_kernel: tuple[int, ...] = (3, 3, 2 * (stem.pool_depth_stride // 2) + 1)
        pool_stride: tuple[int, ...] = (2, 2, stem.pool_depth_stride)
    else:
        kernel, stride, pool_kernel, pool_stride = (7,) * spatial_dims, (2,) * spatial_dims, (3,) * spatial_dims, (2,) * spatial_dims
    conv_type = Conv[Conv.CONV, spatial_dims]
    return nn.Sequential(
        OrderedDict(
            conv=conv_type(
                in_channels, out_channels, kernel_size=kernel, stride=stride, padding=tuple(k // 2 for k in kernel), bias=False
            ),
            norm=Norm[Norm.BATCH, spatial_dims](out_channels),
            act=nn.ReLU(inplace=True),
            pool=Pool[Pool.MAX, spatial_dims](
                kernel_size=pool_kernel, stride=pool_stride, padding=tuple(k // 2 for k in pool_kernel)
            ),
        )
    )


def build_backbone(arch: str, spatial_dims: int = 2, in_channels: int = 3, stem: StemConfig | None = None) -> nn.Sequential:
    """Build the full (uncut), randomly initialised backbone of a family as a sequence of named stages.

    Args:
        arch: architecture name, see :data:`FAMILIES`.
        spatial_dims: 2 or 3.
        in_channels: input channels.
        stem: depth settings of the stem for 3D.

    Returns:
        ``nn.Sequential`` whose children are the stages named by ``FamilySpec.stage_names`` (DenseNet adds
        ``final_norm``). Its output is the last feature map (ReLU applied).

    Raises:
        ValueError: unknown ``arch``, ``spatial_dims`` not 2 or 3, or ``in_channels`` < 1.
    """
    spec = get_family(arch)
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims={spatial_dims!r} is not supported; use 2 or 3.")
    if int(in_channels) < 1:
        raise ValueError(f"in_channels={in_channels!r} must be a positive integer.")
    stages: OrderedDict[str, nn.Module] = OrderedDict(stem=make_stem(spatial_dims, in_channels, 64, stem))
    stages.update(spec.family.build_stages(spec, spatial_dims))
    backbone = nn.Sequential(stages)
    nn.init.kaiming_normal_(backbone.stem.conv.weight, mode="fan_out", nonlinearity="relu")
    return backbone
