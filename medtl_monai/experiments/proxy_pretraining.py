"""Pretrain a full ResNet backbone on the synthetic proxy source and save it as a torchvision-format weights file.

Where the ImageNet files cannot be downloaded (an offline hospital machine, this project's CI), a study of transfer
strategies still needs a backbone that was *pretrained on another domain*. :func:`pretrain_proxy_backbone` trains
the whole network (MONAI ``SupervisedTrainer``) on :func:`~medtl_monai.synthetic.proxy_source.make_proxy_source`, checks
it on held-out proxy images, and writes the backbone with torchvision's key names, so that bundles take it through
the same ``weights=/path/to/file.pth`` code path as the real ImageNet file. A JSON sidecar (``<file>.json``)
records what the weights are, so that no one mistakes them for ImageNet weights.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer
from monai.utils import set_determinism

from ..networks import TransferClassifier, backbone_to_torchvision_keys, get_family
from ..synthetic.proxy_source import PROXY_CLASSES, make_proxy_source
from ..training import ProgressBarHandler, atomic_torch_save
from ..transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["pretrain_proxy_backbone"]

logger = logging.getLogger("medtl_monai.experiments")


def _normalised(images: np.ndarray) -> torch.Tensor:
    """``uint8`` RGB images to float tensors with ImageNet normalisation (what the X-ray bundle feeds a network)."""
    x = torch.as_tensor(images, dtype=torch.float32) / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _accuracy(network: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> float:
    network.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            pred = network(images[start:start + batch_size]).argmax(dim=1)
            correct += int((pred == labels[start:start + batch_size]).sum())
    return correct / max(len(images), 1)


def pretrain_proxy_backbone(
    weights_path: str | os.PathLike,
    *,
    arch: str = "resnet50",
    n_images: int = 6000,
    n_val: int = 500,
    size: int = 64,
    epochs: int = 3,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``arch`` (2D, 3 channels, full depth) on the proxy source and save its backbone in torchvision format
    (any family: ResNets, and DenseNets with torchvision's current key names).

    Args:
        weights_path: the weights file to write (e.g. ``resnet50-proxy.pth``); ``<weights_path>.json`` gets the summary.
        arch: a ResNet architecture name.
        n_images: training images (class-balanced).
        n_val: held-out images (another seed) for the reported accuracy.
        size: image side in pixels.
        epochs: training epochs.
        batch_size: batch size.
        learning_rate: Adam learning rate.
        seed: seed of the data and of the initialisation.
        progress: show a progress bar per epoch.

    Returns:
        The summary written to the sidecar: ``weights``, ``arch``, ``classes``, ``n_images``, ``size``, ``epochs``,
        ``val_accuracy``, ``chance_accuracy``, ``train_seconds``, ``note``.

    Raises:
        ValueError: an unknown ``arch`` or a non-positive size of the data or run.
    """
    spec = get_family(arch)
    if min(n_images, n_val, epochs, batch_size) < 1:
        raise ValueError("n_images, n_val, epochs and batch_size must be positive.")
    weights_path = Path(weights_path)
    set_determinism(seed=seed)
    images, labels = make_proxy_source(n_images, size=size, seed=seed)
    val_images, val_labels = make_proxy_source(n_val, size=size, seed=seed + 10_000)
    x, y = _normalised(images), torch.as_tensor(labels)
    data = [{"image": x[i], "label": y[i]} for i in range(len(y))]
    network = TransferClassifier(arch=arch, spatial_dims=2, in_channels=3, num_classes=len(PROXY_CLASSES))
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=epochs,
        train_data_loader=DataLoader(Dataset(data), batch_size=batch_size, shuffle=True, num_workers=0),
        network=network,
        optimizer=optimizer,
        loss_function=torch.nn.CrossEntropyLoss(),
        train_handlers=[ProgressBarHandler(enabled=progress)],
    )
    start = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - start
    accuracy = _accuracy(network, _normalised(val_images), torch.as_tensor(val_labels), batch_size)
    state = backbone_to_torchvision_keys(network.backbone.state_dict(), spec)
    atomic_torch_save(state, weights_path)
    summary = {
        "weights": str(weights_path),
        "arch": spec.name,
        "classes": list(PROXY_CLASSES),
        "n_images": n_images,
        "size": size,
        "epochs": epochs,
        "seed": seed,
        "val_accuracy": round(accuracy, 4),
        "chance_accuracy": round(1 / len(PROXY_CLASSES), 4),
        "train_seconds": round(seconds, 1),
        "note": "pretrained on the synthetic proxy source (medtl_monai.synthetic.proxy_source), NOT ImageNet",
    }
    weights_path.with_name(weights_path.name + ".json").write_text(json.dumps(summary, indent=1))
    logger.info("proxy-pretrained %s: held-out accuracy %.3f (chance %.3f) after %d epochs, %.0f s; wrote %s",
                spec.name, accuracy, 1 / len(PROXY_CLASSES), epochs, seconds, weights_path)
    return summary
