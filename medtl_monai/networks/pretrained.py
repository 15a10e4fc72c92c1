"""Strict loading of torchvision-format ImageNet weights into a (2D or 3D) backbone."""

from __future__ import annotations

import logging
import os

import torch.nn as nn

from .checkpoint import read_state_dict
from .families import FamilySpec
from .inflate import inflate_state_dict
from .weights import adapt_input_channels, check_finite, torchvision_to_backbone_keys

__all__ = ["load_backbone_weights"]

logger = logging.getLogger("medtl_monai.networks")


def _listing(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... and {len(keys) - limit} more" if len(keys) > limit else "")


def load_backbone_weights(
    backbone: nn.Module, spec: FamilySpec, path: str | os.PathLike, inflation: str = "center"
) -> None:
    """Load a torchvision-format state dict into a full (uncut) backbone from :func:`build_backbone`.

    Keys are renamed (:func:`torchvision_to_backbone_keys`), the first kernel is adapted from RGB to the backbone's
    input channels, 2D kernels are inflated when the backbone is 3D, and then every backbone tensor must be
    loaded, with the right shape: nothing is silently left at its random initialisation.

    Args:
        backbone: the module to fill in place.
        spec: its family.
        path: the state-dict file.
        inflation: 2D-to-3D rule, ``"center"`` or ``"mean"``.

    Raises:
        ValueError: unreadable file, non-finite values, a first kernel with a channel count that is neither RGB nor
            the backbone's, keys missing from the file or unknown to ``spec`` (another architecture), or tensors of
            the wrong shape. The message names the file and lists the keys.
    """
    source = str(path)
    raw = read_state_dict(path)
    check_finite(raw, source)
    state = torchvision_to_backbone_keys(raw, spec)
    target = backbone.state_dict()
    stem_key = "stem.conv.weight"
    if stem_key in state and stem_key in target:
        have, want = state[stem_key].shape[1], target[stem_key].shape[1]
        if have != want:
            if have != 3:
                raise ValueError(
                    f"weights file {source!r}: the first convolution takes {have} input channels, but the network "
                    f"has in_channels={want}; only RGB (3-channel) kernels are adapted to other channel counts."
                )
            state[stem_key] = adapt_input_channels(state[stem_key], want)
    state = inflate_state_dict(state, target, inflation)
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in target]
    if missing or unexpected:
        parts = [f"weights file {source!r} does not match {spec.name}"]
        if missing:
            parts.append(f"{len(missing)} backbone keys not in the file: {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} keys in the file unknown to {spec.name}: {_listing(unexpected)}")
        raise ValueError("; ".join(parts) + ".")
    wrong = [
        f"{k} (file {tuple(state[k].shape)}, network {tuple(target[k].shape)})"
        for k in target
        if k in state and state[k].shape != target[k].shape
    ]
    if wrong:
        raise ValueError(f"weights file {source!r}: {len(wrong)} tensors have the wrong shape: {_listing(wrong, 6)}.")
    for key in target:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = target[key]
    backbone.load_state_dict(state, strict=True)
    logger.info("loaded %d tensors of %s weights from %s", len(state), spec.name, source)
