"""Hounsfield-unit windows mapped to image channels.

A CT window is usually quoted as width/level (W/L): the HU interval ``[L - W/2, L + W/2]`` is displayed from black
to white. :class:`HUWindows` maps each window to one output channel scaled to ``[0, 1]`` (values outside the window
are clipped), so three windows give the three channels that an ImageNet-initialised network expects, while each
channel stays physically interpretable.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Union

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, ScaleIntensityRange, Transform
from monai.utils import TransformBackends, convert_to_tensor

__all__ = ["HU_WINDOWS", "HUWindows", "HUWindowsd", "WindowSpec", "resolve_window"]

#: Named windows as ``(width, level)`` in HU; common radiology presets.
HU_WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (1500.0, -600.0),
    "mediastinum": (350.0, 50.0),
    "bone": (1800.0, 400.0),
    "soft_tissue": (400.0, 40.0),
    "brain": (80.0, 40.0),
}

#: A window: a name from :data:`HU_WINDOWS` or an explicit ``(lower, upper)`` HU interval.
WindowSpec = Union[str, Sequence[float]]


def resolve_window(window: WindowSpec) -> tuple[float, float]:
    """Turn a window name or a ``(lower, upper)`` pair into a ``(lower, upper)`` HU interval.

    Args:
        window: a key of :data:`HU_WINDOWS` (case-insensitive, e.g. ``"lung"`` = W1500/L-600 = ``(-1350, 150)``)
            or an explicit ``(lower, upper)`` pair in HU.

    Returns:
        the ``(lower, upper)`` interval in HU.

    Raises:
        ValueError: for an unknown name, a pair of the wrong length or ``lower >= upper``.
    """
    if isinstance(window, str):
        key = window.lower()
        if key not in HU_WINDOWS:
            raise ValueError(f"unknown HU window {window!r}; known: {sorted(HU_WINDOWS)} or a (lower, upper) pair")
        width, level = HU_WINDOWS[key]
        return level - width / 2.0, level + width / 2.0
    bounds = tuple(float(v) for v in window)
    if len(bounds) != 2 or bounds[0] >= bounds[1]:
        raise ValueError(f"a HU window must be (lower, upper) with lower < upper, got {window!r}")
    return bounds[0], bounds[1]


class HUWindows(Transform):
    """Map a single-channel HU image to one channel per window, each clipped and scaled to ``output_range``.

    Args:
        windows: window names (see :data:`HU_WINDOWS`) or ``(lower, upper)`` HU pairs; one output channel each.
        output_range: the values that the lower and upper bound of every window map to.

    Raises:
        ValueError: on an empty or malformed window list.

    Example::

        HUWindows(windows=("lung", "mediastinum", "bone"))(torch.full((1, 4, 4, 4), -600.0))[0]  # all 0.5
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, *, windows: Sequence[WindowSpec] = ("lung", "mediastinum", "bone"),
                 output_range: tuple[float, float] = (0.0, 1.0)) -> None:
        if isinstance(windows, str) or not isinstance(windows, Sequence) or len(windows) == 0:
            raise ValueError(f"windows must be a non-empty sequence of names or (lower, upper) pairs, got {windows!r}")
        if len(windows) == 2 and all(isinstance(w, (int, float)) for w in windows):
            windows = [windows]  # a single bare (lower, upper) pair
        self.bounds = [resolve_window(w) for w in windows]
        self.scalers = [
            ScaleIntensityRange(a_min=lo, a_max=hi, b_min=output_range[0], b_max=output_range[1], clip=True)
            for lo, hi in self.bounds
        ]

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        """Apply the windows to a channel-first image with one channel.

        Args:
            img: ``(1, spatial...)`` image in HU.

        Returns:
            ``(len(windows), spatial...)`` float tensor (a MetaTensor when the input carries metadata).

        Raises:
            ValueError: if the input has more than one channel.
        """
        img_t = convert_to_tensor(img, track_meta=get_track_meta(), dtype=torch.float32)
        if img_t.shape[0] != 1:
            raise ValueError(f"HUWindows expects a single-channel HU image, got shape {tuple(img_t.shape)}")
        return torch.cat([scale(img_t) for scale in self.scalers], dim=0)


class HUWindowsd(MapTransform):
    """Dictionary wrapper of :class:`HUWindows`.

    Args:
        keys: keys of the HU images to window.
        windows: window names or ``(lower, upper)`` HU pairs; one output channel each.
        output_range: the values that each window's bounds map to.
        allow_missing_keys: do not raise if a key is absent.
    """

    backend = HUWindows.backend

    def __init__(self, keys: KeysCollection, *, windows: Sequence[WindowSpec] = ("lung", "mediastinum", "bone"),
                 output_range: tuple[float, float] = (0.0, 1.0), allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.windower = HUWindows(windows=windows, output_range=output_range)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.windower(d[key])
        return d
