"""Read saved weights and start a network from a previous run: the one place checkpoints are opened.

- :func:`read_checkpoint`: any file written by ``torch.save`` of plain containers and tensors (``weights_only``), or a
  safetensors file (:func:`read_safetensors`).
- :func:`read_state_dict`: the network's tensors in such a file, whether the file is a bare state dict
  (``model.pt``, a torchvision file) or a training checkpoint holding one (``{"network": ...}``, ``{"model": ...}``,
  ``{"state_dict": ...}``), with a ``DistributedDataParallel`` ``module.`` prefix removed.
- :func:`unwrap`: the model inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper.
- :func:`init_from_run`: fill a network's backbone (and, when it fits, its head) from another run's weights: the
  second step of two-step transfer, or a finetune of a trained model on new labels.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import sys
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["HEAD_POLICIES", "init_from_run", "read_checkpoint", "read_safetensors", "read_state_dict", "unwrap"]

logger = logging.getLogger("medtl_monai.networks")

#: What :func:`init_from_run` does with the head: ``match`` copies it when its shape fits (the same classes), else
#: starts a new one; ``new`` always starts a new one (the previous classes meant something else).
HEAD_POLICIES: tuple[str, ...] = ("match", "new")

_WRAPPERS = ("state_dict", "network", "model")

#: safetensors dtype names (https://github.com/huggingface/safetensors, "Format") and the torch dtypes they hold
_SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _is_safetensors(path: str | os.PathLike) -> bool:
    """Whether a file starts like a safetensors file: an 8-byte little-endian header size, then a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return 0 < struct.unpack("<Q", head[:8])[0] <= os.path.getsize(path) - 8


def _parse_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file without the ``safetensors`` package: ``<u64 header size><JSON header><data>``, each
    tensor named in the header with its dtype, shape and ``data_offsets`` (begin, end) into the data."""
    with open(path, "rb") as f:
        data = f.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    if not isinstance(header, dict):
        raise TypeError("the header is not a JSON object")
    base, out = 8 + size, {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(entry.get("dtype"))
        if dtype is None:
            raise ValueError(f"tensor {name!r} has the unsupported dtype {entry.get('dtype')!r}")
        begin, end = (int(v) for v in entry["data_offsets"])
        shape = [int(v) for v in entry["shape"]]
        count = 1
        for n in shape:
            count *= n
        if not 0 <= begin <= end <= len(data) - base or end - begin != count * dtype.itemsize:
            raise ValueError(f"tensor {name!r}: offsets {begin}..{end} do not fit its shape {shape} or the file")
        buffer = bytearray(data[base + begin : base + end])
        tensor = torch.frombuffer(buffer, dtype=dtype) if count else torch.empty(0, dtype=dtype)
        out[name] = tensor.reshape(shape)
    return out


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read the tensors of a safetensors file (the ``safetensors`` package when installed, else a reader of the
    documented format: safetensors is not a dependency of this package).

    Args:
        path: the file.

    Returns:
        Its tensors by name (on the CPU).

    Raises:
        ValueError: the file does not exist or is not a valid safetensors file; the message names it.
    """
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint {str(path)!r} does not exist.")
    try:
        from safetensors.torch import load_file
    except ImportError:
        load_file = None
    try:
        if load_file is not None:
            return dict(load_file(str(path), device="cpu"))
        if sys.byteorder != "little":
            raise ValueError("reading safetensors on a big-endian machine needs the safetensors package")
        return _parse_safetensors(path)
    except Exception as err:
        raise ValueError(f"checkpoint {str(path)!r} could not be read as a safetensors file: {err}") from err


def read_checkpoint(path: str | os.PathLike) -> Mapping[str, Any]:
    """Read a file saved with ``torch.save`` (tensors and plain containers only: ``weights_only=True``), or a
    safetensors file (recognised by its content, whatever its name).

    Args:
        path: the file.

    Returns:
        Its top-level mapping.

    Raises:
        ValueError: the file does not exist, cannot be read, or does not hold a mapping; the message names it.
    """
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint {str(path)!r} does not exist.")
    if _is_safetensors(path):
        return read_safetensors(path)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        hint = ""
        if "Unsupported global" in str(err):  # a pickled model object (TorchXRayVision's release files are)
            hint = ("; it holds a pickled model object, which is not read here (unpickling runs code): load it with "
                    "the library that made it and save model.state_dict() with torch.save")
        raise ValueError(f"checkpoint {str(path)!r} could not be read as a PyTorch state dict{hint}: {err}") from err
    if not isinstance(obj, Mapping):
        raise ValueError(f"checkpoint {str(path)!r} holds a {type(obj).__name__}, not a state dict.")
    return obj


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The network tensors saved in ``path`` (see the module notes for the layouts understood).

    Args:
        path: a state-dict file or a training checkpoint.

    Returns:
        A flat mapping of parameter names to tensors.

    Raises:
        ValueError: the file cannot be read or holds no state dict of tensors.
    """
    obj = read_checkpoint(path)
    for wrapper in _WRAPPERS:
        if isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"checkpoint {str(path)!r} does not hold a state dict of tensors.")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def unwrap(network: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper, or ``network`` itself."""
    inner = getattr(network, "module", None)
    return inner if isinstance(inner, nn.Module) else network


def init_from_run(network: nn.Module, path: str | os.PathLike, head: str = "match", head_prefix: str = "head.") -> nn.Module:
    """Load the backbone of a previous run's weights into ``network``, and its head according to ``head``.

    Every backbone tensor of ``network`` must be in the file with the same shape (a file cut deeper than
    ``network`` is fine: the extra stages are ignored). A new head keeps ``network``'s fresh initialisation.

    Args:
        network: the model to fill (a ``TransferClassifier``, possibly wrapped).
        path: ``model.pt`` or ``checkpoint_last.pt`` of the previous run.
        head: ``"match"`` or ``"new"`` (see :data:`HEAD_POLICIES`).
        head_prefix: key prefix of the head.

    Returns:
        ``network``.

    Raises:
        ValueError: an unknown head policy, an unreadable file, or backbone tensors missing or of the wrong shape
            (listed, with the file named).
    """
    if head not in HEAD_POLICIES:
        raise ValueError(f"head={head!r} is not a head policy; choose one of {list(HEAD_POLICIES)}.")
    state = read_state_dict(path)
    net = unwrap(network)
    target = net.state_dict()
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
    head_keys = [k for k in target if k.startswith(head_prefix)]
    keep_head = head == "match" and all(k in state and state[k].shape == target[k].shape for k in head_keys)
    new.update({k: state[k] if keep_head else target[k] for k in head_keys})
    net.load_state_dict(new, strict=True)
    logger.info("initialised the backbone%s from %s%s", " and head" if keep_head else "", path,
                "" if keep_head else " (new head)")
    return network
