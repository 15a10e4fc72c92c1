"""Strict loading of pretrained weights, in any layout of the ``weights=`` grammar, into a (2D or 3D) backbone."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import torch
from torch import nn

from .checkpoint import read_state_dict
from .families import FamilySpec
from .inflate import inflate_state_dict
from .sources import WeightsSource, parse_weights_spec, source_to_backbone
from .weights import adapt_input_channels, check_finite, resolve_weights_path

__all__ = ["KeyReport", "backbone_state", "load_backbone_weights"]

logger = logging.getLogger("medtl_monai.networks")

_STEM = "stem.conv.weight"


def _listing(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... and {len(keys) - limit} more" if len(keys) > limit else "")


@dataclass
class KeyReport:
    """How a file's tensors, once in backbone keys, match a backbone.

    Attributes:
        missing: backbone keys the file does not have (``num_batches_tracked`` counters excepted).
        unexpected: file keys the backbone does not have, in stages it has (another architecture or layout).
        wrong: ``"key (file shape, network shape)"`` for tensors of the wrong shape.
        beyond_cut: file keys of stages the (cut) backbone does not keep; ignored.
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    beyond_cut: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every backbone tensor is in the file with its shape, and nothing else is."""
        return not (self.missing or self.unexpected or self.wrong)


def _spatial_dims(target: dict[str, torch.Tensor]) -> int:
    ref = target.get(_STEM)
    if ref is None:
        ref = next((v for v in target.values() if v.dim() in (4, 5)), None)
    return 2 if ref is None else ref.dim() - 2


def backbone_state(
    backbone: nn.Module, spec: FamilySpec, weights: str | os.PathLike | WeightsSource, inflation: str = "center"
) -> tuple[dict[str, torch.Tensor], KeyReport, WeightsSource]:
    """Read a weights file and turn it into ``backbone``'s keys, channels and dimensions, without loading it.

    Steps: the setting is resolved (:func:`~medtl_monai.networks.weights.resolve_weights_path`) unless it already
    is; the file is read and checked for non-finite values; its layout's keys and kernel axes become the backbone's
    (:func:`~medtl_monai.networks.sources.source_to_backbone`); the first kernel is adapted from the layout's
    channels to the backbone's; 2D kernels are inflated when the backbone is 3D (3D sources are not inflated); then
    the tensors are compared with the backbone's.

    Args:
        backbone: the (full or cut) backbone the weights are for.
        spec: its family.
        weights: a file path, a setting of the grammar, or a resolved source.
        inflation: 2D-to-3D rule, ``"center"`` or ``"mean"``.

    Returns:
        The converted tensors, the :class:`KeyReport`, and the resolved source.

    Raises:
        ValueError: an unreadable file, non-finite values, a 3D source for a 2D backbone, or a first kernel with a
            channel count that is neither the layout's nor the backbone's.
    """
    target = backbone.state_dict()
    dims = _spatial_dims(target)
    source = parse_weights_spec(weights, spec.name, dims)
    if source.path is None:
        source = resolve_weights_path(source, spec.name)
    name = str(source.path)
    raw = read_state_dict(source.path)
    check_finite(raw, name)
    state = source_to_backbone(raw, source.layout, spec)
    if _STEM in state and _STEM in target:
        have, want = state[_STEM].shape[1], target[_STEM].shape[1]
        if have != want:
            if have != source.layout.channels:
                raise ValueError(
                    f"weights file {name!r}: the first convolution takes {have} input channels, but the network "
                    f"has in_channels={want}; only {source.layout.channels}-channel kernels of {source.layout.name} "
                    "weights are adapted to other channel counts."
                )
            state[_STEM] = adapt_input_channels(state[_STEM], want)
    if source.layout.spatial_dims == 2:
        state = inflate_state_dict(state, target, inflation)
    kept = {stage for stage, _ in backbone.named_children()}
    stages = {*spec.stage_names, "final_norm"}
    report = KeyReport()
    for key in state:
        if key not in target:
            stage = key.split(".", 1)[0]
            (report.beyond_cut if stage in stages and stage not in kept else report.unexpected).append(key)
    report.missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    report.wrong = [
        f"{k} (file {tuple(state[k].shape)}, network {tuple(target[k].shape)})"
        for k in target
        if k in state and state[k].shape != target[k].shape
    ]
    for key in report.beyond_cut:
        del state[key]
    return state, report, source


def _shape_hint(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> str:
    """What to set when a 3D file's stem kernel has another depth than the network's."""
    have, want = state.get(_STEM), target.get(_STEM)
    if have is None or want is None or have.dim() != 5 or want.dim() != 5 or have.shape[-1] == want.shape[-1]:
        return ""
    return f" The file's stem kernel has depth {have.shape[-1]}: set stem_depth_kernel={have.shape[-1]}."


def load_backbone_weights(
    backbone: nn.Module, spec: FamilySpec, path: str | os.PathLike | WeightsSource, inflation: str = "center"
) -> WeightsSource:
    """Load pretrained weights into a backbone from :func:`build_backbone` (full, or cut: the file's stages beyond
    the cut are ignored), strictly.

    The file is converted by :func:`backbone_state` (layout, channels, inflation), and then every backbone tensor
    must be loaded, with the right shape: nothing is silently left at its random initialisation.

    Args:
        backbone: the module to fill in place.
        spec: its family.
        path: the weights: a file path (torchvision layout), any setting of the ``weights=`` grammar
            (:mod:`~medtl_monai.networks.sources`), or a resolved :class:`~medtl_monai.networks.sources.WeightsSource`.
        inflation: 2D-to-3D rule, ``"center"`` or ``"mean"``.

    Returns:
        The resolved source (file, layout, domain and licence).

    Raises:
        ValueError: unreadable file, non-finite values, a first kernel with a channel count that is neither the
            layout's nor the backbone's, a 3D source for a 2D network, keys missing from the file or unknown to
            ``spec`` (another architecture or layout), or tensors of the wrong shape. The message names the file and
            lists the keys.
    """
    state, report, source = backbone_state(backbone, spec, path, inflation)
    name = str(source.path)
    target = backbone.state_dict()
    if report.missing or report.unexpected:
        parts = [f"weights file {name!r} ({source.layout.name} layout) does not match {spec.name}"]
        if report.missing:
            parts.append(f"{len(report.missing)} backbone keys not in the file: {_listing(report.missing)}")
        if report.unexpected:
            parts.append(f"{len(report.unexpected)} keys in the file unknown to {spec.name}: "
                         f"{_listing(report.unexpected)}")
        raise ValueError("; ".join(parts) + ".")
    if report.wrong:
        raise ValueError(f"weights file {name!r}: {len(report.wrong)} tensors have the wrong shape: "
                         f"{_listing(report.wrong, 6)}.{_shape_hint(state, target)}")
    for key in target:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = target[key]
    backbone.load_state_dict(state, strict=True)
    logger.info("loaded %d tensors of %s weights (%s layout) from %s", len(state), spec.name, source.layout.name, name)
    return source
