"""Check a bundle's input size against its network before training starts, and warn where mean inflation cannot be
equal to the 2D network.

Without the check, a network deeper than its input allows (a full 3D DenseNet-121 on 32 slices) fails deep inside
torch (``input image (T: 2 H: 2 W: 1) smaller than kernel size``), after data loading and caching; with it the
bundle stops at start-up with the arch, the cut, the sizes and what to change.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .families import get_family
from .input_size import backbone_windows, required_input, window_extents

if TYPE_CHECKING:
    from .classifier import TransferClassifier

__all__ = ["AXIS_NAMES", "as_input_size", "check_input_size"]

logger = logging.getLogger("medtl_monai.networks")

#: Names of the spatial axes in MONAI's layout; for volumes depth (the slice axis) is the last one.
AXIS_NAMES = {2: ("x", "y"), 3: ("x", "y", "depth")}


def as_input_size(image_size: int | Sequence[int], spatial_dims: int) -> tuple[int, ...]:
    """An input size as one int per spatial axis (an int means the same extent along every axis).

    Raises:
        ValueError: not an int or a sequence of ``spatial_dims`` positive ints.
    """
    size = (image_size,) * spatial_dims if isinstance(image_size, int) else tuple(image_size)
    if len(size) != spatial_dims or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise ValueError(f"image_size={list(size) if len(size) > 1 else image_size!r} must be a positive int or "
                         f"{spatial_dims} positive ints (one per spatial axis).")
    return size


def check_input_size(
    network: TransferClassifier, image_size: int | Sequence[int], mean_inflated: bool = False
) -> tuple[int, ...]:
    """Raise when ``image_size`` is smaller than the network accepts; warn when mean inflation cannot hold.

    Args:
        network: a :class:`~medtl_monai.networks.TransferClassifier`.
        image_size: the spatial size of its inputs (one int per axis, or one int for all).
        mean_inflated: the network's 3D kernels were mean-inflated from 2D weights: log a warning (logger
            ``medtl_monai.networks``) for every stage whose depth extent at this input is not larger than its depth
            kernel, since there a depth-constant volume no longer gives the 2D response (zero padding at the depth
            borders reaches every position).

    Returns:
        The size, one int per spatial axis.

    Raises:
        ValueError: the input is too small along some axis; the message names the arch, the cut, the minimum size,
            the axis and what to change (a larger ``image_size``, a shallower cut, smaller depth strides).
    """
    dims = int(network.spatial_dims)
    size = as_input_size(image_size, dims)
    layer_dims = int(getattr(network, "backbone_dims", dims))
    chains = backbone_windows(network.backbone, layer_dims, get_family(network.arch).family.shortcut_branches)
    chains += [[] for _ in range(dims - layer_dims)]  # axes no layer slides along (2.5D slices): any extent >= 1
    minimum = tuple(required_input(chain) for chain in chains)
    small = [axis for axis in range(dims) if size[axis] < minimum[axis]]
    if small:
        raise ValueError(_too_small(network, size, minimum, small, chains))
    if mean_inflated and dims == 3:
        _warn_mean_inflation(network, size[-1], chains[-1])
    return size


def _too_small(network: TransferClassifier, size: tuple[int, ...], minimum: tuple[int, ...], small: list[int],
               chains: list) -> str:
    names = AXIS_NAMES[len(size)]
    axes = " and ".join(names[a] for a in small)
    raises = ", ".join(f"image_size[{a}] to >= {minimum[a]}" for a in small)
    fixes = [f"raise {raises}"]
    fitting = _deepest_fitting_stage(network, size, chains)
    if fitting is not None:
        fixes.append(f"cut at {fitting!r} or earlier")
    if len(size) == 3 and len(size) - 1 in small and network.stem_depth_stride is not None and (
            network.stem_depth_stride > 1 or network.pool_depth_stride > 1):
        strides = f"{network.pool_depth_stride}/{network.stem_depth_stride}"
        fixes.append(f"set pool_depth_stride/stem_depth_stride to 1 (now {strides})")
    return (f"{network.arch} cut={network.cut!r} needs an input of at least {list(minimum)}; image_size {list(size)} "
            f"is too small along {axes}: {', '.join(fixes[:-1]) + ' or ' if len(fixes) > 1 else ''}{fixes[-1]}.")


def _deepest_fitting_stage(network: TransferClassifier, size: tuple[int, ...], chains: list) -> str | None:
    """The deepest stage (a valid ``cut``) whose prefix of the backbone accepts ``size``; ``None`` if none does."""
    stages = [name for name in network.stage_names if name in get_family(network.arch).stage_names]
    best = None
    for j, stage in enumerate(stages):
        kept = set(stages[: j + 1])
        if all(required_input([w for w in chain if w.stage in kept]) <= n for chain, n in zip(chains, size)):
            best = stage
    return best


def _warn_mean_inflation(network: TransferClassifier, depth: int, chain: list) -> None:
    extents = window_extents(chain, depth)
    flagged: dict[str, tuple[int, int]] = {}
    for window, extent in zip(chain, extents):
        if window.is_conv and window.kernel > 1 and extent <= window.kernel:
            seen = flagged.get(window.stage)
            if seen is None or extent < seen[0]:
                flagged[window.stage] = (extent, window.kernel)
    if not flagged:
        return
    deep = required_input(chain, [w.kernel + 1 if w.is_conv and w.kernel > 1 else 1 for w in chain])
    where = ", ".join(f"{stage} (depth extent {n}, depth kernel {k})" for stage, (n, k) in flagged.items())
    logger.warning(
        "%s cut=%r: inflation='mean' at input depth %d is not equal to the 2D network in %s: a stage whose depth "
        "extent is not larger than its kernel sees zero padding at every depth position. Use inflation='center' "
        "or an input depth of at least %d.", network.arch, network.cut, depth, where, deep,
    )
