"""The per-layer CAM panel: one picture per case with the image and the CAM of every backbone stage side by side.

Step-wise fine-tuning papers show what each ResNet stage attends to, LayerCAM per layer (stem, layer1 .. layer4), to
see how transfer changes shallow and deep features (two-step transfer learning with step-wise fine-tuning, SWFT);
LayerCAM (Jiang et al., IEEE TIP 2021) is the method that stays meaningful on shallow stages. The panel shows every
stage the (possibly truncated) network has, each map scaled to ``[0, 1]`` on its own, over the same image: a 2D image
gives one row (image, then one overlay per stage); a 3D volume gives one row per plane (axial, coronal, sagittal),
all cut through the same voxel, the peak of the fused map.

:class:`LayerPanelWriter` is the Ignite handler of ``configs/explain.json``; it writes ``<case>_layers.png`` next to
:class:`~medtl_monai.explain.CAMWriter`'s ``<case>_cam.png``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from matplotlib.figure import Figure
from monai.data import MetaTensor, decollate_batch

from .cam import GradientCAM
from .overlay import _draw, _numpy, _panels, display_image, peak_index, save_figure, voxel_spacing
from .writer import case_filename, nifti_affine

__all__ = ["LayerPanelWriter", "layer_panel_figure", "stage_label"]

logger = logging.getLogger("medtl_monai.explain")


def stage_label(path: str) -> str:
    """A target layer's path as a panel title: the stage name (``backbone.layer3`` -> ``layer3``)."""
    return path.removeprefix("backbone.")


def layer_panel_figure(
    image: torch.Tensor | np.ndarray,
    layer_cams: Mapping[str, torch.Tensor | np.ndarray],
    *,
    affine: torch.Tensor | np.ndarray | None = None,
    index: Sequence[int] | None = None,
    channel: int = 0,
    alpha: float = 0.6,
    cmap: str = "jet",
    panel_inches: float = 2.2,
) -> Figure:
    """The image and each layer's CAM side by side (2D: one row; 3D: a row per plane through one voxel).

    Args:
        image: preprocessed image ``(C, *spatial)``.
        layer_cams: title (stage name) -> its map ``(*spatial)`` or ``(1, *spatial)`` in ``[0, 1]``, in column order.
        affine: the image's affine, for the voxel aspect ratio.
        index: 3D: the voxel the planes go through; ``None``: the peak of the layers' maximum.
        channel: image channel to show.
        alpha: opacity of the heat map where a CAM is 1.
        cmap: matplotlib colour map of the CAMs.
        panel_inches: size of one panel.

    Returns:
        A matplotlib ``Figure`` of ``1 + len(layer_cams)`` columns and 1 (2D) or 3 (3D) rows.

    Raises:
        ValueError: no layer, or a map whose size differs from the image's.
    """
    if not layer_cams:
        raise ValueError("no layer CAM to show.")
    grey = display_image(image, channel)
    maps = {}
    for name, cam in layer_cams.items():
        heat = _numpy(cam)
        if heat.size != grey.size:
            raise ValueError(f"CAM of {name!r} has shape {tuple(heat.shape)}, the image {grey.shape}.")
        maps[name] = heat.reshape(grey.shape)
    if grey.ndim == 3 and index is None:
        index = peak_index(np.max(np.stack(list(maps.values())), axis=0))
    spacing = voxel_spacing(affine, grey.ndim)
    image_column = _panels(grey, None, spacing, index)
    layer_columns = {name: _panels(grey, heat, spacing, index) for name, heat in maps.items()}
    rows = []
    for r, (plane, picture, _, aspect) in enumerate(image_column):
        row = [(f"image ({plane})" if plane else "image", picture, None, aspect)]
        row += [(name if r == 0 else "", *column[r][1:]) for name, column in layer_columns.items()]
        rows.append(row)
    fig = Figure(figsize=(panel_inches * len(rows[0]), panel_inches * len(rows)), dpi=100, layout="constrained")
    _draw(fig, rows, alpha, cmap)
    return fig


class LayerPanelWriter:
    """Ignite handler writing, for each evaluated case, ``<case>_layers.png``: the image and the CAM of each target
    layer side by side (see :func:`layer_panel_figure`).

    Args:
        cam: a :class:`GradientCAM` whose target layers are the stages to show (``LayerCAM`` for the SWFT-style
            panel), on the evaluator's network.
        output_dir: folder for the pictures (the CAM folder, e.g. ``<bundle>/eval/cam``).
        class_idx: the class to explain, ``None`` for each case's predicted class.
        image_key: key of the preprocessed image in the batch.
        id_key: key of the case id (missing ids fall back to ``case00000``...).
        channel: image channel shown.
        suffix: end of each file name after the case name.
    """

    def __init__(
        self,
        cam: GradientCAM,
        output_dir: str | os.PathLike,
        class_idx: int | None = None,
        image_key: str = "image",
        id_key: str = "id",
        channel: int = 0,
        suffix: str = "_layers.png",
    ) -> None:
        self.cam, self.output_dir = cam, Path(output_dir)
        self.class_idx = None if class_idx is None else int(class_idx)
        self.image_key, self.id_key, self.channel, self.suffix = image_key, id_key, int(channel), suffix
        self.written: list[Path] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._report)

    def _reset(self, engine: Engine) -> None:
        self.written = []

    def __call__(self, engine: Engine) -> None:
        batch = engine.state.batch
        items = list(decollate_batch(batch)) if isinstance(batch, dict) else list(batch or [])
        if not items:
            return
        images = [item[self.image_key] for item in items]
        device = next(self.cam.nn_module.parameters()).device
        x = torch.stack([im.as_tensor() if isinstance(im, MetaTensor) else torch.as_tensor(im) for im in images])
        result = self.cam.compute(x.to(device), self.class_idx)
        for i, (item, image) in enumerate(zip(items, images, strict=True)):
            case_id = str(item.get(self.id_key) or f"case{len(self.written):05d}")
            maps = {stage_label(path): cams[i, 0] for path, cams in result.layer_cams.items()}
            fig = layer_panel_figure(image, maps, affine=nifti_affine(image), channel=self.channel)
            path = self.output_dir / f"{case_filename(case_id)}{self.suffix}"
            save_figure(fig, path)
            self.written.append(path)

    def _report(self, engine: Engine) -> None:
        if self.written:
            logger.info("wrote per-layer CAM panels (%s) of %d cases to %s", ", ".join(
                stage_label(p) for p in self.cam.target_layers), len(self.written), self.output_dir)
