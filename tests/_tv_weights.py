"""Make torchvision-format ImageNet-like state dicts from randomly initialised 2D backbones, for tests.

The keys are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1`` ...; DenseNet in the old ``norm.1`` style of the
official ``densenet121-a639ec97.pth`` file), the values random, BatchNorm statistics included, plus a 1000-class
classifier, so that loading exercises the same renaming, inflation and strictness as real ImageNet files.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from medtl_monai.networks import build_backbone, get_family


def torchvision_state_dict(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random 2D state dict of ``arch`` with torchvision's key names."""
    torch.manual_seed(seed)
    spec = get_family(arch)
    backbone = build_backbone(arch, spatial_dims=2, in_channels=3)
    out: dict[str, torch.Tensor] = {}
    for key, value in backbone.state_dict().items():
        value = value.clone()
        if key.endswith("running_mean"):
            value = torch.randn_like(value) * 0.1
        elif key.endswith("running_var"):
            value = torch.rand_like(value) * 0.5 + 0.75
        elif key.endswith("bias") and value.is_floating_point():
            value = torch.randn_like(value) * 0.05
        if spec.kind == "resnet":
            key = key.replace("stem.conv.", "conv1.").replace("stem.norm.", "bn1.")
        else:
            key = key.replace("stem.conv.", "conv0.").replace("stem.norm.", "norm0.").replace("final_norm.norm.", "norm5.")
            key = re.sub(r"\.layers\.(norm|conv)([12])\.", r".\1.\2.", key)
            key = "features." + key
        out[key] = value
    width = 512 * (4 if spec.bottleneck else 1) if spec.kind == "resnet" else backbone.final_norm.norm.num_features
    head = "fc" if spec.kind == "resnet" else "classifier"
    out[f"{head}.weight"] = torch.randn(1000, width) * 0.01
    out[f"{head}.bias"] = torch.zeros(1000)
    return out


def write_torchvision_weights(folder: Path, arch: str, seed: int = 0, name: str | None = None) -> Path:
    """Save :func:`torchvision_state_dict` under the official file name (or ``name``) in ``folder``."""
    path = Path(folder) / (name or get_family(arch).weights_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision_state_dict(arch, seed), path)
    return path
