"""Squeeze an image to two spatial dimensions.

Readers return a radiograph as ``(C, W, H)``, ``(C, W, H, 1)`` (a one-slice volume, common for DICOM and NIfTI) or
``(C, 1, W, H)``; :class:`To2D` removes the singleton spatial dimensions so that every X-ray is ``(C, W, H)`` (then
:class:`~medtl_monai.transforms.axes.RowsFirst` puts the rows first).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, SqueezeDim, Transform

__all__ = ["To2D", "To2Dd"]


class To2D(Transform):
    """Remove singleton spatial dimensions of a channel-first image until two spatial dimensions remain.

    Trailing singleton dimensions are removed first, so a ``(C, 1, 1, 1)`` image becomes ``(C, 1, 1)``.
    The affine of a MetaTensor is updated by MONAI's :class:`~monai.transforms.SqueezeDim`.

    Raises:
        ValueError: if the image has fewer than two spatial dimensions, or more than two that are not singleton.
    """

    backend = SqueezeDim.backend

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Return ``img`` with two spatial dimensions.

        Args:
            img: channel-first image ``(C, spatial...)``.

        Returns:
            the image as ``(C, W, H)``.

        Raises:
            ValueError: if it cannot be made 2D by removing singleton dimensions.
        """
        spatial = list(img.shape[1:])
        if len(spatial) < 2:
            raise ValueError(f"To2D needs at least two spatial dimensions, got shape {tuple(img.shape)}")
        while len(spatial) > 2:
            singleton = [i for i, s in enumerate(spatial) if s == 1]
            if not singleton:
                raise ValueError(f"cannot make an image of shape {tuple(img.shape)} 2D: no singleton spatial dim")
            dim = singleton[-1]
            img = SqueezeDim(dim=dim + 1)(img)
            spatial.pop(dim)
        return img


class To2Dd(MapTransform):
    """Dictionary wrapper of :class:`To2D`.

    Args:
        keys: keys of the images to squeeze.
        allow_missing_keys: do not raise if a key is absent.
    """

    backend = To2D.backend

    def __init__(self, keys: KeysCollection, *, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.to2d = To2D()

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.to2d(d[key])
        return d
