"""Find, read and verify torchvision-format ImageNet state dicts and map them onto this package's backbones.

Weights come from, in order of preference: an explicit path; the torch hub cache
(``$TORCH_HOME/hub/checkpoints/<official file name>``); or, when the machine is online, the official URL with the
SHA-256 prefix of the file name checked by ``torch.hub.download_url_to_file``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from .families import FamilySpec, get_family

__all__ = [
    "resolve_weights_path",
    "torchvision_to_backbone_keys",
    "backbone_to_torchvision_keys",
    "adapt_input_channels",
    "check_finite",
]

logger = logging.getLogger("medtl_monai.networks")


def resolve_weights_path(weights: str | os.PathLike, arch: str, url: str | None = None, download: bool = True) -> Path:
    """Turn a ``weights`` argument into a local file path.

    Args:
        weights: a file path, or ``"imagenet"`` for the official torchvision weights of ``arch``.
        arch: architecture name (decides the official file name).
        url: download address overriding the official one (any scheme urllib opens, ``file://`` included).
        download: whether ``"imagenet"`` may be downloaded when it is not in the torch hub cache.

    Returns:
        Path of an existing file.

    Raises:
        ValueError: the path does not exist, or ``"imagenet"`` is neither cached nor downloadable (the message says
            where to put the file).
    """
    if str(weights).lower() != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ValueError(f"weights file {str(path)!r} does not exist.")
        return path
    spec = get_family(arch)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / spec.weights_file
    if cached.is_file():
        logger.info("ImageNet weights for %s found in the torch hub cache: %s", spec.name, cached)
        return cached
    source = url or spec.weights_url
    if not download:
        raise ValueError(
            f"ImageNet weights for {spec.name} are not in the torch hub cache ({cached}) and download is disabled; "
            f"copy {spec.weights_file} there or pass weights=/path/to/{spec.weights_file}."
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading ImageNet weights for %s from %s to %s", spec.name, source, cached)
    tmp = cached.with_suffix(cached.suffix + ".partial")
    try:
        torch.hub.download_url_to_file(source, str(tmp), hash_prefix=spec.hash_prefix, progress=False)
    except Exception as err:  # offline, hash mismatch, HTTP error: one clear message
        tmp.unlink(missing_ok=True)
        raise ValueError(
            f"could not obtain ImageNet weights for {spec.name} from {source} ({type(err).__name__}: {err}); "
            f"copy {spec.weights_file} into {cached.parent} or pass weights=/path/to/{spec.weights_file}."
        ) from err
    os.replace(tmp, cached)
    return cached


def torchvision_to_backbone_keys(state_dict: Mapping[str, torch.Tensor], spec: FamilySpec) -> dict[str, torch.Tensor]:
    """Rename torchvision keys to the keys of :func:`~medtl_monai.networks.families.build_backbone`.

    ResNet: ``conv1``/``bn1`` become ``stem.conv``/``stem.norm``; ``layerN.*`` is unchanged. DenseNet: the
    ``features.`` prefix goes, ``conv0``/``norm0`` become ``stem.conv``/``stem.norm``, ``norm5`` becomes
    ``final_norm.norm``, and dense-layer keys in both torchvision's old (``norm.1``) and new (``norm1``) style gain
    MONAI's ``layers.`` level. The classifier (``fc.*`` / ``classifier.*``) is dropped: heads are always new.

    Args:
        state_dict: torchvision-format state dict.
        spec: the architecture it belongs to.

    Returns:
        A new dict with renamed keys.
    """
    return spec.family.from_torchvision(state_dict)


def backbone_to_torchvision_keys(state_dict: Mapping[str, torch.Tensor], spec: FamilySpec) -> dict[str, torch.Tensor]:
    """Rename a full backbone's keys to torchvision's (the inverse of :func:`torchvision_to_backbone_keys`, new-style
    DenseNet keys): the result is a weights file that ``TransferClassifier(weights=path)`` loads exactly like
    torchvision's.

    Args:
        state_dict: a full (uncut, unslimmed) backbone's state dict.
        spec: its architecture.

    Returns:
        A new dict with torchvision keys.

    Raises:
        ValueError: keys that are not a backbone's of that family.
    """
    return spec.family.to_torchvision(state_dict)


def adapt_input_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt a first-convolution kernel trained on RGB to ``in_channels`` inputs.

    One channel: the RGB kernels are summed, so a grey image replicated to RGB and the grey image itself give the
    same response. N > 1 channels: the RGB kernels are tiled over the N channels (R, G, B, R, ...) and scaled by
    3/N, so the response keeps its scale (and is unchanged for a grey image on all channels when N is a multiple
    of 3).

    Args:
        weight: kernel of shape (out, c, *spatial).
        in_channels: wanted input channels.

    Returns:
        The kernel for ``in_channels`` (the input itself when the channel count already matches).
    """
    c = weight.shape[1]
    if in_channels == c:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = math.ceil(in_channels / c)
    tiled = weight.repeat(1, reps, *([1] * (weight.dim() - 2)))[:, :in_channels]
    return tiled * (c / in_channels)


def check_finite(state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise when any floating-point tensor of a state dict holds NaN or infinity.

    Args:
        state_dict: tensors to check.
        source: file name or description used in the message.

    Raises:
        ValueError: listing the offending keys.
    """
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"weights from {source} contain non-finite values (NaN/inf) in: {', '.join(bad[:10])}"
                         + (f" and {len(bad) - 10} more" if len(bad) > 10 else ""))
