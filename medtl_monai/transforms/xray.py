"""Chest X-ray preprocessing: 2D, MONOCHROME2, rows first, intensities to [0, 1], aspect-preserving resize and square
pad, ImageNet statistics.

:func:`xray_preprocessing` returns a list of MONAI dictionary transforms (see :mod:`medtl_monai.transforms.ct` for
the bundle-config pattern). MONAI's readers give a radiograph as ``(C, column, row)``; the chain turns it into
``(C, H, W)`` (:class:`~medtl_monai.transforms.axes.RowsFirst`) with row 0 the top of the image, as ImageNet weights
were trained, and the affine kept true to the new indexing. A picture file whose JSON sidecar says MONOCHROME1 is
inverted back first (:class:`~medtl_monai.transforms.polarity.RestorePolarity`; DICOM files are already shown the right
way round by their reader).
"""

from __future__ import annotations

import torch
from monai.config import KeysCollection
from monai.data import ImageReader
from monai.transforms import (
    EnsureTyped,
    LoadImaged,
    MapTransform,
    Resized,
    ScaleIntensityd,
    ScaleIntensityRangePercentilesd,
    SpatialPadd,
)
from monai.utils import ensure_tuple

from .axes import RowsFirstd
from .channels import AdaptChannelsd
from .normalization import IMAGENET_MEAN, IMAGENET_STD, check_normalize, normalization_transforms
from .polarity import RestorePolarityd
from .to2d import To2Dd

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "xray_preprocessing"]

_INTENSITY = ("percentile", "minmax")


def xray_preprocessing(
    keys: KeysCollection = ("image",),
    *,
    size: int = 224,
    channels: int = 3,
    intensity: str = "percentile",
    percentiles: tuple[float, float] = (0.5, 99.5),
    normalize: str = "imagenet",
    load: bool = False,
    reader: str | ImageReader | None = None,
) -> list[MapTransform]:
    """Build the deterministic X-ray preprocessing chain (cacheable; put augmentation after it).

    Steps: [load + channel first] -> :class:`RestorePolarityd` (a MONOCHROME1 picture with a sidecar) ->
    :class:`To2Dd` -> :class:`RowsFirstd` (``(C, H, W)``) -> :class:`AdaptChannelsd` to one channel (RGB-encoded files
    are averaged) -> intensities to ``[0, 1]`` (percentiles, clipped, or min-max) -> ``Resized(size_mode="longest")``
    so the longest side is ``size`` and the aspect ratio is kept -> ``SpatialPadd`` to ``size x size`` with 0 (black)
    -> :class:`AdaptChannelsd` to ``channels`` -> ImageNet normalisation -> float32.

    With one output channel the ImageNet normalisation uses the mean of the three channel statistics
    (0.449, 0.226); see :mod:`~medtl_monai.transforms.normalization`.

    Args:
        keys: keys of the radiographs.
        size: side of the square output.
        channels: 3 (grayscale repeated, for RGB ImageNet stems) or 1.
        intensity: ``"percentile"`` (robust to burnt-in text and collimator edges) or ``"minmax"``.
        percentiles: lower and upper percentiles mapped to 0 and 1 when ``intensity="percentile"``.
        normalize: ``"imagenet"`` (for pretrained weights) or ``"none"`` (keep ``[0, 1]``); see
            :func:`~medtl_monai.transforms.default_normalization`.
        load: prepend ``LoadImaged(reader=reader, ensure_channel_first=True)`` for items holding file paths.
        reader: image reader for ``LoadImaged``; ``None`` lets MONAI choose.

    Returns:
        the list of dictionary transforms, to wrap in ``Compose``.

    Raises:
        ValueError: for an unknown ``intensity`` or ``normalize``, or ``channels`` other than 1 or 3.
    """
    keys = ensure_tuple(keys)
    if intensity not in _INTENSITY:
        raise ValueError(f"intensity must be one of {_INTENSITY}, got {intensity!r}")
    check_normalize(normalize)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")

    chain: list[MapTransform] = []
    if load:
        chain.append(LoadImaged(keys, reader=reader, image_only=True, ensure_channel_first=True))
    chain += [RestorePolarityd(keys), To2Dd(keys), RowsFirstd(keys), AdaptChannelsd(keys, channels=1),
              EnsureTyped(keys, dtype=torch.float32)]
    if intensity == "percentile":
        chain.append(ScaleIntensityRangePercentilesd(keys, lower=percentiles[0], upper=percentiles[1],
                                                     b_min=0.0, b_max=1.0, clip=True))
    else:
        chain.append(ScaleIntensityd(keys, minv=0.0, maxv=1.0))
    chain += [
        Resized(keys, spatial_size=size, size_mode="longest", mode="area"),
        SpatialPadd(keys, spatial_size=(size, size), method="symmetric", mode="constant"),
        AdaptChannelsd(keys, channels=channels),
    ]
    chain += normalization_transforms(keys, normalize, channels)
    chain.append(EnsureTyped(keys, dtype=torch.float32))
    return chain
