"""Place a bundle's network on its device and optionally initialise it from another bundle's checkpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import torch

__all__ = ["prepare_network", "initialize_from_checkpoint"]

logger = logging.getLogger("medtl_monai.bundle")


def initialize_from_checkpoint(network: torch.nn.Module, path: str | os.PathLike, head_prefix: str = "head.") -> torch.nn.Module:
    """Load the backbone of a finished run into ``network`` — the second step of two-step transfer.

    Every backbone tensor of ``network`` must be found in the checkpoint with the same shape (a checkpoint cut
    deeper than ``network`` is fine: the extra stages are ignored). The head is copied only when its shape matches
    (same classes); otherwise it keeps its fresh initialisation and the log says it was replaced.

    Args:
        network: the model to fill (a ``TransferClassifier``).
        path: ``model.pt`` (a state dict) or ``checkpoint_last.pt`` (its ``"network"`` entry) of another run.
        head_prefix: key prefix of the head.

    Returns:
        ``network``.

    Raises:
        ValueError: unreadable file, or backbone tensors missing or of the wrong shape (listed).
    """
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"checkpoint {str(path)!r} could not be read: {err}") from err
    if isinstance(state, Mapping) and isinstance(state.get("network"), Mapping):
        state = state["network"]
    target = network.state_dict()
    backbone_keys = [k for k in target if not k.startswith(head_prefix)]
    missing = [k for k in backbone_keys if k not in state]
    wrong = [k for k in backbone_keys if k in state and state[k].shape != target[k].shape]
    if missing or wrong:
        raise ValueError(
            f"checkpoint {str(path)!r} does not fit this network: "
            f"{len(missing)} backbone keys missing ({', '.join(missing[:8])}), "
            f"{len(wrong)} of the wrong shape ({', '.join(wrong[:8])})."
        )
    new = {k: state[k] for k in backbone_keys}
    head = [k for k in target if k.startswith(head_prefix)]
    if all(k in state and state[k].shape == target[k].shape for k in head):
        new.update({k: state[k] for k in head})
        logger.info("initialised backbone and head from %s", path)
    else:
        new.update({k: target[k] for k in head})
        logger.info("initialised backbone from %s; head replaced (new classes)", path)
    network.load_state_dict(new, strict=True)
    return network


def prepare_network(
    network: torch.nn.Module,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    init_from: str | os.PathLike | None = None,
) -> torch.nn.Module:
    """Optionally initialise from a checkpoint, then move to ``device`` (and channels-last memory format).

    Args:
        network: the model.
        device: target device.
        channels_last: use ``torch.channels_last`` (2D) / ``torch.channels_last_3d`` (3D), faster with AMP on GPUs.
        init_from: checkpoint of another run to start from (see :func:`initialize_from_checkpoint`).

    Returns:
        The prepared model.
    """
    if init_from:
        initialize_from_checkpoint(network, init_from)
    network = network.to(device)
    if channels_last:
        dims = getattr(network, "spatial_dims", 2)
        network = network.to(memory_format=torch.channels_last_3d if dims == 3 else torch.channels_last)
    return network
