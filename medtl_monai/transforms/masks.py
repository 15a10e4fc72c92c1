"""Foreground selectors for CT crops: the body, or the air-filled lungs inside it.

They are callables for ``CropForegroundd(select_fn=...)``: given a channel-first HU image they return a boolean mask
of the same shape. They are classes (not lambdas) so that they pickle for multi-process data loaders and can be built
from a bundle config with ``_target_``.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.utils import convert_to_numpy
from scipy import ndimage

__all__ = ["BodyMask", "LungMask"]


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest connected component (face connectivity) of a boolean array."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _as_mask_like(mask: np.ndarray, img: NdarrayOrTensor) -> NdarrayOrTensor:
    """Broadcast a spatial mask over the channels of ``img`` and return it in ``img``'s array type."""
    full = np.broadcast_to(mask, tuple(img.shape)).copy()
    if isinstance(img, torch.Tensor):
        return torch.as_tensor(full, device=img.device)
    return full


class BodyMask:
    """Select the patient's body: voxels above ``threshold`` HU, opened, largest connected component.

    The morphological opening (``opening`` iterations of a 3D cross) breaks thin bridges between the patient and the
    table, mattress or cables, so that the largest component is the body alone; the mask is dilated back by as
    much afterwards. If the opening would remove everything (a volume of a few slices) it is skipped.

    Args:
        threshold: HU above which a voxel counts as tissue (-500 separates air and lung from soft tissue and fat).
        opening: iterations of binary opening before choosing the largest component; 0 disables it.
        largest_component: keep only the largest 3D connected component.
        channel: channel of the image that holds HU values.
    """

    def __init__(self, *, threshold: float = -500.0, opening: int = 1, largest_component: bool = True,
                 channel: int = 0) -> None:
        self.threshold = threshold
        self.opening = opening
        self.largest_component = largest_component
        self.channel = channel

    def body(self, img: NdarrayOrTensor) -> np.ndarray:
        """The spatial body mask (no channel dimension) of a channel-first HU image."""
        hu = convert_to_numpy(img[self.channel])
        mask = hu > self.threshold
        if self.opening > 0:
            opened = ndimage.binary_opening(mask, iterations=self.opening)
            mask = opened if opened.any() else mask
        if self.largest_component:
            mask = _largest_component(mask)
            if self.opening > 0:  # give back what the opening took from the body's surface
                mask = ndimage.binary_dilation(mask, iterations=self.opening) & (hu > self.threshold)
        return mask

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Return the body mask, broadcast to the image's shape."""
        return _as_mask_like(self.body(img), img)


class LungMask:
    """Select the air spaces inside the body (the lungs and airways) for a lung crop.

    Voxels below ``air_threshold`` are labelled in 3D. Components that touch the volume's border across the
    cranio-caudal axis ``axial_axis`` (the sides, front and back: the air around the patient, between table
    slabs...) are removed; lungs cut at the top or bottom of the scan touch only the faces along ``axial_axis`` and
    stay. Components smaller than ``min_fraction`` of the largest remaining one are dropped. What remains is the
    lungs, the airways and any bowel gas (a little extra margin for a bounding box). If nothing remains (a body that
    fills the field of view), the body mask is returned instead, so that a crop never removes the whole image.

    Args:
        air_threshold: HU below which a voxel is air or aerated lung (-400 keeps ground-glass opacities out of
            the mask but the crop's bounding box still contains them).
        min_fraction: drop air components smaller than this fraction of the largest inner component.
        axial_axis: spatial axis that runs head to feet (2 after ``ct_preprocessing``'s ``Orientationd("PLS")``);
            ``None`` removes only the largest border-touching component, whatever the orientation.
        channel: channel of the image that holds HU values.
    """

    def __init__(self, *, air_threshold: float = -400.0, min_fraction: float = 0.05, axial_axis: int | None = 2,
                 channel: int = 0) -> None:
        self.air_threshold = air_threshold
        self.min_fraction = min_fraction
        self.axial_axis = axial_axis
        self.channel = channel

    def lungs(self, img: NdarrayOrTensor) -> np.ndarray:
        """The spatial lung mask (no channel dimension) of a channel-first HU image."""
        hu = convert_to_numpy(img[self.channel])
        labels, n = ndimage.label(hu < self.air_threshold)
        if n == 0:
            return np.zeros(hu.shape, dtype=bool)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        border = np.zeros(hu.shape, dtype=bool)
        for axis in range(hu.ndim):
            if axis != self.axial_axis:
                border[(slice(None),) * axis + (0,)] = True
                border[(slice(None),) * axis + (-1,)] = True
        on_border = np.unique(labels[border & (labels > 0)])
        if self.axial_axis is None and on_border.size:
            on_border = on_border[[np.argmax(sizes[on_border])]]
        sizes[on_border] = 0
        if sizes.max() == 0:
            return BodyMask(channel=self.channel).body(img)
        keep = np.flatnonzero((sizes > 0) & (sizes >= self.min_fraction * sizes.max()))
        return np.isin(labels, keep)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Return the lung mask, broadcast to the image's shape."""
        return _as_mask_like(self.lungs(img), img)
