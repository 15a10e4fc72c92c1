"""CT and X-ray preprocessing and augmentation as MONAI dictionary transforms.

Preprocessing (deterministic, cacheable): :class:`Preprocessing` (by kind, remembering its settings for the model
card), built on the factories ct_preprocessing, xray_preprocessing and rgb_preprocessing.
Augmentation (random, after preprocessing): ct_train_augmentation, xray_train_augmentation, rgb_train_augmentation.
Transforms (array + dictionary pairs):
    HUWindows/HUWindowsd (HU windows -> channels), To2D/To2Dd, AdaptChannels/AdaptChannelsd,
    RowsFirst/RowsFirstd ((C, W, H) as read -> (C, H, W)), RestorePolarity/RestorePolarityd (MONOCHROME1 pictures).
Input values: default_normalization (a bundle's ``normalize`` from its weights), normalization_transforms (ImageNet
statistics), air_values and AirPaddedRandAffined (augmentation padded with air).
Crop selectors for ``CropForegroundd(select_fn=...)``: BodyMask, LungMask.
Out-of-distribution flags after loading: FingerprintFlags/FingerprintFlagsd (against the training data fingerprint).
"""

from __future__ import annotations

from .augment import AirPaddedRandAffined, ct_train_augmentation, rgb_train_augmentation, xray_train_augmentation
from .axes import CT_AXCODES, RowsFirst, RowsFirstd
from .channels import AdaptChannels, AdaptChannelsd
from .ct import AIR_HU, AIR_VALUE_KEY, RecordAird, air_values, ct_preprocessing
from .fingerprint_flags import FingerprintFlags, FingerprintFlagsd
from .masks import BodyMask, LungMask
from .normalization import NORMALIZATIONS, channel_statistics, default_normalization, normalization_transforms
from .polarity import RestorePolarity, RestorePolarityd
from .preprocessing import PREPROCESSING_KINDS, Preprocessing
from .rgb import rgb_preprocessing
from .to2d import To2D, To2Dd
from .windows import HU_WINDOWS, HUWindows, HUWindowsd, WindowSpec, resolve_window
from .xray import IMAGENET_MEAN, IMAGENET_STD, xray_preprocessing

__all__ = [
    "AIR_HU",
    "AIR_VALUE_KEY",
    "CT_AXCODES",
    "HU_WINDOWS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NORMALIZATIONS",
    "PREPROCESSING_KINDS",
    "AdaptChannels",
    "AdaptChannelsd",
    "AirPaddedRandAffined",
    "BodyMask",
    "FingerprintFlags",
    "FingerprintFlagsd",
    "HUWindows",
    "HUWindowsd",
    "LungMask",
    "Preprocessing",
    "RecordAird",
    "RestorePolarity",
    "RestorePolarityd",
    "RowsFirst",
    "RowsFirstd",
    "To2D",
    "To2Dd",
    "WindowSpec",
    "air_values",
    "channel_statistics",
    "ct_preprocessing",
    "ct_train_augmentation",
    "default_normalization",
    "normalization_transforms",
    "resolve_window",
    "rgb_preprocessing",
    "rgb_train_augmentation",
    "xray_preprocessing",
    "xray_train_augmentation",
]
