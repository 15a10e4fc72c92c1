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
turns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from monai.config import KeysCollection
from monai.transforms import (
    MapTransform,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandRotate90d,
    RandScaleIntensityd,
    RandShiftIntensityd,
)
from monai.utils import ensure_tuple

__all__ = ["ct_train_augmentation", "rgb_train_augmentation", "xray_train_augmentation"]


def _per_dim(value: float | Sequence[float], spatial_dims: int) -> tuple[float, ...]:
    """Broadcast a scalar range to every spatial dimension (MONAI would apply a scalar to the first one only)."""
    values = tuple(float(v) for v in ensure_tuple(value))
    if len(values) == 1:
        return values * spatial_dims
    if len(values) != spatial_dims:
        raise ValueError(f"expected 1 or {spatial_dims} values, got {value!r}")
    return values


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
    padding_mode: str = "zeros",
) -> list[MapTransform]:
    """Random transforms for windowed CT volumes ``(C, x, y, z)`` in RAS order with values in ``[0, 1]``.

    ``RandAffined`` rotates by up to ``rotate_deg`` in the axial plane (patient positioning) and ``tilt_deg`` about
    the two in-plane axes (gantry tilt, posture), scales each axis by up to ``scale`` (body habitus) and translates;
    then a global intensity shift (after windowing: 0.03 is about 45 HU in the lung window, 10 HU in the mediastinal
    one) and Gaussian noise (quantum noise) follow, and an optional left-right flip (see the module notes; default
    off).

    Args:
        keys: keys of the windowed CT images.
        prob: probability of each random transform.
        rotate_deg: maximum rotation about the cranio-caudal axis, degrees.
        tilt_deg: maximum rotation about the left-right and antero-posterior axes, degrees.
        scale: maximum relative scaling, one value or one per axis.
        translate: maximum shift in voxels, one value or one per axis.
        intensity_shift: maximum additive shift of all channels together, in output units.
        noise_std: standard deviation of additive Gaussian noise, in output units; 0 disables it.
        flip_lr: add a random left-right flip (spatial axis 0 in RAS order).
        padding_mode: ``RandAffined`` padding; ``"zeros"`` is air for HU windows.

    Returns:
        the list of random dictionary transforms.
    """
    keys = ensure_tuple(keys)
    tilt, rot = math.radians(tilt_deg), math.radians(rotate_deg)
    chain: list[MapTransform] = [
        RandAffined(keys, prob=prob, rotate_range=(tilt, tilt, rot), scale_range=_per_dim(scale, 3),
                    translate_range=_per_dim(translate, 3), mode="bilinear", padding_mode=padding_mode)
    ]
    if flip_lr:
        chain.append(RandFlipd(keys, prob=0.5, spatial_axis=0))
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
    """Random transforms for preprocessed radiographs ``(C, W, H)``; never a vertical flip.

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
        flip_lr: add a random left-right flip (spatial axis 0).
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
        chain.append(RandFlipd(keys, prob=0.5, spatial_axis=0))
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
