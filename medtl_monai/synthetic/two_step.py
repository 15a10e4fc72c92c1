"""Synthetic RGB data for two-step heterogeneous transfer learning (THTL) demos: an intermediate vascular domain and
a target vascular domain whose malignant class looks different.

Modelled on the THTL setting ("Analysis of the Two-Step Heterogeneous Transfer Learning for Laryngeal Blood Vessel
Classification: Issue and Improvement", arXiv:2402.19001): fundus photographs as the intermediate domain and
laryngeal endoscopy as the target, where the intermediate domain's *radial* vessels do not teach the *twisted,
tangled* vessels of the malignant target class.

- Intermediate ("fundus"): a red-orange disc on black with a bright optic disc; smooth vessels radiate from the
  optic disc and branch. Classes ``healthy`` / ``retinopathy``: retinopathy adds bright yellow exudates and small
  dark haemorrhages.
- Target ("endoscopy"): pink mucosa with soft texture and specular highlights, crossed by vessels. Classes
  ``benign`` (long, gently curved vessels) / ``malignant`` (a patch of short, twisted, tangled vessels and loops
  among ordinary ones).

:func:`make_two_step_demo` writes PNG files and one datalist per domain (``intermediate/datalist.json``,
``target/datalist.json``, paths relative to the datalist, splits training/validation/test, classes balanced).
Everything is drawn with NumPy and SciPy from one seed: the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = ["INTERMEDIATE_CLASSES", "TARGET_CLASSES", "make_two_step_demo", "render_endoscopy", "render_fundus"]

INTERMEDIATE_CLASSES: tuple[str, str] = ("healthy", "retinopathy")
TARGET_CLASSES: tuple[str, str] = ("benign", "malignant")


def _stamp(canvas: np.ndarray, points: np.ndarray, weight: float = 1.0) -> None:
    """Add ``weight`` at the (row, col) pixels of ``points`` that fall inside ``canvas``."""
    idx = np.round(points).astype(int)
    keep = (idx[:, 0] >= 0) & (idx[:, 0] < canvas.shape[0]) & (idx[:, 1] >= 0) & (idx[:, 1] < canvas.shape[1])
    np.add.at(canvas, (idx[keep, 0], idx[keep, 1]), weight)


def _path(rng: np.random.Generator, start: np.ndarray, angle: float, length: float, *, bend: float, step: float = 0.5,
          wiggle: float = 0.0, wiggle_period: float = 6.0) -> np.ndarray:
    """Points along a vessel: a random-curvature walk (``bend`` radians per pixel, std) plus an optional sinusoidal
    twist of amplitude ``wiggle`` radians and period ``wiggle_period`` pixels."""
    n = max(2, int(length / step))
    turns = np.cumsum(rng.normal(0.0, bend * np.sqrt(step), n))
    phase = rng.uniform(0, 2 * np.pi)
    s = np.arange(n) * step
    heading = angle + turns + wiggle * np.sin(2 * np.pi * s / wiggle_period + phase)
    moves = np.stack([np.sin(heading), np.cos(heading)], axis=1) * step
    return start + np.cumsum(moves, axis=0)


def _vessel_layer(shape: tuple[int, int], paths: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """A [0, 1] vessel opacity map from paths with widths (Gaussian-blurred centre lines, grouped by width)."""
    out = np.zeros(shape, np.float64)
    for width in sorted({w for _, w in paths}):
        line = np.zeros(shape, np.float64)
        for pts, w in paths:
            if w == width:
                _stamp(line, pts)
        blurred = gaussian_filter(np.minimum(line, 1.0), sigma=width)
        out = np.maximum(out, blurred / max(blurred.max(), 1e-9) if blurred.max() > 0 else blurred)
    return np.clip(out * 1.6, 0, 1)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def render_fundus(rng: np.random.Generator, size: int = 64, lesions: bool = False) -> np.ndarray:
    """One fundus-like image: ``(size, size, 3)`` uint8.

    Args:
        rng: the random generator.
        size: image side in pixels.
        lesions: draw exudates and haemorrhages (class ``retinopathy``).
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    c = (size - 1) / 2
    r = np.hypot(yy - c, xx - c) / (size / 2)
    field = np.clip((0.97 - r) * 25, 0, 1)
    shade = 1.0 - 0.35 * r**2
    rgb = np.stack([0.80 * shade, 0.33 * shade, 0.12 * shade], -1) * rng.uniform(0.85, 1.1)
    disc = np.array([c + rng.normal(0, size * 0.04), c + rng.choice([-1, 1]) * size * rng.uniform(0.18, 0.26)])
    d = np.hypot(yy - disc[0], xx - disc[1])
    disc_mask = np.clip((size * 0.075 - d) / 1.5, 0, 1)
    rgb += disc_mask[..., None] * np.array([0.25, 0.45, 0.35])
    paths = []
    for angle in np.linspace(0, 2 * np.pi, rng.integers(7, 11), endpoint=False) + rng.uniform(0, 1):
        main = _path(rng, disc, angle, size * rng.uniform(0.5, 0.8), bend=0.04)
        paths.append((main, 0.9))
        if rng.random() < 0.7:
            k = rng.integers(len(main) // 4, len(main) // 2)
            branch_angle = angle + rng.choice([-1, 1]) * rng.uniform(0.4, 0.8)
            paths.append((_path(rng, main[k], branch_angle, size * 0.3, bend=0.05), 0.6))
    vessels = _vessel_layer((size, size), paths)
    rgb = rgb * (1 - 0.55 * vessels[..., None]) + vessels[..., None] * np.array([0.35, 0.02, 0.02]) * 0.5
    if lesions:
        for _ in range(rng.integers(4, 9)):
            p = np.array([c, c]) + rng.normal(0, size * 0.2, 2)
            blob = np.exp(-((yy - p[0]) ** 2 + (xx - p[1]) ** 2) / (2 * rng.uniform(0.7, 1.4) ** 2))
            rgb += blob[..., None] * np.array([0.45, 0.42, 0.05])
        for _ in range(rng.integers(2, 6)):
            p = np.array([c, c]) + rng.normal(0, size * 0.2, 2)
            blob = np.exp(-((yy - p[0]) ** 2 + (xx - p[1]) ** 2) / (2 * 0.9**2))
            rgb *= 1 - 0.6 * blob[..., None]
    rgb += rng.normal(0, 0.015, rgb.shape)
    return _to_uint8(rgb * field[..., None])


def render_endoscopy(rng: np.random.Generator, size: int = 64, malignant: bool = False) -> np.ndarray:
    """One endoscopy-like image of mucosa with vessels: ``(size, size, 3)`` uint8.

    Args:
        rng: the random generator.
        size: image side in pixels.
        malignant: add a patch of twisted, tangled vessels (class ``malignant``).
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    texture = gaussian_filter(rng.normal(0, 1, (size, size)), sigma=size / 10)
    texture /= max(np.abs(texture).max(), 1e-9)
    rgb = np.stack([0.86 + 0.05 * texture, 0.55 + 0.06 * texture, 0.55 + 0.05 * texture], -1)
    paths = []
    for _ in range(rng.integers(3, 6)):
        start = rng.uniform(0, size, 2)
        paths.append((_path(rng, start, rng.uniform(0, 2 * np.pi), size * rng.uniform(0.6, 1.0), bend=0.03), 0.8))
    if malignant:
        centre = rng.uniform(size * 0.3, size * 0.7, 2)
        for _ in range(rng.integers(6, 10)):
            start = centre + rng.normal(0, size * 0.08, 2)
            paths.append((_path(rng, start, rng.uniform(0, 2 * np.pi), size * rng.uniform(0.25, 0.45), bend=0.35,
                                wiggle=rng.uniform(1.0, 1.6), wiggle_period=rng.uniform(3.0, 5.0)), 0.6))
    vessels = _vessel_layer((size, size), paths)
    rgb = rgb * (1 - 0.5 * vessels[..., None]) + vessels[..., None] * np.array([0.30, 0.05, 0.15]) * 0.5
    for _ in range(rng.integers(1, 4)):
        p = rng.uniform(0, size, 2)
        glint = np.exp(-((yy - p[0]) ** 2 + (xx - p[1]) ** 2) / (2 * rng.uniform(0.6, 1.5) ** 2))
        rgb += glint[..., None] * 0.6
    rgb += rng.normal(0, 0.015, rgb.shape)
    return _to_uint8(rgb)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, mode="RGB").save(path, format="PNG", optimize=False)


def _split(n: int, fractions: tuple[float, float, float]) -> list[str]:
    """Split names for ``n`` cases of one class, in order (training first)."""
    n_val = max(1, int(round(n * fractions[1])))
    n_test = max(1, int(round(n * fractions[2])))
    return ["training"] * (n - n_val - n_test) + ["validation"] * n_val + ["test"] * n_test


def _make_domain(out: Path, name: str, classes: tuple[str, str], n_cases: int, size: int, rng: np.random.Generator,
                 fractions: tuple[float, float, float]) -> Path:
    renderer = render_fundus if name == "intermediate" else render_endoscopy
    splits: dict[str, list[dict]] = {"training": [], "validation": [], "test": []}
    for label, cls in enumerate(classes):
        count = n_cases // 2 + (n_cases % 2 if label == 0 else 0)
        for i, split in enumerate(_split(count, fractions)):
            case = f"{name[:3]}-{cls}-{i:04d}"
            rgb = renderer(rng, size, bool(label))
            _write_png(out / name / "images" / f"{case}.png", rgb)
            splits[split].append({"id": case, "image": f"images/{case}.png", "label": label})
    doc = {"name": f"two_step_demo_{name}", "description": f"medtl_monai two-step demo data: {name} domain (synthetic)",
           "modality": {"0": "RGB"}, "labels": {str(i): c for i, c in enumerate(classes)}, "class_names": list(classes),
           "num_classes": len(classes), **{f"num_{k}": len(v) for k, v in splits.items()}, **splits}
    path = out / name / "datalist.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def make_two_step_demo(
    output_dir: str | os.PathLike,
    *,
    n_intermediate: int = 200,
    n_target: int = 120,
    size: int = 64,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
) -> dict[str, Path]:
    """Write the intermediate and target demo domains.

    Args:
        output_dir: output folder; gets ``intermediate/`` and ``target/``, each with ``images/*.png`` and
            ``datalist.json``.
        n_intermediate: fundus-like images (half of each class).
        n_target: endoscopy-like images (half of each class).
        size: image side in pixels.
        seed: random seed.
        fractions: training / validation / test fractions per class (at least one validation and one test case).

    Returns:
        ``{"intermediate": datalist path, "target": datalist path}``.

    Raises:
        ValueError: fewer than 6 cases in a domain, or ``size`` below 32.
    """
    if min(n_intermediate, n_target) < 6:
        raise ValueError("each domain needs at least 6 cases (3 per class: training, validation, test).")
    if size < 32:
        raise ValueError(f"size={size} is too small to draw vessels; use 32 or more.")
    root = Path(output_dir)
    rng = np.random.default_rng(seed)
    return {
        "intermediate": _make_domain(root, "intermediate", INTERMEDIATE_CLASSES, n_intermediate, size, rng, fractions),
        "target": _make_domain(root, "target", TARGET_CLASSES, n_target, size, rng, fractions),
    }
