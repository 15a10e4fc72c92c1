"""Inflate 2D convolution kernels to 3D (Carreira & Zisserman, "Quo Vadis, Action Recognition?", CVPR 2017).

Two rules:

- ``"center"`` (default): the 2D kernel is placed in the middle depth tap and the other taps are zero. A 3D network
  inflated this way, applied to a volume made of one image repeated along depth, gives exactly the 2D network's
  output on that image, whatever the depth strides, so the ImageNet features are preserved at initialisation.
- ``"mean"`` (I3D): the 2D kernel is repeated along depth and divided by the depth extent. The response to a volume
  constant along depth equals the 2D response away from the depth borders (zero padding breaks it there).

Depth is the last spatial axis (MONAI's (C, X, Y, Z) layout): a 2D kernel (out, in, kx, ky) becomes
(out, in, kx, ky, kz). BatchNorm parameters and running statistics, biases and linear layers have the same shape in 2D and 3D and are
carried over unchanged; pooling layers have no parameters (the 3D network is built with 3D pooling by MONAI's
factories).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["INFLATION_MODES", "inflate_kernel", "inflate_state_dict"]

INFLATION_MODES = ("center", "mean")


def inflate_kernel(weight: torch.Tensor, depth: int, mode: str = "center") -> torch.Tensor:
    """Inflate one 2D kernel (out, in, kx, ky) to a 3D kernel (out, in, kx, ky, depth).

    Args:
        weight: the 2D kernel.
        depth: depth extent of the 3D kernel.
        mode: ``"center"`` or ``"mean"``.

    Returns:
        The 3D kernel, same dtype and device.

    Raises:
        ValueError: unknown ``mode``, a kernel that is not 4-dimensional or a depth that is not a positive odd
            number (an even kernel has no centre tap).
    """
    if mode not in INFLATION_MODES:
        raise ValueError(f"inflation={mode!r} is not supported; choose one of {INFLATION_MODES}.")
    if weight.dim() != 4 or depth < 1 or depth % 2 == 0:
        raise ValueError(f"cannot inflate a kernel of shape {tuple(weight.shape)} to depth {depth}: depth must be a "
                         "positive odd number.")
    if mode == "mean":
        return weight.unsqueeze(-1).repeat(1, 1, 1, 1, depth) / depth
    out = weight.new_zeros(*weight.shape, depth)
    out[..., depth // 2] = weight
    return out


def inflate_state_dict(
    state_dict: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], mode: str = "center"
) -> dict[str, torch.Tensor]:
    """Inflate every 4D kernel of a 2D state dict whose counterpart in ``target`` is a 5D kernel.

    Args:
        state_dict: source (2D) tensors.
        target: the 3D model's state dict, used only for the depth extent of each kernel.
        mode: ``"center"`` or ``"mean"``.

    Returns:
        A new dict; tensors that need no inflation (or have no counterpart in ``target``) are passed through.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        ref = target.get(key)
        if ref is not None and value.dim() == 4 and ref.dim() == 5:
            out[key] = inflate_kernel(value, ref.shape[-1], mode)
        else:
            out[key] = value
    return out
