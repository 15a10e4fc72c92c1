"""ACS convolutions: 2D ImageNet kernels applied to volumes along the three orthogonal views (Yang et al., "Reinventing
2D Convolutions for 3D Images", IEEE JBHI 2021, https://doi.org/10.1109/JBHI.2021.3049452).

An :class:`ACSConv3d` keeps a 2D convolution's weight ``(out, in, k, k)`` unchanged as its parameter and splits its
output channels into three groups, each convolving the volume with the 2D kernel laid in one anatomical plane (a
kernel of extent 1 along the third axis). In this project's layout, CT arrives as ``(C, AP, LR, SI)``: ``x`` is
anterior-posterior, ``y`` left-right and ``z`` (the last axis, depth) the slice axis, so

- axial group (planes of constant ``z``): kernel ``(k, k, 1)``, over ``x`` and ``y``;
- coronal group (planes of constant ``x`` = AP): kernel ``(1, k, k)``, over ``y`` and ``z``;
- sagittal group (planes of constant ``y`` = LR): kernel ``(k, 1, k)``, over ``x`` and ``z``.

Split: as in the reference implementation, ``out // 3`` channels each, the remainder going to the axial group first
and then to the coronal one (64 channels: 22, 21, 21); channel order is axial, coronal, sagittal. Every group has the
same stride and padding along the axes where its kernel extends (``k // 2`` for the odd kernels of these
backbones) and no padding where it is flat, so the three outputs have the same size and are concatenated.

Exact property (tested): on an input constant along depth, the axial group's output channels equal the 2D
convolution of one slice, and the network has exactly the 2D network's parameters (count and values).
:func:`convert_to_acs` turns a 2D backbone into its ACS counterpart; BatchNorm and pooling layers become their 3D
equivalents with the same parameters, buffers and (cubic) windows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ACSConv3d", "acs_split", "convert_to_acs"]


def acs_split(out_channels: int) -> tuple[int, int, int]:
    """Output channels of the axial, coronal and sagittal groups: ``out // 3`` each, the remainder to the axial group
    first, then the coronal one (the reference implementation's rule).

    Raises:
        ValueError: fewer than 1 output channel.
    """
    if int(out_channels) < 1:
        raise ValueError(f"out_channels={out_channels!r} must be a positive integer.")
    base, rest = divmod(int(out_channels), 3)
    return base + (rest >= 1), base + (rest >= 2), base


def _triple(value: int | Sequence[int], name: str) -> tuple[int, int, int]:
    """A 2D convolution's square setting (int or a pair of equal ints) as one int per 3D axis."""
    values = (int(value),) * 2 if isinstance(value, int) else tuple(int(v) for v in value)
    if len(values) != 2 or values[0] != values[1]:
        raise ValueError(f"{name}={value!r}: ACS convolutions need a square 2D setting (the same along both axes).")
    return (values[0],) * 3


class ACSConv3d(nn.Module):
    """A 2D convolution applied to a volume along the axial, coronal and sagittal planes (see the module docstring).

    Args:
        in_channels: input channels.
        out_channels: output channels, split over the three views (:func:`acs_split`).
        kernel_size: the square 2D kernel's extent ``k``.
        stride: stride along every axis, or ``(sx, sy, sz)``.
        padding: the 2D padding (applied along the axes where a group's kernel extends).
        dilation: the 2D dilation.
        bias: whether the convolution has a bias.

    Attributes:
        weight: ``(out, in, k, k)``, the 2D kernel as it is (its state-dict entry equals the 2D convolution's).
        bias: ``(out,)`` or ``None``.
        kernel_size, stride, padding, dilation: the sliding window along each of the three axes (the largest over
            the groups), read by :mod:`~medtl_monai.networks.input_size`.

    Raises:
        ValueError: a non-square kernel, padding or dilation, or a padding that is not ``k // 2`` for an odd ``k``
            (the three views would give outputs of different sizes).
    """

    __constants__ = ("split", "kernel_size", "stride", "dilation", "pad_axial", "pad_coronal", "pad_sagittal")

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1, bias: bool = False) -> None:
        super().__init__()
        k, p, d = _triple(kernel_size, "kernel_size")[0], _triple(padding, "padding")[0], _triple(dilation, "dilation")[0]
        if k > 1 and (k % 2 == 0 or 2 * p != d * (k - 1)):
            raise ValueError(f"ACS convolution with kernel {k}, padding {p}, dilation {d}: the views give outputs of "
                             "the same size only for an odd kernel with 'same' padding (d * (k - 1) / 2).")
        if k == 1 and p != 0:
            raise ValueError(f"ACS convolution with a 1x1 kernel and padding {p}: use padding 0.")
        strides = (int(stride),) * 3 if isinstance(stride, int) else tuple(int(s) for s in stride)
        if len(strides) != 3 or min(strides) < 1:
            raise ValueError(f"stride={stride!r} must be a positive int or one per axis.")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride = (k, k, k), strides
        self.padding, self.dilation = (p, p, p), (d, d, d)
        self.split = acs_split(out_channels)
        self.pad_axial, self.pad_coronal, self.pad_sagittal = (p, p, 0), (0, p, p), (p, 0, p)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, k, k))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Conv2d's default

    @classmethod
    def from_conv2d(cls, conv: nn.Conv2d) -> ACSConv3d:
        """The ACS counterpart of ``conv``, holding the very same weight and bias parameters (no copy); its stride
        along depth is the 2D stride (isotropic, as in the paper).

        Args:
            conv: the 2D convolution (``groups=1``, square settings).

        Raises:
            ValueError: a grouped convolution, a string padding or settings :class:`ACSConv3d` does not accept.
        """
        if conv.groups != 1 or isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise ValueError(f"{conv}: ACS conversion supports ungrouped convolutions with numeric zero padding only.")
        sx, sy = conv.stride
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, (sx, sy, sx), conv.padding,
                  conv.dilation, bias=conv.bias is not None)
        new.weight = conv.weight
        new.bias = conv.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if self.kernel_size[0] == 1:  # a 1x1 kernel is the same in every view
            return F.conv3d(x, w.unsqueeze(-1), self.bias, self.stride, 0, self.dilation)
        a, c = self.split[0], self.split[1]
        bias = self.bias
        b_a: torch.Tensor | None = None
        b_c: torch.Tensor | None = None
        b_s: torch.Tensor | None = None
        if bias is not None:
            b_a, b_c, b_s = bias[:a], bias[a:a + c], bias[a + c:]
        axial = F.conv3d(x, w[:a].unsqueeze(4), b_a, self.stride, self.pad_axial, self.dilation)
        coronal = F.conv3d(x, w[a:a + c].unsqueeze(2), b_c, self.stride, self.pad_coronal, self.dilation)
        sagittal = F.conv3d(x, w[a + c:].unsqueeze(3), b_s, self.stride, self.pad_sagittal, self.dilation)
        return torch.cat([axial, coronal, sagittal], 1)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size[0]}, stride={self.stride}, "
                f"padding={self.padding[0]}, split(axial, coronal, sagittal)={tuple(self.split)}, "
                f"bias={self.bias is not None}")


