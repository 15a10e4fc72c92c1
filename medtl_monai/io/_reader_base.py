"""Base class of the package's MONAI image readers: deferred reading and MONAI-convention metadata."""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from monai.data.image_reader import ImageReader
from monai.utils import ImageMetaKey, MetaKeys, SpaceKeys, ensure_tuple

from ._dicom import lps_ras_flip
from .errors import BadCaseError

__all__ = ["DeferredImage", "DeferredReader", "as_paths"]


def as_paths(filename: Sequence[os.PathLike | str] | os.PathLike | str) -> list[Path]:
    """The path or paths a reader's ``verify_suffix`` is given, as a list of ``Path``."""
    return [Path(p) for p in ((filename,) if isinstance(filename, (str, os.PathLike)) else filename)]


@dataclass(frozen=True)
class DeferredImage:
    """A file or folder to be read by :meth:`DeferredReader.get_data`, with per-call reader options.

    Attributes:
        path: the file or folder.
        options: keyword overrides of the reader's constructor options for this read.
    """

    path: str
    options: dict[str, Any] = field(default_factory=dict)


class DeferredReader(ImageReader):
    """A MONAI ``ImageReader`` whose ``read`` only records the path and whose ``get_data`` does the work.

    ``LoadImage`` with user-specified readers calls ``read`` inside a ``try`` that swallows every exception and
    retries with MONAI's default readers, ending in a ``RuntimeError`` that hides the cause. Doing the work in
    ``get_data`` lets a :class:`~medtl_monai.io.BadCaseError` (which names the file and the problem)
    reach the caller unchanged.

    Args:
        channel_dim: the channel dimension of the returned array, as in MONAI's ``ITKReader``: None for automatic
            (``float("nan")`` for single-channel images, ``-1`` for colour), or an int, or ``"no_channel"``.
        affine_lps_to_ras: return the affine in RAS (MONAI's default, as ``ITKReader``); False keeps DICOM's LPS.
        dtype: numpy dtype of the returned array.
    """

    def __init__(
        self, *, channel_dim: str | int | None = None, affine_lps_to_ras: bool = True, dtype: Any = np.float32
    ) -> None:
        super().__init__()
        self.channel_dim = float("nan") if channel_dim == "no_channel" else channel_dim
        self.affine_lps_to_ras = affine_lps_to_ras
        self.dtype = dtype

    def read(self, data: Sequence[os.PathLike | str] | os.PathLike | str, **kwargs: Any) -> Any:
        """Record the path(s) to read; nothing is opened until :meth:`get_data`.

        Args:
            data: a path, or a sequence of paths to stack as channels.
            kwargs: overrides of the constructor options for these paths.

        Returns:
            a :class:`DeferredImage`, or a list of them for several paths.
        """
        items = [DeferredImage(os.fspath(p), dict(kwargs)) for p in ensure_tuple(data)]
        return items if len(items) > 1 else items[0]

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        """Read the image(s) recorded by :meth:`read` and return (array, metadata) in MONAI's conventions.

        Several images are stacked as channels (a new first axis), as MONAI's readers do; their affines and
        spatial shapes must agree.

        Args:
            img: a :class:`DeferredImage`, a path, or a sequence of them.

        Returns:
            the array (spatial axes in ITK order, i.e. column index first) and its metadata dictionary.

        Raises:
            BadCaseError: a file is missing, unreadable, or not a valid image of the kind this reader reads.
        """
        arrays, metas = [], []
        for item in ensure_tuple(img):
            item = item if isinstance(item, DeferredImage) else DeferredImage(os.fspath(item))
            array, meta = self._load(item.path, **item.options)
            arrays.append(array)
            metas.append(meta)
        if len(arrays) == 1:
            return arrays[0], metas[0]
        first = metas[0]
        for meta in metas[1:]:
            same_shape = np.array_equal(meta[MetaKeys.SPATIAL_SHAPE], first[MetaKeys.SPATIAL_SHAPE])
            if not same_shape or not np.allclose(meta[MetaKeys.AFFINE], first[MetaKeys.AFFINE], atol=1e-4):
                raise BadCaseError(
                    meta[ImageMetaKey.FILENAME_OR_OBJ],
                    f"cannot be stacked as a channel with {first[ImageMetaKey.FILENAME_OR_OBJ]}: "
                    "spatial shape or affine differ",
                )
        channel = first[MetaKeys.ORIGINAL_CHANNEL_DIM]
        if isinstance(channel, float) and np.isnan(channel):
            stacked = np.stack(arrays, axis=0)
        else:
            stacked = np.concatenate(arrays, axis=int(channel))
        meta = dict(first)
        meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = 0 if isinstance(channel, float) else channel
        return stacked, meta

    @abstractmethod
    def _load(self, path: str, **options: Any) -> tuple[np.ndarray, dict]:
        """Read one file or folder; return (array, metadata) completed with :meth:`_finish_meta`."""

    def _finish_meta(
        self, array: np.ndarray, meta: dict, affine_lps: np.ndarray, path: str, spatial_dims: int
    ) -> tuple[np.ndarray, dict]:
        """Add MONAI's standard keys (affine, original_affine, spatial_shape, space, original_channel_dim...)."""
        affine = lps_ras_flip(affine_lps) if self.affine_lps_to_ras else affine_lps.copy()
        meta[MetaKeys.ORIGINAL_AFFINE] = affine
        meta[MetaKeys.AFFINE] = affine.copy()
        meta[MetaKeys.SPACE] = SpaceKeys.RAS if self.affine_lps_to_ras else SpaceKeys.LPS
        meta[MetaKeys.SPATIAL_SHAPE] = np.asarray(array.shape[:spatial_dims])
        meta["spacing"] = np.linalg.norm(affine_lps[:spatial_dims, :spatial_dims], axis=0)
        if self.channel_dim is None:
            meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = float("nan") if array.ndim == spatial_dims else -1
        else:
            meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = self.channel_dim
        meta[ImageMetaKey.FILENAME_OR_OBJ] = path
        if self.dtype is not None:  # one copy at most, into the C-contiguous layout LoadImage would copy to anyway
            array = np.ascontiguousarray(array, dtype=self.dtype)
        return array, meta
