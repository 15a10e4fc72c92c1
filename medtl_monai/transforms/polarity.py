"""Radiographs exported as pictures, inverted back to MONOCHROME2 when their JSON sidecar says so.

A DICOM radiograph is shown the right way round by :class:`~medtl_monai.io.DicomXrayReader` (MONOCHROME1 and a
Presentation LUT Shape of ``INVERSE`` are inverted there). A PNG or JPEG export keeps the stored values and loses the
header; data sets such as BIMCV-COVID19+ keep the attributes in a sidecar ``<stem>.json`` beside the picture. MONAI's
``PILReader`` reads the picture as it is, so a MONOCHROME1 export would reach the network with bones dark and air
white. :class:`RestorePolarity` reads the sidecar of the file the image came from (its ``filename_or_obj``) and
inverts such an image within the range of its pixel format, as a DICOM viewer would.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, Transform
from monai.utils import ImageMetaKey, TransformBackends, convert_to_tensor

from ..io.xray_reader import PICTURE_SUFFIXES, sidecar_display_inverted

__all__ = ["PICTURE_MODE_RANGES", "RestorePolarity", "RestorePolarityd"]

#: Value range of PIL's grey and colour pixel formats (MONAI's ``PILReader`` records the format as ``meta["mode"]``).
PICTURE_MODE_RANGES: dict[str, tuple[float, float]] = {
    "1": (0.0, 1.0),
    "L": (0.0, 255.0),
    "LA": (0.0, 255.0),
    "P": (0.0, 255.0),
    "RGB": (0.0, 255.0),
    "RGBA": (0.0, 255.0),
    "I;16": (0.0, 65535.0),
    "I;16B": (0.0, 65535.0),
    "I;16L": (0.0, 65535.0),
}


class RestorePolarity(Transform):
    """Invert a picture radiograph whose JSON sidecar says MONOCHROME1 (or ``INVERSE``) back to MONOCHROME2.

    The image is inverted as ``low + high - value`` with ``[low, high]`` the range of its pixel format
    (:data:`PICTURE_MODE_RANGES`, from ``meta["mode"]``; the image's own minimum and maximum for other formats). An
    image that is not a picture file, has no sidecar, or whose sidecar says MONOCHROME2 is returned unchanged.

    Raises:
        BadCaseError: a sidecar that cannot be read (the message names it).
    """

    backend = [TransformBackends.TORCH]

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Return ``img``, inverted when its file's sidecar asks for it.

        Args:
            img: a channel-first image; a ``MetaTensor`` from ``LoadImage`` names its file in ``filename_or_obj``.

        Returns:
            the image in MONOCHROME2 polarity.
        """
        if not isinstance(img, MetaTensor):
            return img
        path = img.meta.get(ImageMetaKey.FILENAME_OR_OBJ)
        if not isinstance(path, str) or not path.lower().endswith(PICTURE_SUFFIXES):
            return img
        if not sidecar_display_inverted(path):
            return img
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        low, high = PICTURE_MODE_RANGES.get(str(img.meta.get("mode")), (float(img_t.min()), float(img_t.max())))
        return (low + high) - img_t


class RestorePolarityd(MapTransform):
    """Dictionary wrapper of :class:`RestorePolarity`.

    Args:
        keys: keys of the radiographs.
        allow_missing_keys: do not raise if a key is absent.
    """

    backend = RestorePolarity.backend

    def __init__(self, keys: KeysCollection, *, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.restore = RestorePolarity()

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.restore(d[key])
        return d
