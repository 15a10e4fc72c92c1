"""Checks of a loaded image: transforms that reject images no model should see, naming the file and the problem."""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import ImageMetaKey, ensure_tuple

from .errors import BadCaseError

__all__ = ["MODALITY_FLAG_KEY", "CheckImage", "CheckImaged", "CheckModality", "CheckModalityd", "image_name"]

logger = logging.getLogger("medtl_monai.io")

#: Key that :class:`CheckModalityd` with ``on_mismatch="flag"`` writes into each item: ``""`` or the problem.
MODALITY_FLAG_KEY = "modality_flag"

_MISMATCH_MODES = ("error", "flag")


def image_name(img: Any, filename: str | os.PathLike | None = None) -> str:
    """The file an image came from: ``filename`` when given, else its ``filename_or_obj`` metadata."""
    if filename is not None:
        return os.fspath(filename)
    meta = img.meta if isinstance(img, MetaTensor) else {}
    return str(meta.get(ImageMetaKey.FILENAME_OR_OBJ) or "<unnamed image>")


class CheckImage(Transform):
    """Raise :class:`~medtl_monai.io.BadCaseError` for an image no model should see; else pass it on.

    Checks, in order: the number of spatial dimensions, the number of channels (a 4D time series loaded where a
    3D image is expected shows up as several channels), emptiness, the size of each spatial dimension, the voxel
    sizes of the affine (positive and finite), non-finite values, and constant images. The error names
    ``filename_or_obj`` from the image's metadata.

    Note that inside ``Compose``/``Dataset`` MONAI re-raises transform errors as ``RuntimeError`` chained to the
    original; :func:`~medtl_monai.io.find_bad_case_error` recovers it.

    Args:
        expected_spatial_dims: required number of spatial dimensions (None: any).
        expected_channels: the accepted numbers of channels (None: any). When several are given, the first is the
            one the pipeline expects and the others are accepted with a logged note (e.g. ``(1, 3)`` for a
            radiograph saved as an RGB picture, which the X-ray preprocessing averages to grey).
        allow_singleton_dims: accept spatial dimensions of size 1 beyond ``expected_spatial_dims`` (a radiograph
            stored as a one-slice volume); they are not counted and not checked against ``min_spatial_size``.
        min_spatial_size: every (counted) spatial dimension must have at least this many voxels: 2 rejects a
            one-voxel image or a one-slice "volume" given to a 3D model.
        check_spacing: reject an affine whose voxel sizes (the norms of its columns) are zero or not finite.
        channel_first: whether the image has a leading channel axis (as after ``EnsureChannelFirst`` or
            ``LoadImage(ensure_channel_first=True)``); if False the whole shape is spatial.
        check_finite: reject NaN or infinite values.
        check_constant: reject images whose values are all equal.
    """

    def __init__(
        self,
        *,
        expected_spatial_dims: int | None = 3,
        expected_channels: int | Sequence[int] | None = 1,
        allow_singleton_dims: bool = False,
        min_spatial_size: int = 1,
        check_spacing: bool = True,
        channel_first: bool = True,
        check_finite: bool = True,
        check_constant: bool = True,
    ) -> None:
        self.expected_spatial_dims = expected_spatial_dims
        self.expected_channels = None if expected_channels is None else tuple(ensure_tuple(expected_channels))
        self.allow_singleton_dims = allow_singleton_dims
        self.min_spatial_size = int(min_spatial_size)
        self.check_spacing = check_spacing
        self.channel_first = channel_first
        self.check_finite = check_finite
        self.check_constant = check_constant

    def __call__(self, img: Any, filename: str | os.PathLike | None = None) -> Any:
        """Check ``img`` and return it unchanged.

        Args:
            img: an array or tensor (a ``MetaTensor`` provides the file name and the affine).
            filename: the name to report; defaults to ``img.meta["filename_or_obj"]``.

        Raises:
            BadCaseError: the image has the wrong dimensionality or channel count, is empty or too small, has zero
                or non-finite voxel sizes, holds NaN/inf values, or is constant.
        """
        filename = image_name(img, filename)
        data = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
        shape = tuple(data.shape)
        spatial = self._counted_spatial(shape[1:] if self.channel_first else shape)
        channels = shape[0] if self.channel_first and shape else 1
        if self.expected_spatial_dims is not None and len(spatial) != self.expected_spatial_dims:
            raise BadCaseError(
                filename,
                f"wrong dimensionality: {len(spatial)}D image (shape {shape}), expected "
                f"{self.expected_spatial_dims}D",
            )
        self._check_channels(channels, shape, len(spatial), filename)
        if data.numel() == 0:
            raise BadCaseError(filename, f"empty image (shape {shape})")
        if spatial and min(spatial) < self.min_spatial_size:
            raise BadCaseError(
                filename,
                f"too small: spatial shape {spatial}, at least {self.min_spatial_size} voxels along every axis "
                "expected (a one-voxel image, or a single slice where a volume is expected?)",
            )
        if self.check_spacing and isinstance(img, MetaTensor):
            self._check_voxel_sizes(img, filename)
        if self.check_finite and data.is_floating_point():
            finite = torch.isfinite(data)
            if not bool(finite.all()):
                n_nan = int(torch.isnan(data).sum())
                raise BadCaseError(
                    filename,
                    f"non-finite values: {n_nan} NaN and {int((~finite).sum()) - n_nan} infinite voxels "
                    f"of {data.numel()}",
                )
        if self.check_constant:
            low, high = torch.aminmax(data)
            if bool(low == high):
                raise BadCaseError(filename, f"constant image: every voxel equals {float(low):g}")
        return img

    def _counted_spatial(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """The spatial sizes that count: singleton dimensions beyond the expected number dropped when allowed."""
        if not self.allow_singleton_dims or self.expected_spatial_dims is None:
            return spatial
        sizes = list(spatial)
        while len(sizes) > self.expected_spatial_dims and 1 in sizes:
            del sizes[len(sizes) - 1 - sizes[::-1].index(1)]  # the last singleton first, as To2D squeezes
        return tuple(sizes)

    def _check_channels(self, channels: int, shape: tuple[int, ...], n_spatial: int, filename: str) -> None:
        if self.expected_channels is None:
            return
        if channels not in self.expected_channels:
            expected = " or ".join(str(c) for c in self.expected_channels)
            raise BadCaseError(
                filename,
                f"wrong dimensionality: {channels} channels or frames (shape {shape}), expected {expected}; a "
                f"{n_spatial + 1}D file (e.g. a time series) or a colour picture where a {n_spatial}D "
                f"{'grey-level' if self.expected_channels[0] == 1 else 'colour'} image is expected?",
            )
        if channels != self.expected_channels[0]:
            logger.info(
                "%s: %d channels, converted to %d by the preprocessing (e.g. an RGB picture to grey)",
                filename,
                channels,
                self.expected_channels[0],
            )

    def _check_voxel_sizes(self, img: MetaTensor, filename: str) -> None:
        affine = np.asarray(img.affine, dtype=np.float64)
        n = affine.shape[0] - 1
        sizes = np.linalg.norm(affine[:n, :n], axis=0)
        if not np.all(np.isfinite(sizes)) or not np.all(sizes > 0):
            raise BadCaseError(
                filename,
                f"invalid voxel sizes {np.round(sizes, 6).tolist()} mm (from the affine): every voxel size must be "
                "positive and finite (pixdim or PixelSpacing of 0?)",
            )


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


class CheckModality(Transform):
    """Say whether an image's DICOM ``Modality`` is one a model was trained on.

    The modality comes from the image's metadata (``Modality``, which this package's DICOM readers copy); an image
    without one (NIfTI, pictures, arrays) is not judged.

    Args:
        modalities: the accepted DICOM modality codes (e.g. ``["CT"]``, ``["CR", "DX"]``); empty: accept any.
        on_mismatch: ``"error"`` (raise, as training wants) or ``"flag"`` (return the problem, as batch inference
            wants: the case is predicted and its row flagged).

    Raises:
        ValueError: an unknown ``on_mismatch``.
    """

    def __init__(self, modalities: Sequence[str] = (), *, on_mismatch: str = "error") -> None:
        if on_mismatch not in _MISMATCH_MODES:
            raise ValueError(f"on_mismatch must be one of {_MISMATCH_MODES}, got {on_mismatch!r}")
        self.modalities = tuple(str(m).upper() for m in ensure_tuple(modalities))
        self.on_mismatch = on_mismatch

    def __call__(self, img: Any, filename: str | os.PathLike | None = None) -> str:
        """Check the modality of ``img``.

        Args:
            img: a ``MetaTensor`` (anything else has no modality to check).
            filename: the name to report; defaults to ``img.meta["filename_or_obj"]``.

        Returns:
            ``""`` when the modality is accepted or unknown, else (with ``on_mismatch="flag"``) the problem as
            ``"<file>: <problem>"``.

        Raises:
            BadCaseError: the modality is not accepted and ``on_mismatch="error"``.
        """
        meta = img.meta if isinstance(img, MetaTensor) else {}
        modality = str(meta.get("Modality", "") or "").strip().upper()
        if not self.modalities or not modality or modality in self.modalities:
            return ""
        error = BadCaseError(
            image_name(img, filename),
            f"modality {modality}, but the model was trained on {'/'.join(self.modalities)} images",
        )
        if self.on_mismatch == "error":
            raise error
        return str(error)


class CheckModalityd(MapTransform):
    """Dictionary version of :class:`CheckModality`.

    With ``on_mismatch="flag"`` every item gets ``flag_key`` (``""`` or the problems of its images), so that
    items collate into batches and :class:`~medtl_monai.evaluation.PredictionWriter` can mark flagged rows.

    Args:
        keys: keys of the images to check.
        modalities: the accepted DICOM modality codes; empty: accept any.
        on_mismatch: ``"error"`` or ``"flag"``.
        flag_key: where the problem goes with ``on_mismatch="flag"``.
        allow_missing_keys: do not raise when a key is absent.
    """

    def __init__(
        self,
        keys: KeysCollection,
        modalities: Sequence[str] = (),
        *,
        on_mismatch: str = "error",
        flag_key: str = MODALITY_FLAG_KEY,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.checker = CheckModality(modalities, on_mismatch=on_mismatch)
        self.flag_key = flag_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Check every image under ``keys``; return the data (with ``flag_key`` when flagging)."""
        d = dict(data)
        problems = [p for p in (self.checker(d[key]) for key in self.key_iterator(d)) if p]
        if self.checker.on_mismatch == "flag":
            d[self.flag_key] = "; ".join(problems)
            for problem in problems:
                logger.warning("flagged case: %s", problem)
        return d

