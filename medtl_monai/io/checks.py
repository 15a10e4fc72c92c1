"""Checks of a loaded image: a transform that rejects images no model should see, naming the file and the problem."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import ImageMetaKey

from .errors import BadCaseError

__all__ = ["CheckImage", "CheckImaged"]


class CheckImage(Transform):
    """Raise :class:`~medtl_monai.io.BadCaseError` for an image no model should see; else pass it on.

    Checks, in order: the number of spatial dimensions, the number of channels (a 4D time series loaded where a
    3D image is expected shows up as several channels), emptiness, non-finite values, and constant images. The
    error names ``filename_or_obj`` from the image's metadata.

    Note that inside ``Compose``/``Dataset`` MONAI re-raises transform errors as ``RuntimeError`` chained to the
    original; :func:`~medtl_monai.io.find_bad_case_error` recovers it.

    Args:
        expected_spatial_dims: required number of spatial dimensions (None: any).
        expected_channels: required number of channels (None: any).
        channel_first: whether the image has a leading channel axis (as after ``EnsureChannelFirst`` or
            ``LoadImage(ensure_channel_first=True)``); if False the whole shape is spatial.
        check_finite: reject NaN or infinite values.
        check_constant: reject images whose values are all equal.
    """

    def __init__(
        self,
        *,
        expected_spatial_dims: int | None = 3,
        expected_channels: int | None = 1,
        channel_first: bool = True,
        check_finite: bool = True,
        check_constant: bool = True,
    ) -> None:
        self.expected_spatial_dims = expected_spatial_dims
        self.expected_channels = expected_channels
        self.channel_first = channel_first
        self.check_finite = check_finite
        self.check_constant = check_constant

    def __call__(self, img: Any, filename: str | os.PathLike | None = None) -> Any:
        """Check ``img`` and return it unchanged.

        Args:
            img: an array or tensor (a ``MetaTensor`` provides the file name).
            filename: the name to report; defaults to ``img.meta["filename_or_obj"]``.

        Raises:
            BadCaseError: the image has the wrong dimensionality or channel count, is empty, holds NaN/inf
                values, or is constant.
        """
        if filename is None:
            meta = img.meta if isinstance(img, MetaTensor) else {}
            filename = meta.get(ImageMetaKey.FILENAME_OR_OBJ, "<unnamed image>")
        data = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
        shape = tuple(data.shape)
        spatial = shape[1:] if self.channel_first else shape
        channels = shape[0] if self.channel_first and shape else 1
        if self.expected_spatial_dims is not None and len(spatial) != self.expected_spatial_dims:
            raise BadCaseError(
                filename,
                f"wrong dimensionality: {len(spatial)}D image (spatial shape {spatial}), expected "
                f"{self.expected_spatial_dims}D",
            )
        if self.expected_channels is not None and channels != self.expected_channels:
            raise BadCaseError(
                filename,
                f"wrong dimensionality: {channels} channels or frames (shape {shape}), expected "
                f"{self.expected_channels}; a {len(spatial) + 1}D file (e.g. a time series) where "
                f"{len(spatial)}D is expected?",
            )
        if data.numel() == 0:
            raise BadCaseError(filename, f"empty image (shape {shape})")
        if self.check_finite and data.is_floating_point():
            finite = torch.isfinite(data)
            if not bool(finite.all()):
                n_nan = int(torch.isnan(data).sum())
                raise BadCaseError(
                    filename, f"non-finite values: {n_nan} NaN and {int((~finite).sum()) - n_nan} infinite voxels"
                )
        if self.check_constant:
            low, high = torch.aminmax(data)
            if bool(low == high):
                raise BadCaseError(filename, f"constant image: every voxel equals {float(low):g}")
        return img


class CheckImaged(MapTransform):
    """Dictionary version of :class:`CheckImage`.

    Args:
        keys: keys of the images to check.
        allow_missing_keys: do not raise when a key is absent.
        kwargs: the arguments of :class:`CheckImage`.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs: Any) -> None:
        super().__init__(keys, allow_missing_keys)
        self.checker = CheckImage(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Check every image under ``keys``; return the data unchanged."""
        d = dict(data)
        for key in self.key_iterator(d):
            self.checker(d[key])
        return d
