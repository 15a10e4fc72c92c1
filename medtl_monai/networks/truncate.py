"""Truncation (Peng et al., "Rethinking Transfer Learning for Medical Image Classification", TruncatedTL) and the
TransFusion slim top (Raghu et al., "Transfusion: Understanding Transfer Learning for Medical Imaging", 2019).

Cut naming (the same names serve freezing schedules and CAM target layers):

- ``None``: the full backbone.
- a stage name: keep the stem and every stage up to and including it, e.g. ``"layer3"`` (ResNet) or
  ``"denseblock3"`` (DenseNet). A DenseNet cut after ``denseblockK`` keeps the pretrained BatchNorm of
  ``transitionK`` (followed by ReLU) as its feature normalisation, as ``norm5`` does after ``denseblock4``.
- an integer ``t``: layer-level cut, keep the stem and the first ``t`` residual blocks (ResNet) or dense layers
  (DenseNet), counted from the bottom across stages. The TruncatedTL paper counts the stem as a layer, so its
  "TTL-2" ResNet-50 (stem, layer1, layer2 and 4 of the 6 layer3 blocks) is ``cut=11`` here.

What is cut is gone: the returned module holds no parameter of the removed stages.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from .families import FamilySpec

__all__ = ["feature_channels", "parse_cut", "slim_top", "truncate_backbone"]


def parse_cut(cut: str | int | None, spec: FamilySpec) -> str | int | None:
    """Validate a cut for a family and normalise digit strings to ints.

    Args:
        cut: ``None``, a stage name, or a number of residual blocks / dense layers.
        spec: the family.

    Returns:
        ``None``, a valid stage name, or an int in ``[0, total blocks]``.

    Raises:
        ValueError: the cut does not exist in this network; the message lists the valid choices.
    """
    if cut is None:
        return None
    if isinstance(cut, str) and cut.strip().lstrip("-").isdigit():
        cut = int(cut)
    total = sum(spec.blocks)
    if isinstance(cut, bool) or not isinstance(cut, (str, int)):
        raise ValueError(f"cut={cut!r} must be None, a stage name or an integer.")
    if isinstance(cut, int):
        if not 0 <= cut <= total:
            raise ValueError(f"cut={cut} is out of range for {spec.name}: it has {total} blocks, use 0..{total}.")
        return cut
    if cut not in spec.stage_names:
        raise ValueError(f"cut={cut!r} does not exist in {spec.name}; stages are {list(spec.stage_names)}.")
    return cut


def _sliced_norm(norm: nn.Module, channels: int) -> nn.Module:
    """A copy of a BatchNorm restricted to its first ``channels`` channels (exact: BN acts per channel)."""
    new = type(norm)(channels, eps=norm.eps, momentum=norm.momentum, affine=norm.affine)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            src = getattr(norm, name)
            if src is not None:
                getattr(new, name).copy_(src[:channels])
        new.num_batches_tracked.copy_(norm.num_batches_tracked)
    return new


def _tail(stages: dict[str, nn.Module], spec: FamilySpec, block: int, kept_block: nn.Module) -> nn.Module | None:
    """The normalisation a network cut in or after block stage ``block`` (1-based) ends with, if its family has one:
    the full network's own ``final_norm`` when nothing of the last block is cut, else the pretrained BatchNorm that
    follows the block, restricted to the channels the kept part produces (exact: BatchNorm acts per channel)."""
    norm = spec.family.tail_norm(stages, block)
    if norm is None:
        return None
    if block == len(spec.blocks) and kept_block is stages[spec.block_stages[-1]] and "final_norm" in stages:
        return stages["final_norm"]
    sliced = _sliced_norm(norm, spec.family.out_channels(kept_block))
    return nn.Sequential(OrderedDict(norm=sliced, act=nn.ReLU(inplace=True)))


def truncate_backbone(backbone: nn.Sequential, spec: FamilySpec, cut: str | int | None) -> nn.Sequential:
    """Cut a full backbone from :func:`build_backbone` (see the module docstring for the naming).

    Args:
        backbone: the full backbone (weights already loaded, if any).
        spec: its family.
        cut: where to cut.

    Returns:
        A new ``nn.Sequential`` holding only the kept modules (shared with ``backbone``, or sliced copies).

    Raises:
        ValueError: invalid ``cut``.
    """
    cut = parse_cut(cut, spec)
    if cut is None:
        return backbone
    stages = OrderedDict(backbone.named_children())
    kept: OrderedDict[str, nn.Module] = OrderedDict()
    last: tuple[int, nn.Module] | None = None  # (1-based block stage, its kept module) the cut ends in
    if isinstance(cut, str):
        for name in spec.stage_names:
            kept[name] = stages[name]
            if name == cut:
                break
        if cut in spec.block_stages:
            last = (spec.block_stages.index(cut) + 1, stages[cut])
    else:
        remaining = cut
        block_index = {name: i for i, name in enumerate(spec.block_stages)}
        for name in spec.stage_names:
            if name not in block_index:  # the stem, and stages between block stages (DenseNet transitions)
                if name == "stem" or remaining > 0:
                    kept[name] = stages[name]
                continue
            if remaining == 0:
                break
            i = block_index[name]
            n = min(remaining, spec.blocks[i])
            kept[name] = stages[name] if n == spec.blocks[i] else nn.Sequential(OrderedDict(list(stages[name].named_children())[:n]))
            remaining -= n
            last = (i + 1, kept[name])
    if last is not None:
        tail = _tail(stages, spec, *last)
        if tail is not None:
            kept["final_norm"] = tail
    return nn.Sequential(kept)


def slim_top(backbone: nn.Sequential, spec: FamilySpec, after: str, width: float = 0.5, spatial_dims: int = 2) -> nn.Sequential:
    """TransFusion "slim" variant: keep the (pretrained) stages up to ``after`` and rebuild the following stages with
    ``width`` times their channels, randomly initialised (MONAI's initialisation).

    Args:
        backbone: the full backbone (weights loaded).
        spec: its family (ResNet families have a slim variant).
        after: last pretrained stage, one of ``layer1`` .. ``layer3``.
        width: channel fraction of the rebuilt stages.
        spatial_dims: 2 or 3.

    Returns:
        A new backbone.

    Raises:
        ValueError: a family without a slim variant, an invalid stage or a width outside (0, 1].
    """
    return nn.Sequential(spec.family.slim(spec, OrderedDict(backbone.named_children()), after, width, spatial_dims))


def feature_channels(backbone: nn.Sequential) -> int:
    """Channels of the backbone's output: those of its last convolution or BatchNorm in registration order (a
    residual block registers its downsample branch last, with the block's output width)."""
    width = 0
    for module in backbone.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            width = module.out_channels
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            width = module.num_features
    return width
