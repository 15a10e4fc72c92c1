"""Find CAM target layers by stage name or dotted path, and record their outputs and output gradients.

The recorder uses a forward hook that stores a *clone* of the layer's output and registers a *tensor* hook on that
output. Unlike module backward hooks (``register_full_backward_hook``, which MONAI's ``ModelWithHooks`` uses), this
works when the next operation modifies the output in place (the in-place ReLU after a BatchNorm or a residual
block): the clone keeps the value the layer produced, and a tensor hook registered before an in-place change
receives the gradient with respect to that same, unmodified value. The model is not changed (no ``inplace`` flag is
flipped) and every hook is removed on exit.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn as nn

__all__ = ["ActivationRecorder", "default_target_layers", "resolve_layer"]


def resolve_layer(model: nn.Module, name: str) -> tuple[str, nn.Module]:
    """Find a target layer by stage name (``"layer3"``, ``"stem"``, ``"denseblock2"``), by a path inside the
    backbone (``"layer3.2"``) or by a dotted module path from the model (``"backbone.layer3.2"``, ``"head"``).

    Names are tried inside ``model.backbone`` first (so stage names mean the same as in ``cut=``), then from the
    model itself.

    Args:
        model: the network (a ``TransferClassifier`` or any ``nn.Module``).
        name: the layer's name.

    Returns:
        ``(full dotted path, module)``.

    Raises:
        ValueError: no module has that name (the message lists the stages).
    """
    modules = dict(model.named_modules())
    candidates = [name]
    if isinstance(getattr(model, "backbone", None), nn.Module) and not name.startswith("backbone."):
        candidates.insert(0, f"backbone.{name}")
    for candidate in candidates:
        if candidate and candidate in modules:
            return candidate, modules[candidate]
    stages = list(getattr(model, "stage_names", ())) or [n for n, _ in model.named_children()]
    raise ValueError(f"target layer {name!r} is not in this model; its stages are {stages} "
                     "(dotted paths such as 'layer3.1' or 'backbone.stem.norm' also work).")


def default_target_layers(model: nn.Module, count: int = 1) -> list[str]:
    """The last ``count`` backbone stages (the last is the feature map the head pools), for models that name their
    stages.

    Raises:
        ValueError: the model has no ``stage_names``; pass target layers explicitly.
    """
    stages = tuple(getattr(model, "stage_names", ()))
    if not stages:
        raise ValueError("this model does not name its stages; pass target_layers (dotted module paths).")
    return list(stages[-max(int(count), 1):])


class ActivationRecorder:
    """Context manager that records, for each target layer, its output and the gradient of that output.

    Args:
        model: the network.
        target_layers: layer names (see :func:`resolve_layer`).

    Attributes:
        names: the full dotted paths, in the order given.
        activations: path -> detached clone of the last output (filled during forward).
        gradients: path -> gradient of a backpropagated score with respect to that output (filled during backward;
            missing for a layer whose output does not require grad).

    Raises:
        ValueError: a layer name that does not exist.
    """

    def __init__(self, model: nn.Module, target_layers: str | Sequence[str]) -> None:
        layers = [target_layers] if isinstance(target_layers, str) else list(target_layers)
        if not layers:
            raise ValueError("give at least one target layer.")
        resolved = [resolve_layer(model, name) for name in layers]
        self.names = [path for path, _ in resolved]
        self._modules = [module for _, module in resolved]
        self.activations: dict[str, torch.Tensor] = {}
        self.gradients: dict[str, torch.Tensor] = {}
        self._handles: list = []

    def __enter__(self) -> ActivationRecorder:
        self.activations.clear()
        self.gradients.clear()
        for path, module in zip(self.names, self._modules):
            self._handles.append(module.register_forward_hook(partial(self._forward_hook, path)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _forward_hook(self, path: str, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"target layer {path!r} returns {type(output).__name__}, not a tensor; choose another layer.")
        self.activations[path] = output.detach().clone()
        if output.requires_grad:
            output.register_hook(partial(self._store_gradient, path))

    def _store_gradient(self, path: str, grad: torch.Tensor) -> None:
        self.gradients[path] = grad.detach()
