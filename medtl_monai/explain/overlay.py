"""Pictures of images and their CAMs (matplotlib, Agg, no pyplot state): 2D overlays, and for 3D the axial,
coronal and sagittal slices through the CAM peak.

Array conventions are the preprocessing's: an image is ``(C, *spatial)``; 2D images are ``(H, W)`` with row 0 at the
top (``xray_preprocessing`` and ``rgb_preprocessing`` put the rows first) and are shown as they are; 3D volumes are
``(AP, LR, SI)`` as ``ct_preprocessing`` gives them (``Orientationd("PLS")``: rows anterior -> posterior, columns
the patient's right -> left, slices upwards), and are shown in the radiological convention: patient's right on the
left of the screen, anterior / superior at the top (an axial slice is shown as it is stored).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = [
    "PLANES",
    "cam_figure",
    "display_image",
    "figure_png",
    "peak_index",
    "plane_slices",
    "save_figure",
    "slice_figure",
    "voxel_spacing",
]

#: 3D views: name -> the array axis held fixed (``(AP, LR, SI)`` order: AP coronal, LR sagittal, SI axial).
PLANES: dict[str, int] = {"axial": 2, "coronal": 0, "sagittal": 1}


def _numpy(data: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu()
        data = data.as_tensor() if hasattr(data, "as_tensor") else data
        return data.float().numpy()
    return np.asarray(data, dtype=np.float32)


def display_image(
    image: torch.Tensor | np.ndarray, channel: int = 0, percentiles: tuple[float, float] | None = (1.0, 99.0)
) -> np.ndarray:
    """One channel of a ``(C, *spatial)`` image as grey levels in ``[0, 1]``.

    A channel already in ``[0, 1]`` (a CT HU-window channel without normalisation) is shown as it is, so the window
    keeps its meaning; other data (ImageNet-normalised windows, X-rays or photographs) is stretched between two
    percentiles.

    Args:
        image: the preprocessed image.
        channel: channel to show (the CT bundle's channel 0 is the lung window).
        percentiles: intensities mapped to black and white for data outside ``[0, 1]``; ``None``: min and max.

    Returns:
        ``(*spatial)`` float array in ``[0, 1]``.
    """
    data = _numpy(image)
    data = data[min(channel, data.shape[0] - 1)]
    if data.size and data.min() >= 0.0 and data.max() <= 1.0:
        return data
    low, high = np.percentile(data, percentiles) if percentiles else (data.min(), data.max())
    if high <= low:
        return np.zeros_like(data)
    return np.clip((data - low) / (high - low), 0.0, 1.0)


def voxel_spacing(affine: torch.Tensor | np.ndarray | None, spatial_dims: int) -> tuple[float, ...]:
    """Voxel sizes from an affine (column norms); ones when there is none."""
    if affine is None:
        return (1.0,) * spatial_dims
    matrix = _numpy(affine).astype(np.float64)
    spacing = np.linalg.norm(matrix[:-1, :spatial_dims], axis=0)  # a 2D image may sit in 3D space (4x4 affine)
    return tuple(float(s) if s > 0 else 1.0 for s in spacing)


def peak_index(cam: torch.Tensor | np.ndarray) -> tuple[int, ...]:
    """Index of the maximum of a ``(*spatial)`` map."""
    data = _numpy(cam)
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(data)), data.shape))


def _screen(plane: np.ndarray, name: str) -> np.ndarray:
    """A slice of an ``(AP, LR, SI)`` volume in screen order (rows, columns).

    The axial slice ``(AP, LR)`` is already in screen order; the coronal ``(LR, SI)`` and sagittal ``(AP, SI)``
    slices are transposed and turned upside down so that superior is at the top (the sagittal slice then has
    anterior on the left)."""
    return plane if name == "axial" else plane.T[::-1, :]


def plane_slices(volume: np.ndarray, index: Sequence[int]) -> dict[str, np.ndarray]:
    """Axial, coronal and sagittal slices of an ``(AP, LR, SI)`` volume through ``index``, oriented for display.

    Returns:
        ``{"axial": ..., "coronal": ..., "sagittal": ...}``, each a 2D array in screen order (rows, columns).
    """
    return {name: _screen(np.take(volume, int(index[axis]), axis=axis), name) for name, axis in PLANES.items()}


def _aspects(spacing: Sequence[float]) -> dict[str, float]:
    """Pixel aspect (height / width on screen) of each plane from the ``(AP, LR, SI)`` voxel sizes."""
    s_ap, s_lr, s_si = spacing
    return {"axial": s_ap / s_lr, "coronal": s_si / s_lr, "sagittal": s_si / s_ap}


def _panels(image: np.ndarray, cam: np.ndarray | None, spacing: Sequence[float], index: Sequence[int] | None):
    """(title, image plane, cam plane or None, aspect) for each panel of a 2D or 3D picture."""
    if image.ndim == 2:  # (H, W): already in screen order
        return [("", image, cam, spacing[0] / spacing[1])]
    where = index if index is not None else peak_index(cam if cam is not None else image)
    images, aspects = plane_slices(image, where), _aspects(spacing)
    cams = plane_slices(cam, where) if cam is not None else {}
    return [(name, images[name], cams.get(name), aspects[name]) for name in PLANES]


def _draw(fig: Figure, rows: list[list[tuple]], alpha: float, cmap: str) -> None:
    grid = fig.subplots(len(rows), len(rows[0]), squeeze=False)
    for r, row in enumerate(rows):
        for c, (title, plane, cam_plane, aspect) in enumerate(row):
            ax = grid[r][c]
            ax.imshow(plane, cmap="gray", vmin=0.0, vmax=1.0, aspect=aspect, interpolation="bilinear")
            if cam_plane is not None:
                ax.imshow(cam_plane, cmap=cmap, vmin=0.0, vmax=1.0, alpha=np.clip(alpha * cam_plane + 0.1, 0.0, 1.0),
                          aspect=aspect, interpolation="bilinear")
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()


def cam_figure(
    image: torch.Tensor | np.ndarray,
    cam: torch.Tensor | np.ndarray,
    *,
    affine: torch.Tensor | np.ndarray | None = None,
    channel: int = 0,
    with_image: bool = True,
    alpha: float = 0.6,
    cmap: str = "jet",
    panel_inches: float = 2.6,
) -> Figure:
    """Picture of an image with its CAM: 2D, the image and the overlay side by side; 3D, the axial, coronal and
    sagittal slices through the CAM peak (a row of plain slices above a row of overlays when ``with_image``).

    Args:
        image: preprocessed image ``(C, *spatial)``.
        cam: map ``(*spatial)`` or ``(1, *spatial)`` in ``[0, 1]``.
        affine: the image's affine, for the voxel aspect ratio.
        channel: image channel to show.
        with_image: also show the image without overlay.
        alpha: opacity of the heat map where the CAM is 1 (it fades with the CAM value).
        cmap: matplotlib colour map of the CAM.
        panel_inches: size of one panel.

    Returns:
        A matplotlib ``Figure`` (not attached to pyplot).

    Raises:
        ValueError: image and CAM shapes differ.
    """
    grey, heat = display_image(image, channel), _numpy(cam)
    if heat.size != grey.size:
        raise ValueError(f"CAM shape {tuple(heat.shape)} does not match the image's {grey.shape}.")
    overlays = _panels(grey, heat.reshape(grey.shape), voxel_spacing(affine, grey.ndim), None)
    plain = [(title, plane, None, aspect) for title, plane, _, aspect in overlays]
    if grey.ndim == 2:
        rows = [[plain[0], overlays[0]]] if with_image else [overlays]
    else:
        rows = [plain, overlays] if with_image else [overlays]
    fig = Figure(figsize=(panel_inches * len(rows[0]), panel_inches * len(rows)), dpi=100, layout="constrained")
    _draw(fig, rows, alpha, cmap)
    return fig


def slice_figure(
    image: torch.Tensor | np.ndarray,
    *,
    index: Sequence[int] | None = None,
    affine: torch.Tensor | np.ndarray | None = None,
    channel: int = 0,
    plane: str = "axial",
    panel_inches: float = 2.6,
) -> Figure:
    """A representative picture of an image: the 2D image, or one slice of a 3D volume (through ``index``, e.g. the
    CAM peak; the centre when ``None``).

    Raises:
        ValueError: an unknown plane.
    """
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {sorted(PLANES)}, got {plane!r}")
    grey = display_image(image, channel)
    spacing = voxel_spacing(affine, grey.ndim)
    if grey.ndim == 3 and index is None:
        index = tuple(s // 2 for s in grey.shape)
    panels = _panels(grey, None, spacing, index)
    chosen = panels[0] if grey.ndim == 2 else next(p for p in panels if p[0] == plane)
    fig = Figure(figsize=(panel_inches, panel_inches), dpi=100, layout="constrained")
    _draw(fig, [[chosen]], 0.0, "gray")
    return fig


def figure_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes (Agg)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)
    return buffer.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike) -> bytes:
    """Write a figure as PNG and return the bytes written (for embedding)."""
    data = figure_png(fig)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)
    return data
