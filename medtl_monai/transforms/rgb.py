"""Colour photograph preprocessing (endoscopy, fundus, dermoscopy): RGB in ``[0, 1]``, a square size, ImageNet stats.

:func:`rgb_preprocessing` returns a list of MONAI dictionary transforms (see :mod:`medtl_monai.transforms.ct` for the
bundle-config pattern). MONAI's ``PILReader`` gives a picture as ``(3, column, row)``; the chain turns it into
``(3, H, W)`` (:class:`~medtl_monai.transforms.axes.RowsFirst`), row 0 at the top, as ImageNet weights were trained.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.config import KeysCollection
from monai.data import ImageReader
from monai.transforms import EnsureTyped, LoadImaged, MapTransform, Resized, ScaleIntensityRanged
from monai.utils import ensure_tuple

from .axes import RowsFirstd
from .normalization import check_normalize, normalization_transforms

__all__ = ["rgb_preprocessing"]


def rgb_preprocessing(
    keys: KeysCollection = ("image",),
    *,
    size: int | Sequence[int] = 224,
    normalize: str = "imagenet",
    load: bool = False,
    reader: str | ImageReader | None = "PILReader",
) -> list[MapTransform]:
    """Build the deterministic preprocessing of 8-bit RGB photographs (cacheable; put augmentation after it).

    Steps: [load + channel first] -> :class:`RowsFirstd` (``(3, H, W)``) -> float32 -> ``[0, 255]`` to ``[0, 1]``
    -> ``Resized`` to ``size x size`` (area interpolation: no aliasing when shrinking) -> ImageNet normalisation
    (with ``normalize="imagenet"``) -> float32.

    Args:
        keys: keys of the images.
        size: side of the square output, or its ``(height, width)``.
        normalize: ``"imagenet"`` (for pretrained weights) or ``"none"`` (keep ``[0, 1]``); see
            :func:`~medtl_monai.transforms.default_normalization`.
        load: prepend ``LoadImaged(reader=reader, ensure_channel_first=True)`` for items holding file paths.
        reader: image reader for ``LoadImaged`` (default MONAI's ``PILReader``).

    Returns:
        the list of dictionary transforms, to wrap in ``Compose``.

    Raises:
        ValueError: an unknown ``normalize`` or a size below 1.
    """
    keys = ensure_tuple(keys)
    check_normalize(normalize)
    spatial = tuple(int(s) for s in size) if isinstance(size, Sequence) else (int(size), int(size))
    if len(spatial) != 2 or min(spatial) < 1:
        raise ValueError(f"size must be a positive number of pixels or a (height, width) pair, got {size!r}")
    chain: list[MapTransform] = []
    if load:
        chain.append(LoadImaged(keys, reader=reader, image_only=True, ensure_channel_first=True))
    chain += [
        RowsFirstd(keys),
        EnsureTyped(keys, dtype=torch.float32),
        ScaleIntensityRanged(keys, a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True),
        Resized(keys, spatial_size=spatial, mode="area"),
    ]
    chain += normalization_transforms(keys, normalize, 3)
    chain.append(EnsureTyped(keys, dtype=torch.float32))
    return chain
