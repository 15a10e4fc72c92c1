"""CT preprocessing: orientation, spacing, body/lung crop, fixed size, HU windows as channels.

:func:`ct_preprocessing` returns a list of MONAI dictionary transforms, so a bundle config can write::

    "preprocessing": {"_target_": "Compose", "transforms": "$@ct_pre"},
    "ct_pre": {"_target_": "medtl_monai.transforms.ct_preprocessing", "spatial_size": [96, 96, 32]}

The output axis order is MONAI's after ``Orientationd("RAS")``: ``(C, x, y, z)`` with ``x`` towards the patient's
right, ``y`` anterior and ``z`` superior, so ``spatial_size`` and ``pixdim`` are given in that order (the depth,
cranio-caudal axis is last).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.config import KeysCollection
from monai.data import ImageReader
from monai.transforms import (
    CropForegroundd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    Orientationd,
    Resized,
    ResizeWithPadOrCropd,
    Spacingd,
)
from monai.utils import ensure_tuple

from .masks import BodyMask, LungMask
from .windows import HUWindowsd, WindowSpec

__all__ = ["AIR_HU", "ct_preprocessing"]

#: HU value used to pad CT images (air).
AIR_HU = -1024.0

_CROPS = {"body": BodyMask, "lung": LungMask}
_RESIZES = ("resize", "pad")


def ct_preprocessing(
    keys: KeysCollection = ("image",),
    *,
    spatial_size: Sequence[int] = (96, 96, 32),
    pixdim: Sequence[float] | None = (3.5, 3.5, 10.0),
    windows: Sequence[WindowSpec] | None = ("lung", "mediastinum", "bone"),
    crop: str | None = "body",
    crop_margin: int | Sequence[int] = 1,
    resize: str = "resize",
    load: bool = False,
    reader: str | ImageReader | None = None,
) -> list[MapTransform]:
    """Build the deterministic CT preprocessing chain (cacheable; put augmentation after it).

    Steps: [load + channel first] -> ``Orientationd("RAS")`` -> ``Spacingd(pixdim)`` -> crop to the body or the
    lungs (``CropForegroundd`` with :class:`BodyMask` / :class:`LungMask`, computed in HU) -> fixed size (``Resized``
    stretches the crop to ``spatial_size``; ``ResizeWithPadOrCropd`` keeps the spacing and pads with air or crops
    centrally) -> :class:`HUWindowsd` (one channel in ``[0, 1]`` per window) -> float32.

    Resizing happens in HU before windowing: one channel is cheaper to resample, and padding with air gives 0 in
    every window.

    Args:
        keys: keys of the CT images (all are transformed alike; the crop box is computed on the first).
        spatial_size: output size ``(x, y, z)`` in RAS array order.
        pixdim: target voxel spacing in mm, ``(x, y, z)``; ``None`` skips resampling.
        windows: window names (``"lung"``, ``"mediastinum"``, ``"bone"``, ...) or ``(lower, upper)`` HU pairs, one
            output channel each; three give an RGB-like input for ImageNet weights. ``None`` keeps raw HU.
        crop: ``"body"``, ``"lung"`` or ``None``.
        crop_margin: voxels kept around the crop's bounding box (after resampling).
        resize: ``"resize"`` (stretch to ``spatial_size``, never cuts anatomy) or ``"pad"`` (keep ``pixdim``,
            pad/crop to ``spatial_size``; choose ``pixdim * spatial_size`` to cover the body).
        load: prepend ``LoadImaged(reader=reader, ensure_channel_first=True)`` for items holding file or folder
            paths.
        reader: image reader for ``LoadImaged`` (a name such as ``"NibabelReader"`` or an instance, e.g. the
            project's DICOM series reader); ``None`` lets MONAI choose.

    Returns:
        the list of dictionary transforms, to wrap in ``Compose``.

    Raises:
        ValueError: for an unknown ``crop`` or ``resize``, or a ``spatial_size``/``pixdim`` that is not 3D.
    """
    keys = ensure_tuple(keys)
    if crop is not None and crop not in _CROPS:
        raise ValueError(f"crop must be one of {sorted(_CROPS)} or None, got {crop!r}")
    if resize not in _RESIZES:
        raise ValueError(f"resize must be one of {_RESIZES}, got {resize!r}")
    if len(spatial_size) != 3 or (pixdim is not None and len(pixdim) != 3):
        raise ValueError(f"spatial_size and pixdim must be 3D (x, y, z), got {spatial_size} and {pixdim}")

    chain: list[MapTransform] = []
    if load:
        chain.append(LoadImaged(keys, reader=reader, image_only=True, ensure_channel_first=True))
    chain.append(Orientationd(keys, axcodes="RAS", labels=None))
    if pixdim is not None:
        chain.append(Spacingd(keys, pixdim=tuple(pixdim), mode="bilinear", padding_mode="border"))
    if crop is not None:
        chain.append(
            CropForegroundd(keys, source_key=keys[0], select_fn=_CROPS[crop](), margin=crop_margin,
                            allow_smaller=True, start_coord_key=None, end_coord_key=None)
        )
    if resize == "resize":
        chain.append(Resized(keys, spatial_size=tuple(spatial_size), mode="trilinear", anti_aliasing=True))
    else:
        chain.append(ResizeWithPadOrCropd(keys, spatial_size=tuple(spatial_size), value=AIR_HU))
    if windows is not None:
        chain.append(HUWindowsd(keys, windows=windows))
    chain.append(EnsureTyped(keys, dtype=torch.float32))
    return chain
