"""CT and X-ray preprocessing and augmentation as MONAI dictionary transforms.

Preprocessing (deterministic, cacheable): :class:`Preprocessing` (by kind, remembering its settings for the model
card), built on the factories ct_preprocessing, xray_preprocessing and rgb_preprocessing.
Augmentation (random, after preprocessing): ct_train_augmentation, xray_train_augmentation, rgb_train_augmentation.
Transforms (array + dictionary pairs):
    HUWindows/HUWindowsd (HU windows -> channels), To2D/To2Dd, AdaptChannels/AdaptChannelsd.
Crop selectors for ``CropForegroundd(select_fn=...)``: BodyMask, LungMask.
"""

from __future__ import annotations

from .augment import ct_train_augmentation, rgb_train_augmentation, xray_train_augmentation
from .channels import AdaptChannels, AdaptChannelsd
from .ct import AIR_HU, ct_preprocessing
from .masks import BodyMask, LungMask
from .preprocessing import PREPROCESSING_KINDS, Preprocessing
from .rgb import rgb_preprocessing
from .to2d import To2D, To2Dd
from .windows import HU_WINDOWS, HUWindows, HUWindowsd, WindowSpec, resolve_window
from .xray import IMAGENET_MEAN, IMAGENET_STD, xray_preprocessing

__all__ = [
    "AIR_HU",
    "HU_WINDOWS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AdaptChannels",
    "AdaptChannelsd",
    "BodyMask",
    "HUWindows",
    "HUWindowsd",
    "LungMask",
    "PREPROCESSING_KINDS",
    "Preprocessing",
    "To2D",
    "To2Dd",
    "WindowSpec",
    "ct_preprocessing",
    "ct_train_augmentation",
    "resolve_window",
    "rgb_preprocessing",
    "rgb_train_augmentation",
    "xray_preprocessing",
    "xray_train_augmentation",
]