def _batch_norm_3d(norm: nn.BatchNorm2d) -> nn.BatchNorm3d:
    new = nn.BatchNorm3d(norm.num_features, eps=norm.eps, momentum=norm.momentum, affine=norm.affine,
                         track_running_stats=norm.track_running_stats)
    if norm.affine:
        new.weight, new.bias = norm.weight, norm.bias  # the same parameters
    if norm.track_running_stats:
        new.running_mean, new.running_var = norm.running_mean, norm.running_var
        new.num_batches_tracked = norm.num_batches_tracked
    new.train(norm.training)
    return new


def _pool_3d(pool: nn.Module) -> nn.Module:
    k, s = _triple(pool.kernel_size, "kernel_size"), _triple(pool.stride, "stride")
    p = _triple(pool.padding, "padding")
    if isinstance(pool, nn.MaxPool2d):
        return nn.MaxPool3d(k, s, p, dilation=_triple(pool.dilation, "dilation"), ceil_mode=pool.ceil_mode)
    return nn.AvgPool3d(k, s, p, ceil_mode=pool.ceil_mode, count_include_pad=pool.count_include_pad,
                        divisor_override=pool.divisor_override)


def _adaptive_3d(pool: nn.Module) -> nn.Module:
    size = pool.output_size
    if isinstance(size, (tuple, list)):
        if len(set(size)) != 1:
            raise ValueError(f"{pool}: ACS conversion needs a square adaptive output size.")
        size = size[0]
    return nn.AdaptiveAvgPool3d(size) if isinstance(pool, nn.AdaptiveAvgPool2d) else nn.AdaptiveMaxPool3d(size)


def convert_to_acs(module: nn.Module) -> nn.Module:
    """Turn a 2D network into its ACS counterpart for volumes ``(B, C, x, y, z)``, in place.

    ``Conv2d`` becomes :class:`ACSConv3d` (the same weight and bias parameters), ``BatchNorm2d`` becomes
    ``BatchNorm3d`` (the same parameters and running statistics), ``MaxPool2d`` / ``AvgPool2d`` /
    ``AdaptiveAvgPool2d`` / ``AdaptiveMaxPool2d`` their cubic 3D versions (a 3x3 stride-2 pool becomes 3x3x3 stride
    2, as in the paper). Layers without a spatial meaning (activations, dropout, linear) are kept.

    Args:
        module: the 2D network (or a 2D layer).

    Returns:
        The converted network: ``module`` itself, or the new layer when ``module`` is one of the converted types.
        Its parameters are those of the 2D network (same count, same tensors).

    Raises:
        ValueError: a layer whose settings ACS cannot keep (a grouped convolution, a non-square setting).
        TypeError: a layer with no ACS counterpart (a 1D convolution, an instance norm).
        The messages name the layer.
    """
    single = _convert_layer(module, "")
    if single is not None:
        return single
    for name, child in list(module.named_modules()):
        for child_name, grandchild in list(child.named_children()):
            new = _convert_layer(grandchild, f"{name}.{child_name}".lstrip("."))
            if new is not None:
                setattr(child, child_name, new)
    return module


def _convert_layer(layer: nn.Module, path: str) -> nn.Module | None:
    """The 3D counterpart of one 2D layer, ``None`` for layers kept as they are."""
    try:
        if isinstance(layer, nn.Conv2d):
            return ACSConv3d.from_conv2d(layer)
        if isinstance(layer, nn.BatchNorm2d):
            return _batch_norm_3d(layer)
        if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            return _pool_3d(layer)
        if isinstance(layer, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            return _adaptive_3d(layer)
    except ValueError as err:
        raise ValueError(f"{path or type(layer).__name__}: {err}") from err
    if isinstance(layer, (nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase)) and \
            not isinstance(layer, (nn.Conv3d, nn.BatchNorm3d)):
        raise TypeError(f"{path or type(layer).__name__}: {type(layer).__name__} has no ACS counterpart.")
    return None
