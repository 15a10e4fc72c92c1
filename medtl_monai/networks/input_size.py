"""The input sizes a backbone accepts, read from its layers: kernels, strides, paddings and dilations of the
convolutions and pools of the stages it keeps.

Along each spatial axis a backbone is a chain of sliding windows. A window of kernel ``k``, stride ``s``, padding
``p`` and dilation ``d`` maps an extent ``n`` to ``floor((n + 2p - d(k - 1) - 1) / s) + 1``, and gives at least
``r`` outputs exactly when ``n >= (r - 1) s + d(k - 1) + 1 - 2p``. Walking the chain backwards from one output
element gives the exact smallest input; walking it forwards gives the extent every layer sees. A shortcut branch
that runs beside a block's main path (a ResNet ``downsample``) is built to give the main path's size, so only the
main path is walked; the family adapter names those branches (:attr:`~medtl_monai.networks.Family.shortcut_branches`).
Adaptive pools (the head) accept any extent of at least 1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from torch import nn

from .acs import ACSConv3d

__all__ = ["Window", "backbone_windows", "min_input_size", "required_input", "window_extents"]

_CONVS = (nn.modules.conv._ConvNd, ACSConv3d)  # an ACS convolution's window along each axis is its 2D kernel's
_WINDOWS = (*_CONVS, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)


@dataclass(frozen=True)
class Window:
    """One convolution or pool along one axis.

    Attributes:
        stage: the backbone stage it belongs to.
        kernel, stride, padding, dilation: its settings along the axis.
        is_conv: a convolution (pools have no weights to inflate).
    """

    stage: str
    kernel: int
    stride: int
    padding: int
    dilation: int
    is_conv: bool

    @property
    def span(self) -> int:
        """Input elements one output element reads: ``d (k - 1) + 1``."""
        return self.dilation * (self.kernel - 1) + 1

    def out_extent(self, n: int) -> int:
        """Output extent for an input extent ``n`` (0 or less: too small)."""
        return (n + 2 * self.padding - self.span) // self.stride + 1

    def in_extent(self, r: int) -> int:
        """Smallest input extent giving at least ``r`` (>= 1) outputs."""
        return max(1, (r - 1) * self.stride + self.span - 2 * self.padding)


def _per_axis(value: int | Sequence[int], dims: int) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if isinstance(value, (tuple, list)) else (int(value),) * dims


def _windows_of(module: nn.Module, shortcuts: tuple[str, ...]) -> Iterator[nn.Module]:
    """The sliding-window layers of ``module`` on its main path, in registration (= forward) order."""
    for name, child in module.named_children():
        if name in shortcuts:
            continue
        if isinstance(child, _WINDOWS):
            yield child
        else:
            yield from _windows_of(child, shortcuts)


def backbone_windows(backbone: nn.Sequential, spatial_dims: int, shortcuts: tuple[str, ...] = ()) -> list[list[Window]]:
    """The sliding windows of a backbone's main path, one chain per spatial axis.

    Args:
        backbone: an ``nn.Sequential`` of named stages.
        spatial_dims: 2 or 3.
        shortcuts: names of child modules that run beside a block's main path (skipped).

    Returns:
        ``chains[axis]``: the windows along that axis, first to last.

    Raises:
        ValueError: a layer with padding given as a string or ``ceil_mode`` (not used by these backbones).
    """
    chains: list[list[Window]] = [[] for _ in range(spatial_dims)]
    for stage, module in backbone.named_children():
        for layer in _windows_of(module, shortcuts):
            if isinstance(getattr(layer, "padding", 0), str) or getattr(layer, "ceil_mode", False):
                raise ValueError(f"{stage}: {type(layer).__name__} with padding={layer.padding!r} / ceil_mode is not "
                                 "supported.")
            params = [_per_axis(getattr(layer, name, 1), spatial_dims)
                      for name in ("kernel_size", "stride", "padding", "dilation")]
            for axis in range(spatial_dims):
                k, s, p, d = (values[axis] for values in params)
                chains[axis].append(Window(stage, k, s, p, d, isinstance(layer, _CONVS)))
    return chains


def required_input(chain: Sequence[Window], at_least: Sequence[int] | None = None) -> int:
    """Smallest input extent for which every window of a chain gives at least one output element, and window ``i``
    sees an input extent of at least ``at_least[i]``.

    Args:
        chain: the windows along one axis, first to last.
        at_least: an extra lower bound on each window's input extent (default: none).

    Returns:
        The smallest input extent (exact: every window's output extent grows with its input extent).
    """
    needed = 1
    for i in range(len(chain) - 1, -1, -1):
        needed = max(chain[i].in_extent(needed), at_least[i] if at_least is not None else 1)
    return needed


def min_input_size(backbone: nn.Sequential, spatial_dims: int, shortcuts: tuple[str, ...] = ()) -> tuple[int, ...]:
    """The smallest spatial input size a backbone accepts, per axis.

    Args:
        backbone: an ``nn.Sequential`` of named stages.
        spatial_dims: 2 or 3.
        shortcuts: names of child modules that run beside a block's main path.

    Returns:
        One extent per spatial axis: a forward pass works at this size, and fails one element smaller along any
        axis whose minimum is above 1.
    """
    return tuple(required_input(chain) for chain in backbone_windows(backbone, spatial_dims, shortcuts))


def window_extents(chain: Sequence[Window], size: int) -> list[int]:
    """The input extent each window of a chain sees for a network input of extent ``size`` (0 or less once a
    window gives no output)."""
    extents = []
    for window in chain:
        extents.append(size)
        size = window.out_extent(size) if size > 0 else size
    return extents
