"""Gradient-based class activation maps for 2D and 3D classifiers: LayerCAM and Grad-CAM, fused over layers.

- Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization",
  ICCV 2017): one weight per channel, the spatial mean of the class score's gradient; map = ReLU(sum_c w_c A_c).
- LayerCAM (Jiang et al., "LayerCAM: Exploring Hierarchical Class Activation Maps for Localization", IEEE TIP 2021):
  one weight per location, ReLU(gradient); map = ReLU(sum_c ReLU(g_c) * A_c). Reliable on shallow layers too, so
  maps of several stages can be fused into one finer map.

The conventions follow ``monai.visualize.class_activation_maps``: maps are upsampled to the input's spatial size
with MONAI's ``default_upsampler`` (bilinear / trilinear) and returned as ``(B, 1, *spatial)``. Unlike MONAI's
default post-processing (which maps max to 0 and min to 1), each map is scaled to ``[0, 1]`` with 1 at the most
important location. Activations and gradients are captured by :class:`ActivationRecorder`, so layers followed by
an in-place ReLU work, and the model is left as it was (mode, ``inplace`` flags, parameter gradients, hooks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from monai.visualize.visualizer import default_upsampler
from torch import nn

from ._hooks import ActivationRecorder, default_target_layers

__all__ = ["CAM_METHODS", "CAMResult", "GradCAM", "GradientCAM", "LayerCAM", "fuse_maps", "make_cam", "normalize_map"]

FUSIONS = ("max", "mean")


def normalize_map(cam: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Scale each map of a batch linearly to ``[0, 1]`` (min to 0, max to 1); a constant map becomes 0.

    A map counts as constant when its range is at most ``eps`` times its largest magnitude (at least 1): a map that
    is constant up to rounding (a 1x1 deep stage upsampled) becomes 0, not amplified float noise.

    Args:
        cam: ``(B, 1, *spatial)`` maps.
        eps: relative range below which a map counts as constant.

    Returns:
        Maps of the same shape.
    """
    flat = cam.reshape(cam.shape[0], -1)
    low = flat.min(1, keepdim=True).values
    high = flat.max(1, keepdim=True).values
    span = high - low
    tolerance = eps * torch.maximum(torch.maximum(high.abs(), low.abs()), torch.ones_like(high))
    scaled = torch.where(span > tolerance, (flat - low) / span.clamp_min(1e-12), torch.zeros_like(flat))
    return scaled.reshape(cam.shape)


