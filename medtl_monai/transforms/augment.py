"""Training augmentation that stays physically plausible for CT and chest X-ray.

Both factories return lists of MONAI random dictionary transforms to append after the matching preprocessing
(:func:`~medtl_monai.transforms.ct_preprocessing`, :func:`~medtl_monai.transforms.xray_preprocessing`). They are
seeded the MONAI way: ``Compose(pre + aug).set_random_state(seed=...)`` (or ``set_determinism``) makes a run
repeatable.

Left-right flips are OFF by default for both modalities. The chest is not mirror-symmetric (heart and aortic arch on
the left, three right lobes against two left, the liver under the right hemidiaphragm), so a flipped image shows a
situs inversus that never occurs at test time and would mislead any task that depends on laterality. For diffuse,
bilateral disease such as COVID-19 pneumonia the label survives a flip, so ``flip_lr=True`` is a reasonable option
there. Vertical (cranio-caudal) flips are never offered for them. Photographs of mucosa or of the retina have no such
orientation (an endoscope rotates freely), so :func:`rgb_train_augmentation` flips both ways and rotates by quarter
turns. The preprocessing puts rows first (CT ``(C, AP, LR, SI)``, radiographs ``(C, H, W)``), so left-right is spatial
axis 1 for both.

Rotations and scalings move the image away from the borders of the array. CT is padded with air in every channel
(:class:`AirPaddedRandAffined`: the windowed, and normalised, value of -1024 HU), never with 0: in the lung window 0 is
-1350 HU, darker than air, a border no test scan shows. Radiographs repeat their (black, padded) edge.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import (
    MapTransform,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    Randomizable,
    RandRotate90d,
    RandScaleIntensityd,
    RandShiftIntensityd,
)
from monai.utils import ensure_tuple

from .ct import AIR_VALUE_KEY, air_values

__all__ = ["AirPaddedRandAffined", "ct_train_augmentation", "rgb_train_augmentation", "xray_train_augmentation"]

#: Spatial axis of the patient's left-right direction after preprocessing (CT columns, radiograph columns).
LEFT_RIGHT_AXIS = 1


def _per_dim(value: float | Sequence[float], spatial_dims: int) -> tuple[float, ...]:
    """Broadcast a scalar range to every spatial dimension (MONAI would apply a scalar to the first one only)."""
    values = tuple(float(v) for v in ensure_tuple(value))
    if len(values) == 1:
        return values * spatial_dims
    if len(values) != spatial_dims:
        raise ValueError(f"expected 1 or {spatial_dims} values, got {value!r}")
    return values


class AirPaddedRandAffined(Randomizable, MapTransform):
    """MONAI's ``RandAffined`` with the area it uncovers filled with air, channel by channel.

    ``RandAffined`` pads with zeros (or repeats the border). Here the value of air is subtracted per channel, the
    affine runs with zero padding and the value is added back: inside the image the result is ``RandAffined``'s
    (resampling is linear), the uncovered area is air, and voxels blended with the border lie between the image and
    air.

    The value of air per channel is ``air`` when given, else the one :func:`~medtl_monai.transforms.ct_preprocessing`
    recorded in the image's metadata (:data:`~medtl_monai.transforms.ct.AIR_VALUE_KEY`), else that of the default
    windows without normalisation.

    Args:
        keys: keys of the preprocessed CT images.
        air: value of air per channel (one value for all), or None (see above).
        allow_missing_keys: do not raise if a key is absent.
        affine_args: ``RandAffined`` arguments (``prob``, ``rotate_range``, ``scale_range``, ``translate_range``,
            ``mode``...); ``padding_mode`` is ``"zeros"``.
    """

    def __init__(self, keys: KeysCollection, *, air: float | Sequence[float] | None = None,
                 allow_missing_keys: bool = False, **affine_args) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.air = None if air is None else [float(v) for v in ensure_tuple(air)]
        self.affine = RandAffined(keys, padding_mode="zeros", allow_missing_keys=allow_missing_keys, **affine_args)

    def set_random_state(self, seed: int | None = None, state=None) -> AirPaddedRandAffined:
        super().set_random_state(seed, state)
        self.affine.set_random_state(seed, state)
        return self

    def randomize(self, data=None) -> None:
        self.affine.randomize(data)

    def _air(self, img: torch.Tensor) -> torch.Tensor:
        """The value of air per channel, shaped to broadcast over ``img``."""
        values = self.air
        if values is None and isinstance(img, MetaTensor):
            values = img.meta.get(AIR_VALUE_KEY)
        if values is None:
            values = air_values()
        air = torch.as_tensor([float(v) for v in ensure_tuple(values)], dtype=torch.float32)
        if air.numel() == 1:
            air = air.expand(img.shape[0])
        if air.numel() != img.shape[0]:
            raise ValueError(f"{air.numel()} air values for an image of {img.shape[0]} channels; give air=[...] (one "
                             "value per channel) or a padding_mode other than 'air'")
        return air.reshape(-1, *([1] * (img.ndim - 1))).to(device=img.device, dtype=img.dtype)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        airs = {}
        for key in self.key_iterator(d):
            img = d[key] if isinstance(d[key], torch.Tensor) else torch.as_tensor(d[key])
            airs[key] = self._air(img)
            d[key] = img - airs[key]
        d = dict(self.affine(d))
        for key, air in airs.items():
            d[key] = d[key] + air
        return d


def ct_train_augmentation(
    keys: KeysCollection = ("image",),
    *,
    prob: float = 0.5,
    rotate_deg: float = 10.0,
    tilt_deg: float = 3.0,
    scale: float | Sequence[float] = 0.1,
    translate: float | Sequence[float] = 0.0,
    intensity_shift: float = 0.03,
    noise_std: float = 0.01,
    flip_lr: bool = False,
    padding_mode: str = "air",
    air: float | Sequence[float] | None = None,
) -> list[MapTransform]:
    """Random transforms for preprocessed CT volumes ``(C, AP, LR, SI)``, as ``ct_preprocessing`` gives them.

    :class:`AirPaddedRandAffined` (MONAI's ``RandAffined``, padded with air) rotates by up to ``rotate_deg`` in the
    axial plane (patient positioning) and ``tilt_deg`` about the two in-plane axes (gantry tilt, posture), scales
    each axis by up to ``scale`` (body habitus) and translates; then a global intensity shift (on ``[0, 1]`` windows
    0.03 is about 45 HU in the lung window, 10 HU in the mediastinal one) and Gaussian noise (quantum noise) follow,
    and an optional left-right flip (see the module notes; default off).

    Args:
        keys: keys of the windowed CT images.
        prob: probability of each random transform.
        rotate_deg: maximum rotation about the cranio-caudal axis, degrees.
        tilt_deg: maximum rotation about the left-right and antero-posterior axes, degrees.
        scale: maximum relative scaling, one value or one per axis.
        translate: maximum shift in voxels, one value or one per axis.
        intensity_shift: maximum additive shift of all channels together, in output units (window units without
            normalisation; with ImageNet statistics one output unit is about 0.23 window units).
        noise_std: standard deviation of additive Gaussian noise, in output units; 0 disables it.
        flip_lr: add a random left-right flip (spatial axis 1, the columns).
        padding_mode: ``"air"`` (:class:`AirPaddedRandAffined`) or a ``RandAffined`` padding mode (``"zeros"``,
            ``"border"``, ``"reflection"``).
        air: the value of air per channel for ``padding_mode="air"``; None takes it from the image's metadata.

    Returns:
        the list of random dictionary transforms.
    """
    keys = ensure_tuple(keys)
    tilt, rot = math.radians(tilt_deg), math.radians(rotate_deg)
    affine_args = {"prob": prob, "rotate_range": (tilt, tilt, rot), "scale_range": _per_dim(scale, 3),
                   "translate_range": _per_dim(translate, 3), "mode": "bilinear"}
    chain: list[MapTransform] = [
        AirPaddedRandAffined(keys, air=air, **affine_args) if padding_mode == "air"
        else RandAffined(keys, padding_mode=padding_mode, **affine_args)
    ]
    if flip_lr:
        chain.append(RandFlipd(keys, prob=0.5, spatial_axis=LEFT_RIGHT_AXIS))
    if intensity_shift > 0:
        chain.append(RandShiftIntensityd(keys, offsets=intensity_shift, prob=prob))
    if noise_std > 0:
        chain.append(RandGaussianNoised(keys, prob=prob, mean=0.0, std=noise_std))
    return chain


def xray_train_augmentation(
    keys: KeysCollection = ("image",),
    *,
    prob: float = 0.5,
    rotate_deg: float = 10.0,
    scale: float | Sequence[float] = 0.1,
    translate: float | Sequence[float] = 10.0,
    brightness: float = 0.1,
    contrast: float = 0.1,
    noise_std: float = 0.0,
    input_std: float = 0.226,
    flip_lr: bool = False,
    padding_mode: str = "border",
) -> list[MapTransform]:
    """Random transforms for preprocessed radiographs ``(C, H, W)``; never a vertical flip.

    ``RandAffined`` rotates by up to ``rotate_deg``, scales each axis by up to ``scale`` and shifts by up to
    ``translate`` pixels (patient positioning, distance to the detector); then brightness (additive) and contrast
    (multiplicative) jitter (exposure and processing differences), optional Gaussian noise and an optional left-right
    flip (see the module notes; default off).

    ``brightness`` and ``noise_std`` are given in display units (a fraction of the ``[0, 1]`` range before
    normalisation) and divided by ``input_std``, the standard deviation that the preprocessing divided by (0.226 on
    average for ImageNet statistics; 1.0 with ``normalize="none"``).

    Args:
        keys: keys of the radiographs.
        prob: probability of each random transform.
        rotate_deg: maximum in-plane rotation, degrees.
        scale: maximum relative scaling, one value or one per axis.
        translate: maximum shift in pixels, one value or one per axis.
        brightness: maximum additive shift in display units.
        contrast: maximum relative change of contrast (intensities multiplied by ``1 +- contrast``).
        noise_std: standard deviation of additive Gaussian noise in display units; 0 disables it.
        input_std: the preprocessing's normalisation divisor, to convert display units.
        flip_lr: add a random left-right flip (spatial axis 1, the columns).
        padding_mode: ``RandAffined`` padding; ``"border"`` repeats the (usually black, padded) edge.

    Returns:
        the list of random dictionary transforms.
    """
    keys = ensure_tuple(keys)
    chain: list[MapTransform] = [
        RandAffined(keys, prob=prob, rotate_range=math.radians(rotate_deg), scale_range=_per_dim(scale, 2),
                    translate_range=_per_dim(translate, 2), mode="bilinear", padding_mode=padding_mode)
    ]
    if flip_lr:
        chain.append(RandFlipd(keys, prob=0.5, spatial_axis=LEFT_RIGHT_AXIS))
    if brightness > 0:
        chain.append(RandShiftIntensityd(keys, offsets=brightness / input_std, prob=prob))
    if contrast > 0:
        chain.append(RandScaleIntensityd(keys, factors=contrast, prob=prob))
    if noise_std > 0:
        chain.append(RandGaussianNoised(keys, prob=prob, mean=0.0, std=noise_std / input_std))
    return chain


def rgb_train_augmentation(keys: KeysCollection = ("image",), *, prob: float = 0.5) -> list[MapTransform]:
    """Random flips along both axes and quarter-turn rotations, for photographs without a preferred orientation
    (endoscopy, fundus, dermoscopy), after :func:`~medtl_monai.transforms.rgb_preprocessing`.

    Args:
        keys: keys of the images.
        prob: probability of each random transform.

    Returns:
        the list of random dictionary transforms.
    """
    keys = ensure_tuple(keys)
    return [
        RandFlipd(keys, prob=prob, spatial_axis=0),
        RandFlipd(keys, prob=prob, spatial_axis=1),
        RandRotate90d(keys, prob=prob, max_k=3),
    ]
