"""Make torchvision-format ImageNet-like state dicts from randomly initialised 2D backbones, for tests.

The keys are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1`` ...; DenseNet in the old ``norm.1`` style of the
official ``densenet121-a639ec97.pth`` file), the values random, BatchNorm statistics included, plus a 1000-class
classifier, so that loading exercises the same renaming, inflation and strictness as real ImageNet files.

The other layouts of the ``weights=`` grammar (safetensors, MedicalNet, Merlin's I3ResNet, TorchXRayVision) are
written from their own conventions (prefixes, heads, dtypes, kernel axes), independently of the package's loader.
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


# ---- other layouts of the weights= grammar (medtl_monai.networks.sources), written from their own conventions ----

_ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
              torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}


def write_safetensors(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """Write ``state`` in the safetensors format (8-byte little-endian header size, JSON header, raw bytes), without
    the safetensors package."""
    import json
    import struct

    header: dict = {"__metadata__": metadata} if metadata else {}
    chunks, offset = [], 0
    for name, tensor in state.items():
        raw = tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": _ST_DTYPES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + b"".join(chunks))
    return Path(path)


def cut_backbone(arch: str, spatial_dims: int, in_channels: int, cut: str | None = None,
                 depth_kernel: int = 3) -> torch.nn.Sequential:
    """A backbone cut after stage ``cut``, built on the meta device first so that a 3D ResNet-152's removed stages
    never take memory or time; its tensors are uninitialised (fill them before use)."""
    from medtl_monai.networks import StemConfig, truncate_backbone

    with torch.device("meta"):
        backbone = build_backbone(arch, spatial_dims, in_channels, StemConfig(depth_kernel, 2, 2))
    if cut is not None:
        backbone = truncate_backbone(backbone, get_family(arch), cut)
    return backbone.to_empty(device="cpu")


def random_backbone_state(arch: str, spatial_dims: int, in_channels: int, cut: str | None = None,
                          depth_kernel: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors for a backbone cut after stage ``cut``, in this package's keys and axes (depth last), with
    non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    state = {}
    for key, value in cut_backbone(arch, spatial_dims, in_channels, cut, depth_kernel).state_dict().items():
        if key.endswith("num_batches_tracked"):
            value = torch.zeros_like(value)
        elif key.endswith("running_var"):
            value = torch.rand_like(value) * 0.5 + 0.75
        else:
            value = torch.randn_like(value) * 0.1
        state[key] = value
    return state


def medicalnet_file(path: Path, state: dict[str, torch.Tensor], arch: str, wrapped: bool = True) -> Path:
    """MedicalNet's file layout: torchvision names under ``module.`` in ``{"state_dict": ...}`` (``wrapped``; else
    the bare dict MONAI's loader leaves), kernels (out, in, D, H, W) with depth first, a ``conv_seg`` head."""
    out = {}
    for key, value in backbone_to_torchvision_keys(state, get_family(arch)).items():
        out[key] = value.permute(0, 1, 4, 2, 3).contiguous() if value.dim() == 5 else value  # (h, w, d) -> (d, h, w)
    out["conv_seg.0.weight"] = torch.randn(4, 8, 3, 3, 3) * 0.01
    if wrapped:
        out = {"state_dict": {f"module.{k}": v for k, v in out.items()}}
    torch.save(out, path)
    return Path(path)


def merlin_file(path: Path, state: dict[str, torch.Tensor], prefix: str = "encode_image.i3_resnet.",
                meta: bool = False) -> Path:
    """Merlin's I3ResNet layout: torchvision names under ``prefix``, bfloat16, a contrastive head, kernels
    (out, 3, S, R, A) for volumes that are (C, P, L, S) here: P and L reversed give A and R, then the axes are
    reordered (S, R, A)."""
    out = {}
    for key, value in backbone_to_torchvision_keys(state, get_family("resnet152")).items():
        if value.dim() == 5:
            value = value.flip(2, 3).permute(0, 1, 4, 3, 2).contiguous()
        out[prefix + key] = value.to(torch.bfloat16) if value.is_floating_point() else value
    out[prefix + "contrastive_head.weight"] = torch.zeros(4, 8, 1, 1, 1, dtype=torch.bfloat16)
    torch.save({"state_dict": out, "meta": {"source": "test", "license": "MIT"}} if meta else out, path)
    return Path(path)


def xrv_file(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """TorchXRayVision's DenseNet state dict: torchvision's new-style keys, 1 input channel, an 18-pathology head
    and its ``op_threshs`` buffer."""
    out = backbone_to_torchvision_keys(state, get_family("densenet121"))
    out["classifier.weight"] = torch.randn(18, 1024) * 0.01
    out["classifier.bias"] = torch.zeros(18)
    out["op_threshs"] = torch.rand(18)
    torch.save(out, path)
    return Path(path)