def fuse_maps(maps: Sequence[torch.Tensor], fusion: str = "max") -> torch.Tensor:
    """Fuse maps of several layers (each already upsampled and in ``[0, 1]``) into one map in ``[0, 1]``.

    ``"max"`` keeps, at every location, the strongest evidence of any layer (LayerCAM's fusion); ``"mean"`` averages.

    Args:
        maps: ``(B, 1, *spatial)`` maps of equal shape.
        fusion: ``"max"`` or ``"mean"``.

    Returns:
        The fused, re-normalised map.

    Raises:
        ValueError: an unknown fusion or no map.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    if not maps:
        raise ValueError("no map to fuse.")
    if len(maps) == 1:
        return maps[0]
    stack = torch.stack(list(maps), 0)
    return normalize_map(stack.amax(0) if fusion == "max" else stack.mean(0))


@dataclass
class CAMResult:
    """What :meth:`GradientCAM.compute` returns.

    Attributes:
        cam: fused map ``(B, 1, *input spatial)`` in ``[0, 1]``.
        layer_cams: target layer path -> its own upsampled map in ``[0, 1]``.
        logits: the network's output ``(B, num_classes)``, detached.
        class_idx: the explained class of each case ``(B,)``.
    """

    cam: torch.Tensor
    layer_cams: dict[str, torch.Tensor] = field(default_factory=dict)
    logits: torch.Tensor | None = None
    class_idx: torch.Tensor | None = None


class GradientCAM:
    """Base class of gradient-weighted CAMs: subclasses define :meth:`weigh` (activations, gradients -> raw map).

    Args:
        nn_module: the classifier (``(B, C, *spatial)`` in, ``(B, num_classes)`` logits out).
        target_layers: one or more layer names: stage names as in ``cut=`` (``"layer3"``, ``"stem"``,
            ``"denseblock2"``), paths inside the backbone (``"layer3.2"``) or from the model
            (``"backbone.stem.norm"``). ``None``: the last stage of a ``TransferClassifier``.
        fusion: how maps of several layers are combined, ``"max"`` or ``"mean"`` (see :func:`fuse_maps`).
        upsampler: ``spatial_size -> callable`` resizing ``(B, 1, *feature)`` maps (MONAI's ``default_upsampler``).

    Raises:
        ValueError: an unknown layer or fusion.
    """

    def __init__(
        self,
        nn_module: nn.Module,
        target_layers: str | Sequence[str] | None = None,
        *,
        fusion: str = "max",
        upsampler: Callable[[Sequence[int]], Callable[[torch.Tensor], torch.Tensor]] = default_upsampler,
    ) -> None:
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.nn_module = nn_module
        layers = default_target_layers(nn_module) if target_layers is None else target_layers
        self.recorder = ActivationRecorder(nn_module, layers)
        self.fusion, self.upsampler = fusion, upsampler

    @property
    def target_layers(self) -> list[str]:
        """Full dotted paths of the target layers."""
        return list(self.recorder.names)

    @staticmethod
    def weigh(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        """Raw ``(B, 1, *feature)`` map from a layer's ``(B, C, *feature)`` activations and gradients."""
        raise NotImplementedError

    def compute(self, x: torch.Tensor, class_idx: int | Sequence[int] | torch.Tensor | None = None) -> CAMResult:
        """Run the network on ``x``, backpropagate the chosen class scores and build the maps.

        Gradients are taken with respect to the recorded layer outputs only: parameter ``.grad`` stays untouched,
        and frozen parameters or an input without ``requires_grad`` are fine. The model runs in eval mode; its
        previous mode is restored.

        Args:
            x: input batch ``(B, C, *spatial)`` as the preprocessing gives it (2D: ``(B, C, H, W)``; 3D:
                ``(B, C, AP, LR, SI)``, the slice axis last).
            class_idx: the class to explain: ``None`` (each case's predicted class), one index for all cases, or
                one index per case.

        Returns:
            A :class:`CAMResult`.

        Raises:
            ValueError: a class index out of range or of the wrong length.
            RuntimeError: a target layer the class score does not depend on.
        """
        model = self.nn_module
        was_training = model.training
        model.eval()
        inputs = x.detach().clone().requires_grad_(True)
        try:
            with torch.enable_grad(), self.recorder as rec:
                logits = model(inputs)
                classes = self._classes(logits, class_idx)
                score = logits.gather(1, classes[:, None]).sum()
                torch.autograd.grad(score, inputs)
                acts, grads = dict(rec.activations), dict(rec.gradients)
        finally:
            model.train(was_training)
        spatial = tuple(x.shape[2:])
        layer_cams: dict[str, torch.Tensor] = {}
        for path in self.recorder.names:
            if path not in grads:
                raise RuntimeError(f"the class score does not depend on target layer {path!r}; choose a backbone layer.")
            raw = self.weigh(acts[path].float(), grads[path].float())
            assemble = getattr(getattr(model, "backbone", None), "assemble_slice_maps", None)
            if assemble is not None and raw.dim() == len(spatial) + 1:  # 2.5D: (B*S, 1, h, w) slab maps
                raw = assemble(raw, spatial)  # -> (B, 1, *spatial) on the input's grid (so on its affine)
            layer_cams[path] = normalize_map(self.upsampler(spatial)(raw))
        cam = fuse_maps(list(layer_cams.values()), self.fusion)
        return CAMResult(cam=cam, layer_cams=layer_cams, logits=logits.detach(), class_idx=classes)

    def __call__(self, x: torch.Tensor, class_idx: int | Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """The fused map ``(B, 1, *spatial)`` in ``[0, 1]`` (see :meth:`compute`)."""
        return self.compute(x, class_idx).cam

    @staticmethod
    def _classes(logits: torch.Tensor, class_idx: int | Sequence[int] | torch.Tensor | None) -> torch.Tensor:
        batch, num_classes = logits.shape[0], logits.shape[1]
        if class_idx is None:
            return logits.detach().argmax(1)
        classes = torch.as_tensor(class_idx, dtype=torch.long, device=logits.device).reshape(-1)
        if classes.numel() == 1:
            classes = classes.expand(batch)
        if classes.numel() != batch:
            raise ValueError(f"class_idx has {classes.numel()} entries for a batch of {batch}.")
        if int(classes.min()) < 0 or int(classes.max()) >= num_classes:
            raise ValueError(f"class_idx {classes.tolist()} is out of range for {num_classes} classes.")
        return classes


class GradCAM(GradientCAM):
    """Grad-CAM (Selvaraju et al., ICCV 2017, https://arxiv.org/abs/1610.02391): channel weights are the spatially
    averaged gradients, map = ReLU(sum_c w_c A_c). Coarse but class-discriminative on the last stage.

    Same maps as ``monai.visualize.GradCAM`` up to its inverted normalisation, but safe with in-place ReLUs, and
    layers named like ``cut=`` stages. See :class:`GradientCAM` for the arguments.

    Example::

        cam = GradCAM(TransferClassifier("resnet50", 3, 3, 2, cut=10), target_layers="layer3")
        maps = cam(torch.rand(1, 3, 96, 96, 32))  # (1, 1, 96, 96, 32) in [0, 1]
    """

    @staticmethod
    def weigh(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        weights = gradients.flatten(2).mean(2).reshape(*gradients.shape[:2], *[1] * (gradients.dim() - 2))
        return F.relu((weights * activations).sum(1, keepdim=True))


class LayerCAM(GradientCAM):
    """LayerCAM (Jiang et al., IEEE TIP 2021, https://doi.org/10.1109/TIP.2021.3089943): every location weighs its
    activation by the positive part of its own gradient, map = ReLU(sum_c ReLU(g_c) * A_c). Works on shallow stages,
    so fusing e.g. ``["layer2", "layer3"]`` gives finer maps than Grad-CAM. See :class:`GradientCAM` for the
    arguments.

    Example::

        cam = LayerCAM(net, target_layers=["layer2", "layer3"], fusion="max")
        maps = cam(images, class_idx=1)  # evidence for class 1 in every case
    """

    @staticmethod
    def weigh(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        return F.relu((F.relu(gradients) * activations).sum(1, keepdim=True))


CAM_METHODS: dict[str, type[GradientCAM]] = {"layercam": LayerCAM, "gradcam": GradCAM}


def make_cam(
    method: str,
    nn_module: nn.Module,
    target_layers: str | Sequence[str] | None = None,
    fusion: str = "max",
) -> GradientCAM:
    """Build a CAM by name (for bundle configs).

    Args:
        method: ``"layercam"`` or ``"gradcam"`` (case-insensitive, ``-``/``_`` ignored).
        nn_module: the classifier.
        target_layers: layer names, ``None`` for the last stage.
        fusion: ``"max"`` or ``"mean"``.

    Returns:
        The CAM object.

    Raises:
        ValueError: an unknown method (or layer, or fusion).
    """
    key = str(method).lower().replace("-", "").replace("_", "")
    if key not in CAM_METHODS:
        raise ValueError(f"CAM method must be one of {sorted(CAM_METHODS)}, got {method!r}")
    return CAM_METHODS[key](nn_module, target_layers, fusion=fusion)
