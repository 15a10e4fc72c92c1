"""CT and X-ray preprocessing and augmentation as MONAI dictionary transforms.

Factories (return lists of dictionary transforms, reachable from bundle configs by ``_target_``):
    ct_preprocessing, ct_train_augmentation, xray_preprocessing, xray_train_augmentation.
Transforms (array + dictionary pairs):
    HUWindows/HUWindowsd (HU windows -> channels), To2D/To2Dd, AdaptChannels/AdaptChannelsd.
Crop selectors for ``CropForegroundd(select_fn=...)``: BodyMask, LungMask.
"""

from __future__ import annotations

from .augment import ct_train_augmentation, xray_train_augmentation
from .channels import AdaptChannels, AdaptChannelsd
from .ct import AIR_HU, ct_preprocessing
from .masks import BodyMask, LungMask
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
    "To2D",
    "To2Dd",
    "WindowSpec",
    "ct_preprocessing",
    "ct_train_augmentation",
    "resolve_window",
    "xray_preprocessing",
    "xray_train_augmentation",
]
