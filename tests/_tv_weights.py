"""Make torchvision-format ImageNet-like state dicts from randomly initialised 2D backbones, for tests.

The keys are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1`` ...; DenseNet in the old ``norm.1`` style of the
official ``densenet121-a639ec97.pth`` file), the values random, BatchNorm statistics included, plus a 1000-class
classifier, so that loading exercises the same renaming, inflation and strictness as real ImageNet files.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from medtl_monai.networks import backbone_to_torchvision_keys, build_backbone, feature_channels, get_family


def torchvision_state_dict(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random 2D state dict of ``arch`` with torchvision's key names (DenseNet layers in the old style)."""
    torch.manual_seed(seed)
    spec = get_family(arch)
    backbone = build_backbone(arch, spatial_dims=2, in_channels=3)
    state: dict[str, torch.Tensor] = {}
    for key, value in backbone.state_dict().items():
        value = value.clone()
        if key.endswith("running_mean"):
            value = torch.randn_like(value) * 0.1
        elif key.endswith("running_var"):
            value = torch.rand_like(value) * 0.5 + 0.75
        elif key.endswith("bias") and value.is_floating_point():
            value = torch.randn_like(value) * 0.05
        state[key] = value
    out = {re.sub(r"(denselayer\d+)\.(norm|conv)([12])\.", r"\1.\2.\3.", k): v
           for k, v in backbone_to_torchvision_keys(state, spec).items()}
    head = spec.family.head_prefixes[0]
    out[f"{head}weight"] = torch.randn(1000, feature_channels(backbone)) * 0.01
    out[f"{head}bias"] = torch.zeros(1000)
    return out


def write_torchvision_weights(folder: Path, arch: str, seed: int = 0, name: str | None = None) -> Path:
    """Save :func:`torchvision_state_dict` under the official file name (or ``name``) in ``folder``."""
    path = Path(folder) / (name or get_family(arch).weights_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision_state_dict(arch, seed), path)
    return path
