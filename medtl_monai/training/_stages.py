"""Internal helpers: the units that strategies freeze, unfreeze and give learning rates to.

A strategy works on *stage groups* (:meth:`~medtl_monai.networks.FamilySpec.stage_groups`: the stem and each block
stage start a group; a stage without blocks of its own joins the group before it). The head (``head``) is always a
group of its own, the last one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch.nn as nn

from ..networks import get_family, unwrap

__all__ = ["HEAD", "check_network", "group_name", "group_parameters", "resolve_groups", "stage_groups"]

#: Name of the classification head's group (the key prefix of its parameters is ``head.``).
HEAD = "head"


def check_network(network: nn.Module) -> nn.Module:
    """Return the unwrapped network after checking it has a ``backbone`` of named stages, a ``head`` and an ``arch``.

    Raises:
        TypeError: not a :class:`~medtl_monai.networks.TransferClassifier`-like model.
    """
    net = unwrap(network)
    if (not isinstance(getattr(net, "backbone", None), nn.Sequential) or not isinstance(getattr(net, "head", None), nn.Module)
            or not isinstance(getattr(net, "arch", None), str)):
        raise TypeError(
            f"{type(net).__name__} has no `backbone` (nn.Sequential of named stages), `head` and `arch`; transfer "
            "strategies need a medtl_monai.networks.TransferClassifier."
        )
    return net


def stage_groups(network: nn.Module) -> list[tuple[str, ...]]:
    """Stage groups of the backbone, bottom to top (the head excluded).

    Args:
        network: a ``TransferClassifier`` (possibly wrapped).

    Returns:
        e.g. ``[("stem",), ("layer1",), ("layer2",), ("layer3",)]`` for a ResNet cut after ``layer3``, or
        ``[("stem",), ("denseblock1", "transition1"), ..., ("denseblock4", "final_norm")]`` for a DenseNet.
    """
    net = check_network(network)
    return get_family(net.arch).stage_groups([name for name, _ in net.backbone.named_children()])


def group_name(group: Sequence[str]) -> str:
    """Display and parameter-group name of a stage group: its stages joined by ``+``."""
    return "+".join(group)


def group_parameters(network: nn.Module, group: Iterable[str]) -> list[nn.Parameter]:
    """Parameters of the named stages (or of the head for ``("head",)``), in registration order."""
    net = check_network(network)
    params: list[nn.Parameter] = []
    for name in group:
        module = net.head if name == HEAD else net.get_stage(name)
        params.extend(module.parameters())
    return params


def resolve_groups(network: nn.Module, names: Sequence[str | Sequence[str]]) -> list[tuple[str, ...]]:
    """Map stage names (or lists of them) to stage groups; a name selects the whole group that holds it.

    Args:
        network: the model.
        names: e.g. ``["layer4", "layer3"]`` or ``[["layer4", "layer3"], "layer2"]``.

    Returns:
        One tuple of stage names per entry, duplicates removed, order kept.

    Raises:
        ValueError: a name that is not a stage of this (possibly truncated) model.
    """
    groups = stage_groups(network)
    owner = {stage: g for g in groups for stage in g}
    out: list[tuple[str, ...]] = []
    for entry in names:
        entry_names = [entry] if isinstance(entry, str) else list(entry)
        merged: list[str] = []
        for stage in entry_names:
            if stage not in owner:
                raise ValueError(f"stage {stage!r} is not in this model; its stages are {[s for g in groups for s in g]}.")
            merged.extend(s for s in owner[stage] if s not in merged)
        group = tuple(s for g in groups for s in g if s in merged)  # bottom-to-top order inside a step
        if group not in out:
            out.append(group)
    return out
