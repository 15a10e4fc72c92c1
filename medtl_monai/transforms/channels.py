"""Give an image the number of channels a network expects (grayscale <-> RGB)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, RepeatChannel, Transform
from monai.utils import TransformBackends

__all__ = ["AdaptChannels", "AdaptChannelsd"]


class AdaptChannels(Transform):
    """Repeat a grayscale channel or average colour channels so that the image has ``channels`` channels.

    A one-channel image is repeated (grayscale -> RGB for an ImageNet-initialised stem); an image that already has
    ``channels`` channels is returned unchanged; any other image is averaged over its channels when ``channels`` is 1
    (RGB-encoded JPEG/PNG radiographs -> grayscale).

    Args:
        channels: the number of channels wanted.

    Raises:
        ValueError: if ``channels`` is not positive.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, *, channels: int = 3) -> None:
        if channels < 1:
            raise ValueError(f"channels must be positive, got {channels}")
        self.channels = channels

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Return ``img`` with ``self.channels`` channels.

        Args:
            img: channel-first image.

        Returns:
            the channel-adapted image, of the same array type.

        Raises:
            ValueError: for a multi-channel image that cannot be adapted (e.g. 2 channels -> 3).
        """
        c = img.shape[0]
        if c == self.channels:
            return img
        if c == 1:
            return RepeatChannel(repeats=self.channels)(img)
        if self.channels == 1:
            if isinstance(img, torch.Tensor):
                return img.mean(0, keepdim=True)
            return img.mean(0, keepdims=True)
        raise ValueError(f"cannot adapt an image with {c} channels to {self.channels} channels")


class AdaptChannelsd(MapTransform):
    """Dictionary wrapper of :class:`AdaptChannels`.

    Args:
        keys: keys of the images to adapt.
        channels: the number of channels wanted.
        allow_missing_keys: do not raise if a key is absent.
    """

    backend = AdaptChannels.backend

    def __init__(self, keys: KeysCollection, *, channels: int = 3, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.adapter = AdaptChannels(channels=channels)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.adapter(d[key])
        return d
