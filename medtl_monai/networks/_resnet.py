"""The ResNet family (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016) built from MONAI's
``ResNet`` with torchvision's architecture: stages ``stem``, ``layer1`` .. ``layer4``."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING

from monai.networks.nets import ResNet
from monai.networks.nets.resnet import ResNetBlock, ResNetBottleneck
from torch import nn

from ._family import Family, rename

if TYPE_CHECKING:
    from .families import FamilySpec

__all__ = ["RESNET", "ResNetFamily"]

_WIDTHS = (64, 128, 256, 512)
_FROM_TORCHVISION = ((r"^conv1\.", "stem.conv."), (r"^bn1\.", "stem.norm."))
_TO_TORCHVISION = ((r"^stem\.conv\.", "conv1."), (r"^stem\.norm\.", "bn1."))


def monai_resnet(spec: FamilySpec, spatial_dims: int, widths: tuple[int, ...] = _WIDTHS) -> ResNet:
    """A MONAI ResNet with torchvision's architecture (stem stride 2, shortcut type "B" without bias); its stem is
    replaced by the package's own (:func:`~medtl_monai.networks.families.make_stem`)."""
    return ResNet(
        block=ResNetBottleneck if spec.bottleneck else ResNetBlock,
        layers=list(spec.blocks),
        block_inplanes=list(widths),
        spatial_dims=spatial_dims,
        n_input_channels=3,
        conv1_t_size=7,
        conv1_t_stride=2,
        shortcut_type="B",
        bias_downsample=False,
        feed_forward=False,
    )


class ResNetFamily(Family):
    """ResNet-18/34/50/101/152: a block stage per ``layerK``, no final normalisation, a slim variant."""

    name, block_prefix, unit, head_prefixes = "resnet", "layer", "block", ("fc.",)
    shortcut_branches = ("downsample",)

    def stage_names(self, spec: FamilySpec) -> tuple[str, ...]:
        return ("stem", *self.block_stages(spec))

    def build_stages(self, spec: FamilySpec, spatial_dims: int, widths: tuple[int, ...] | None = None) -> OrderedDict[str, nn.Module]:
        net = monai_resnet(spec, spatial_dims, widths or _WIDTHS)
        return OrderedDict((name, getattr(net, name)) for name in self.block_stages(spec))

    def slim(self, spec: FamilySpec, stages: Mapping[str, nn.Module], after: str, width: float,
             spatial_dims: int) -> OrderedDict[str, nn.Module]:
        names = self.stage_names(spec)
        if after not in names[1:-1]:
            raise ValueError(f"slim_after={after!r} must be one of {list(names[1:-1])} for {spec.name}.")
        if not 0.0 < float(width) <= 1.0:
            raise ValueError(f"slim_width={width!r} must be in (0, 1].")
        k = names.index(after)
        widths = tuple(w if i + 1 <= k else max(1, int(round(w * width))) for i, w in enumerate(_WIDTHS))
        fresh = self.build_stages(spec, spatial_dims, widths)
        kept = OrderedDict((name, stages[name]) for name in names[: k + 1])
        kept.update((name, fresh[name]) for name in names[k + 1 :])
        return kept

    def from_torchvision_key(self, key: str) -> str:
        return rename(key, _FROM_TORCHVISION)

    def to_torchvision_key(self, key: str) -> str:
        new = rename(key, _TO_TORCHVISION)
        if not re.match(r"^(conv1|bn1|layer\d+)\.", new):
            raise ValueError(f"key {key!r} is not part of a ResNet backbone (stem, layer1..layer4).")
        return new


RESNET = ResNetFamily()
