"""The training data loader that keeps up with the device it feeds.

On a GPU, 3D training is usually limited by the CPU-side random augmentation, not by the network: MONAI's
``ThreadDataLoader`` prepares the next batch in a background thread while the GPU computes the current one. On a CPU
the same thread competes with the training step for the same cores: measured on the 2-core machine of
docs/benchmarks.md (``bench_training``), the demo's 4 epochs took 74.9 s with it against 71.2 s with the plain
``DataLoader`` (the time waiting for data fell from 12% to 1% of an epoch, but the steps slowed by as much), so the
plain loader stays the CPU default.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.data import DataLoader, ThreadDataLoader

__all__ = ["loader_for_device"]


def loader_for_device(dataset: Any, device: str | torch.device, **kwargs: Any) -> DataLoader:
    """A ``ThreadDataLoader`` (one batch prefetched in a background thread) when ``device`` is a GPU, else MONAI's
    ``DataLoader``.

    Args:
        dataset: the data set.
        device: the device the batches go to (the bundle's ``device``).
        kwargs: ``DataLoader`` arguments (``batch_size``, ``shuffle``, ``num_workers``, ...).

    Returns:
        The loader.
    """
    if torch.device(device).type == "cuda":
        return ThreadDataLoader(dataset, buffer_size=1, **kwargs)
    return DataLoader(dataset, **kwargs)
