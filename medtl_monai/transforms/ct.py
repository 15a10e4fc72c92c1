"""CT preprocessing: orientation, spacing, body/lung crop, fixed size, HU windows as channels, ImageNet statistics.

:func:`ct_preprocessing` returns a list of MONAI dictionary transforms, so a bundle config can write::

    "preprocessing": {"_target_": "Compose", "transforms": "$@ct_pre"},
    "ct_pre": {"_target_": "medtl_monai.transforms.ct_preprocessing", "spatial_size": [96, 96, 32]}

Axis order: ``Orientationd(axcodes="PLS")`` (:data:`~medtl_monai.transforms.axes.CT_AXCODES`) gives
``(C, rows, columns, slices)`` with the rows running from anterior to posterior, the columns from the patient's right
to the patient's left and the slices upwards: every axial slice ``out[c, :, :, k]`` is the picture a radiologist
looks at (patient's right on the left of the screen, anterior at the top), rows first as ImageNet kernels were
trained. ``spatial_size`` and ``pixdim`` are given in that order: ``(antero-posterior, left-right, cranio-caudal)``
(the bundles use equal in-plane values). The affine of the output follows every step, so a map saved with it
(a CAM as NIfTI) overlays the scan in any viewer.

Intensities: each HU window is one channel in ``[0, 1]``; with ``normalize="imagenet"`` every channel is then
normalised with the ImageNet statistics of the RGB channel it meets in a pretrained stem (see
:mod:`~medtl_monai.transforms.normalization`). The value that air (:data:`AIR_HU`) takes in every channel is recorded
in the image's metadata (:data:`AIR_VALUE_KEY`), so that augmentation pads with air rather than with a value no scan
has (:func:`~medtl_monai.transforms.ct_train_augmentation`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import ImageReader, MetaTensor
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

from .axes import CT_AXCODES
from .masks import BodyMask, LungMask
from .normalization import check_normalize, normalization_transforms
from .windows import HUWindows, HUWindowsd, WindowSpec

__all__ = ["AIR_HU", "AIR_VALUE_KEY", "RecordAird", "air_values", "ct_preprocessing"]

#: HU value used to pad CT images (air).
AIR_HU = -1024.0

#: Metadata key holding the value of air in each output channel (a list of floats).
AIR_VALUE_KEY = "air_value"

_CROPS = {"body": BodyMask, "lung": LungMask}
_RESIZES = ("resize", "pad")


def air_values(windows: Sequence[WindowSpec] | None = ("lung", "mediastinum", "bone"),
               normalize: str = "none") -> list[float]:
    """The value of air (:data:`AIR_HU`) in each channel that :func:`ct_preprocessing` gives.

    Args:
        windows: the windows of the preprocessing (``None``: raw HU, one channel).
        normalize: its ``normalize`` setting.

    Returns:
        one value per channel (e.g. about 0.216 in the lung window, 0 in the mediastinal and bone windows, before
        normalisation).
    """
    if windows is None:
        return [AIR_HU]
    air = HUWindows(windows=windows)(torch.full((1, 1), AIR_HU))
    for transform in normalization_transforms("image", normalize, int(air.shape[0])):
        air = transform({"image": air})["image"]
    return [float(v) for v in torch.as_tensor(air).reshape(-1)]


class RecordAird(MapTransform):
    """Record the value of air in each channel in the image's metadata (:data:`AIR_VALUE_KEY`).

    Args:
        keys: keys of the images.
        values: the value of air per channel (see :func:`air_values`).
        allow_missing_keys: do not raise if a key is absent.
    """

    def __init__(self, keys: KeysCollection, *, values: Sequence[float], allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.values = [float(v) for v in values]

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            if isinstance(d[key], MetaTensor):
                d[key].meta[AIR_VALUE_KEY] = list(self.values)
        return d


def ct_preprocessing(
    keys: KeysCollection = ("image",),
    *,
    spatial_size: Sequence[int] = (96, 96, 32),
    pixdim: Sequence[float] | None = (3.5, 3.5, 10.0),
    windows: Sequence[WindowSpec] | None = ("lung", "mediastinum", "bone"),
    crop: str | None = "body",
    crop_margin: int | Sequence[int] = 1,
    resize: str = "resize",
    normalize: str = "none",
    load: bool = False,
    reader: str | ImageReader | None = None,
) -> list[MapTransform]:
    """Build the deterministic CT preprocessing chain (cacheable; put augmentation after it).

    Steps: [load + channel first] -> ``Orientationd("PLS")`` (rows anterior -> posterior, columns patient right ->
    left, slices upwards; see the module notes) -> ``Spacingd(pixdim)`` -> crop to the body or the lungs
    (``CropForegroundd`` with :class:`BodyMask` / :class:`LungMask`, computed in HU) -> fixed size (``Resized``
    stretches the crop to ``spatial_size``; ``ResizeWithPadOrCropd`` keeps the spacing and pads with air or crops
    centrally) -> :class:`HUWindowsd` (one channel in ``[0, 1]`` per window) -> ImageNet normalisation (with
    ``normalize="imagenet"``) -> float32, with the value of air per channel recorded in the metadata.

    Resizing happens in HU before windowing: one channel is cheaper to resample, and padding with air gives every
    window its value of air.

    Args:
        keys: keys of the CT images (all are transformed alike; the crop box is computed on the first).
        spatial_size: output size ``(rows, columns, slices)``: antero-posterior, left-right, cranio-caudal.
        pixdim: target voxel spacing in mm, in the same order; ``None`` skips resampling.
        windows: window names (``"lung"``, ``"mediastinum"``, ``"bone"``, ...) or ``(lower, upper)`` HU pairs, one
            output channel each; three give an RGB-like input for ImageNet weights. ``None`` keeps raw HU.
        crop: ``"body"``, ``"lung"`` or ``None``.
        crop_margin: voxels kept around the crop's bounding box (after resampling).
        resize: ``"resize"`` (stretch to ``spatial_size``, never cuts anatomy) or ``"pad"`` (keep ``pixdim``,
            pad/crop to ``spatial_size``; choose ``pixdim * spatial_size`` to cover the body).
        normalize: ``"none"`` (windows in ``[0, 1]``) or ``"imagenet"`` (each window channel then normalised with
            ImageNet statistics, for pretrained weights; see
            :func:`~medtl_monai.transforms.default_normalization`). Needs ``windows``.
        load: prepend ``LoadImaged(reader=reader, ensure_channel_first=True)`` for items holding file or folder
            paths.
        reader: image reader for ``LoadImaged`` (a name such as ``"NibabelReader"`` or an instance, e.g. the
            project's DICOM series reader); ``None`` lets MONAI choose.

    Returns:
        the list of dictionary transforms, to wrap in ``Compose``.

    Raises:
        ValueError: for an unknown ``crop``, ``resize`` or ``normalize`` (or ``"imagenet"`` without windows), or a
            ``spatial_size``/``pixdim`` that is not 3D.
    """
    keys = ensure_tuple(keys)
    if crop is not None and crop not in _CROPS:
        raise ValueError(f"crop must be one of {sorted(_CROPS)} or None, got {crop!r}")
    if resize not in _RESIZES:
        raise ValueError(f"resize must be one of {_RESIZES}, got {resize!r}")
    if len(spatial_size) != 3 or (pixdim is not None and len(pixdim) != 3):
        raise ValueError(f"spatial_size and pixdim must be 3D (rows, columns, slices), got {spatial_size} and {pixdim}")
    if check_normalize(normalize) != "none" and windows is None:
        raise ValueError("normalize='imagenet' needs HU windows (values in [0, 1]); got windows=None")

    chain: list[MapTransform] = []
    if load:
        chain.append(LoadImaged(keys, reader=reader, image_only=True, ensure_channel_first=True))
    chain.append(Orientationd(keys, axcodes=CT_AXCODES, labels=None))
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
        chain += normalization_transforms(keys, normalize, len(HUWindows(windows=windows).bounds))
    chain.append(EnsureTyped(keys, dtype=torch.float32))
    chain.append(RecordAird(keys, values=air_values(windows, normalize)))
    return chain
