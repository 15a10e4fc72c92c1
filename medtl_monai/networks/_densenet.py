"""The DenseNet family (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017) built from MONAI's
``DenseNet`` with torchvision's architecture: stages ``stem``, ``denseblock1``, ``transition1``, ..., ``denseblock4``
and ``final_norm`` (torchvision's ``features.norm5`` followed by its functional ReLU)."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch.nn as nn
from monai.networks.nets import DenseNet

from ._family import Family, rename

if TYPE_CHECKING:
    from .families import FamilySpec

__all__ = ["DENSENET", "DenseNetFamily"]

_OLD_STYLE = re.compile(r"^(.*denselayer\d+)\.(norm|relu|conv)\.([12])\.(.+)$")  # torchvision's old file format
_LAYER = re.compile(r"^(.*denselayer\d+)\.((?:norm|conv)[12]\..+)$")
_FROM_TORCHVISION = ((r"^features\.", ""), (r"^conv0\.", "stem.conv."), (r"^norm0\.", "stem.norm."),
                     (r"^norm5\.", "final_norm.norm."))
_TO_TORCHVISION = ((r"^stem\.conv\.", "conv0."), (r"^stem\.norm\.", "norm0."), (r"^final_norm\.norm\.", "norm5."),
                   (r"(denselayer\d+)\.layers\.", r"\1."))


class DenseNetFamily(Family):
    """DenseNet-121/169/201: dense blocks joined by transitions; a cut keeps the next pretrained BatchNorm + ReLU."""

    name, block_prefix, unit, head_prefixes = "densenet", "denseblock", "layer", ("classifier.",)

    def stage_names(self, spec: FamilySpec) -> tuple[str, ...]:
        names = ["stem"]
        for i in range(len(spec.blocks)):
            names.append(f"denseblock{i + 1}")
            if i < len(spec.blocks) - 1:
                names.append(f"transition{i + 1}")
        return tuple(names)

    def build_stages(self, spec: FamilySpec, spatial_dims: int, widths: tuple[int, ...] | None = None) -> OrderedDict[str, nn.Module]:
        net = DenseNet(spatial_dims=spatial_dims, in_channels=3, out_channels=1, init_features=spec.init_features,
                       growth_rate=spec.growth_rate, block_config=spec.blocks)
        stages = OrderedDict((name, getattr(net.features, name)) for name in self.stage_names(spec)[1:])
        stages["final_norm"] = nn.Sequential(OrderedDict(norm=net.features.norm5, act=nn.ReLU(inplace=True)))
        return stages

    def tail_norm(self, stages: Mapping[str, nn.Module], block: int) -> nn.modules.batchnorm._BatchNorm:
        transition = stages.get(f"transition{block}")
        return (transition if transition is not None else stages["final_norm"]).norm

    def out_channels(self, block_stage: nn.Module) -> int:
        layers = list(block_stage.children())
        return layers[0].layers.norm1.num_features + layers[0].layers.conv2.out_channels * len(layers)

    def from_torchvision_key(self, key: str) -> str:
        new = rename(key, _FROM_TORCHVISION)
        old = _OLD_STYLE.match(new)
        if old:
            new = f"{old.group(1)}.{old.group(2)}{old.group(3)}.{old.group(4)}"
        layer = _LAYER.match(new)
        return f"{layer.group(1)}.layers.{layer.group(2)}" if layer else new

    def to_torchvision_key(self, key: str) -> str:
        if not re.match(r"^(stem|denseblock\d+|transition\d+|final_norm)\.", key):
            raise ValueError(f"key {key!r} is not part of a DenseNet backbone (stem, dense blocks, transitions).")
        return "features." + rename(key, _TO_TORCHVISION)


DENSENET = DenseNetFamily()
