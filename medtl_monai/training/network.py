"""Where a network trains: the device, the memory format, a start from a previous run, and distributed training.

Bundle configs call these so that no device or process-group logic lives in ``$`` expressions::

    "device": "$medtl_monai.training.default_device()",
    "network": {"_target_": "medtl_monai.training.prepare_network", "network": "@network_def", "device": "@device",
                "init_from": "@init_from", "distributed": "@distributed", "strategy": "@strategy",
                "image_size": "@image_size"}
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
from torch import nn

from ..networks import init_from_run
from ..utils import as_bool
from .strategies import get_strategy

__all__ = ["close_distributed", "default_device", "init_distributed", "prepare_network"]

logger = logging.getLogger("medtl_monai.training")


def default_device() -> torch.device:
    """The GPU of this process when there is one (``cuda:$LOCAL_RANK``, set by ``torchrun``; ``cuda:0`` otherwise),
    else the CPU."""
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
    return torch.device("cpu")


def init_distributed(device: str | torch.device | None = None) -> bool:
    """Join the process group ``torchrun`` set up (NCCL on GPUs, Gloo on CPUs) and select this process's GPU.

    Args:
        device: this process's device (default :func:`default_device`).

    Returns:
        ``True`` (for use in a config's ``initialize`` list).
    """
    device = torch.device(device) if device is not None else default_device()
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return True


def close_distributed() -> bool:
    """Leave the process group, if any (a config's ``finalize``). Returns ``True``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return True


def prepare_network(
    network: nn.Module,
    device: str | torch.device = "cpu",
    channels_last: bool | str = False,
    init_from: str | os.PathLike | None = None,
    init_head: str = "match",
    distributed: bool | str = False,
    strategy: str = "truncated",
    image_size: int | Sequence[int] | None = None,
) -> nn.Module:
    """Check the input size, optionally start from a previous run, then move to ``device`` (channels-last memory
    format on request) and wrap for distributed training.

    Args:
        network: the model.
        device: target device.
        channels_last: use ``torch.channels_last`` (2D) / ``torch.channels_last_3d`` (3D) memory format.
        init_from: weights of a previous run to start from (:func:`~medtl_monai.networks.init_from_run`): the
            intermediate model of two-step transfer, or a trained model to finetune on new labels.
        init_head: ``"match"`` (keep the previous head when its classes fit) or ``"new"``.
        distributed: wrap in ``DistributedDataParallel`` (inside a ``torchrun`` process group). It is built while
            every parameter is trainable, with ``find_unused_parameters`` when the strategy's registry entry
            freezes, so that the strategy can freeze (and SWFT unfreeze) stages afterwards.
        strategy: the run's strategy (read when ``distributed``).
        image_size: the spatial size of the inputs (the bundle's ``image_size``): checked at once against the
            smallest input the network accepts (``network.check_input_size``, e.g.
            :meth:`~medtl_monai.networks.TransferClassifier.check_input_size`), so that a network too deep for its
            input stops the run before any data is loaded; ``None`` skips the check.

    Returns:
        The prepared model.

    Raises:
        ValueError: ``image_size`` is too small for the network (the message says what to change).
    """
    check = getattr(network, "check_input_size", None)
    if image_size is not None and check is not None:
        check(image_size)
    if init_from:
        init_from_run(network, init_from, head=init_head)
    device = torch.device(device)
    network = network.to(device)
    if as_bool(channels_last, "channels_last"):
        rank = max((p.dim() for p in network.parameters()), default=4)  # lifting slices / acs keep 2D kernels
        network = network.to(memory_format=torch.channels_last_3d if rank == 5 else torch.channels_last)
    if as_bool(distributed, "distributed"):
        network = nn.parallel.DistributedDataParallel(
            network, device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=get_strategy(strategy).freezes,
        )
    return network
