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

import copy
from collections import OrderedDict

import torch
import torch.nn as nn

from .families import FamilySpec, _resnet_stages

__all__ = ["parse_cut", "truncate_backbone", "slim_top", "feature_channels"]


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


def _dense_tail(backbone: nn.Sequential, block: int, channels: int) -> nn.Sequential:
    """Pretrained normalisation that follows dense block ``block``, restricted to ``channels``."""
    stages = dict(backbone.named_children())
    source = stages[f"transition{block}"].norm if f"transition{block}" in stages else stages["final_norm"].norm
    return nn.Sequential(OrderedDict(norm=_sliced_norm(source, channels), act=nn.ReLU(inplace=True)))


def _dense_channels(block: nn.Module) -> int:
    """Channels out of a (possibly shortened) MONAI dense block: input channels plus growth per layer."""
    layers = list(block.children())
    first = layers[0].layers.norm1.num_features
    growth = layers[0].layers.conv2.out_channels
    return first + growth * len(layers)


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
    if isinstance(cut, str):
        for name in spec.stage_names:
            kept[name] = stages[name]
            if name == cut:
                break
        if spec.kind == "densenet" and cut.startswith("denseblock"):
            k = int(cut.removeprefix("denseblock"))
            kept["final_norm"] = (
                stages["final_norm"] if k == len(spec.blocks) else _dense_tail(backbone, k, _dense_channels(stages[cut]))
            )
        return nn.Sequential(kept)
    kept["stem"] = stages["stem"]
    remaining = cut
    for i, stage_name in enumerate(spec.block_stages):
        if remaining == 0:
            break
        n = min(remaining, spec.blocks[i])
        block = stages[stage_name]
        if n == spec.blocks[i]:
            kept[stage_name] = block
        else:
            children = list(block.named_children())[:n]
            kept[stage_name] = nn.Sequential(OrderedDict(children))
        remaining -= n
        last_stage, last_index = stage_name, i
        if remaining > 0 and spec.kind == "densenet" and f"transition{i + 1}" in stages:
            kept[f"transition{i + 1}"] = stages[f"transition{i + 1}"]
    if spec.kind == "densenet" and cut > 0:
        if kept[last_stage] is stages[last_stage] and last_index == len(spec.blocks) - 1:
            kept["final_norm"] = stages["final_norm"]
        else:
            kept["final_norm"] = _dense_tail(backbone, last_index + 1, _dense_channels(kept[last_stage]))
    return nn.Sequential(kept)


def slim_top(backbone: nn.Sequential, spec: FamilySpec, after: str, width: float = 0.5, spatial_dims: int = 2) -> nn.Sequential:
    """TransFusion "slim" variant: keep the (pretrained) stages up to ``after`` and rebuild the following residual
    stages with ``width`` times their channels, randomly initialised (MONAI's initialisation).

    Args:
        backbone: the full backbone (weights loaded).
        spec: its family; ResNet families only.
        after: last pretrained stage, one of ``layer1`` .. ``layer3``.
        width: channel fraction of the rebuilt stages.
        spatial_dims: 2 or 3.

    Returns:
        A new backbone.

    Raises:
        ValueError: a DenseNet family, an invalid stage or a width outside (0, 1].
    """
    if spec.kind != "resnet":
        raise ValueError(f"transfusion slim variant is implemented for ResNet families, not arch={spec.name!r}.")
    stages = spec.stage_names
    if after not in stages[1:-1]:
        raise ValueError(f"slim_after={after!r} must be one of {list(stages[1:-1])} for {spec.name}.")
    if not 0.0 < float(width) <= 1.0:
        raise ValueError(f"slim_width={width!r} must be in (0, 1].")
    k = stages.index(after)
    widths = tuple(w if i + 1 <= k else max(1, int(round(w * width))) for i, w in enumerate((64, 128, 256, 512)))
    fresh = _resnet_stages(spec, spatial_dims, widths)
    kept = OrderedDict((name, getattr(backbone, name)) for name in stages[: k + 1])
    for name in stages[k + 1 :]:
        kept[name] = getattr(fresh, name)
    return nn.Sequential(kept)


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
