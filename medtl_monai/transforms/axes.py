"""In-plane axes in the order ImageNet weights were trained on: rows first.

torchvision's ImageNet networks were trained on ``(C, H, W)`` tensors: row 0 is the top of the picture and the
columns run left to right. MONAI's readers index images the other way round, ``(column, row)`` (``PILReader`` with
``reverse_indexing=True``, ITK, and :class:`~medtl_monai.io.DicomXrayReader` alike), so a radiograph or photograph fed
as read reaches every pretrained kernel transposed. :class:`RowsFirst` swaps the two axes back and keeps the affine
true to the new indexing, so that MONAI transforms that follow and a CAM saved with the image's affine stay in place.

For CT the preprocessing reorients with ``Orientationd(axcodes=CT_AXCODES)``: ``"PLS"`` puts an axial slice in the
order radiologists view it (rows from anterior to posterior, columns from the patient's right to left, the
radiological convention) and keeps the cranio-caudal axis last.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_tensor

__all__ = ["CT_AXCODES", "RowsFirst", "RowsFirstd"]

#: CT array axes after preprocessing: rows anterior -> posterior, columns patient right -> left, slices upwards.
CT_AXCODES = "PLS"


class RowsFirst(Transform):
    """Turn a 2D image indexed ``(C, column, row)``, as MONAI's readers give it, into ``(C, row, column)``.

    The two spatial axes are swapped (a transpose, no flip: row 0 stays the top of the image, column 0 its left
    edge) and, for a ``MetaTensor``, the columns of the affine that belong to them, so every pixel keeps its position
    in space.

    Raises:
        ValueError: an image that is not ``(C, spatial, spatial)``.
    """

    backend = [TransformBackends.TORCH]

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        """Swap the two spatial axes of a channel-first 2D image.

        Args:
            img: ``(C, W, H)`` image.

        Returns:
            the ``(C, H, W)`` image (a MetaTensor with the matching affine when the input carries metadata).

        Raises:
            ValueError: the image does not have exactly two spatial dimensions.
        """
        if img.ndim != 3:
            raise ValueError(f"RowsFirst expects a channel-first 2D image (C, W, H), got shape {tuple(img.shape)}")
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        out = img_t.transpose(1, 2).contiguous()
        if isinstance(out, MetaTensor):
            affine = out.affine.clone()
            affine[:, [0, 1]] = affine[:, [1, 0]]
            out.affine = affine
        return out


class RowsFirstd(MapTransform):
    """Dictionary wrapper of :class:`RowsFirst`.

    Args:
        keys: keys of the 2D images.
        allow_missing_keys: do not raise if a key is absent.
    """

    backend = RowsFirst.backend

    def __init__(self, keys: KeysCollection, *, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.swap = RowsFirst()

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.swap(d[key])
        return d
