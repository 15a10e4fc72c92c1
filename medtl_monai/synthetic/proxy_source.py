"""A synthetic multi-class source domain that stands in for ImageNet where ImageNet weights cannot be downloaded.

Transfer-learning studies need a *pretrained* backbone: without one, ``linear`` probes random features and
``truncated`` equals ``scratch``. On an offline machine the torchvision ImageNet files cannot be fetched, so
:func:`make_proxy_source` draws a generic, natural-image-like classification task (shapes and textures in random
colours on smooth random backgrounds, ten classes) on which a full backbone can be pretrained in minutes on a CPU
(``scripts/make_proxy_weights.py``). It teaches the low-level features ImageNet pretraining is credited with (edges,
blobs, gratings, corners; Yosinski et al., "How transferable are features in deep neural networks?", NeurIPS
2014) and nothing about the medical target, so it plays ImageNet's role in a study, with the caveat that it is far
smaller and simpler.

Classes (:data:`PROXY_CLASSES`): ``disk``, ``ring``, ``square``, ``triangle``, ``cross``, ``grating``,
``checkerboard``, ``spots``, ``curve``, ``noise`` (a textured patch). Every image is RGB ``uint8`` with one
object of random position, size, orientation and colour; the same seed gives the same images.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = ["PROXY_CLASSES", "make_proxy_source", "render_proxy_image"]

PROXY_CLASSES: tuple[str, ...] = (
    "disk", "ring", "square", "triangle", "cross", "grating", "checkerboard", "spots", "curve", "noise",
)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random colour field, shape ``(size, size, 3)`` in [0, 1]."""
    field = gaussian_filter(rng.normal(size=(size, size, 3)), sigma=(size / 6, size / 6, 0))
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
    base = rng.uniform(0.1, 0.9, size=3)
    return np.clip(base + 0.35 * (field - 0.5), 0, 1)


def _mask(rng: np.random.Generator, name: str, size: int) -> np.ndarray:
    """The object's soft mask (``float`` in [0, 1], shape ``(size, size)``) for class ``name``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    cy, cx = rng.uniform(0.3, 0.7, size=2)
    r = rng.uniform(0.15, 0.3)
    theta = rng.uniform(0, np.pi)
    u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    dist = np.hypot(xx - cx, yy - cy)
    if name == "disk":
        return (dist < r).astype(float)
    if name == "ring":
        return (np.abs(dist - r) < r * 0.25).astype(float)
    if name == "square":
        return ((np.abs(u) < r * 0.8) & (np.abs(v) < r * 0.8)).astype(float)
    if name == "triangle":
        h = r * 1.6
        return ((v > -h / 2) & (v < h / 2) & (np.abs(u) < (h / 2 - v) * 0.6)).astype(float)
    if name == "cross":
        arm = r * 0.25
        return (((np.abs(u) < arm) & (np.abs(v) < r)) | ((np.abs(v) < arm) & (np.abs(u) < r))).astype(float)
    if name == "grating":
        period = rng.uniform(0.06, 0.15)
        return (np.sin(2 * np.pi * u / period) > 0).astype(float) * (dist < r * 1.5)
    if name == "checkerboard":
        period = rng.uniform(0.08, 0.16)
        return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(float) * (dist < r * 1.5)
    if name == "spots":
        out = np.zeros((size, size))
        for _ in range(int(rng.integers(4, 9))):
            sy, sx = rng.uniform(0.1, 0.9, size=2)
            out = np.maximum(out, np.exp(-((yy - sy) ** 2 + (xx - sx) ** 2) / (2 * (r / 5) ** 2)))
        return out
    if name == "curve":
        freq, phase, amp = rng.uniform(1, 3), rng.uniform(0, 2 * np.pi), rng.uniform(0.05, 0.15)
        return (np.abs(v - amp * np.sin(2 * np.pi * freq * u + phase)) < 0.03).astype(float) * (np.abs(u) < 0.45)
    if name == "noise":
        texture = gaussian_filter(rng.normal(size=(size, size)), sigma=rng.uniform(0.6, 1.5))
        return (texture > 0).astype(float) * (dist < r * 1.5)
    raise ValueError(f"unknown proxy class {name!r}; choose one of {list(PROXY_CLASSES)}.")


def render_proxy_image(rng: np.random.Generator, label: int, size: int = 64) -> np.ndarray:
    """Draw one image of class ``PROXY_CLASSES[label]``.

    Args:
        rng: the random generator (advanced by the call).
        label: class index into :data:`PROXY_CLASSES`.
        size: image side in pixels.

    Returns:
        ``uint8`` array of shape ``(3, size, size)`` (channel first, as the networks take it).

    Raises:
        ValueError: ``label`` out of range or ``size`` below 16.
    """
    if not 0 <= int(label) < len(PROXY_CLASSES):
        raise ValueError(f"label={label!r} must be in 0..{len(PROXY_CLASSES) - 1}.")
    if size < 16:
        raise ValueError(f"size={size!r} must be at least 16 pixels.")
    image = _background(rng, size)
    mask = _mask(rng, PROXY_CLASSES[int(label)], size)[..., None]
    colour = rng.uniform(0, 1, size=3)
    while np.abs(colour - image.mean(axis=(0, 1))).max() < 0.3:  # keep the object visible against the background
        colour = rng.uniform(0, 1, size=3)
    image = image * (1 - mask) + colour * mask
    image = np.clip(image + rng.normal(scale=0.03, size=image.shape), 0, 1)
    return np.round(image * 255).astype(np.uint8).transpose(2, 0, 1)


def make_proxy_source(n_images: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw a class-balanced proxy source data set in memory.

    Args:
        n_images: number of images (classes cycle, so every class has ``n_images // 10`` or one more).
        size: image side in pixels.
        seed: random seed; the same seed gives identical arrays.

    Returns:
        ``(images, labels)``: ``uint8`` ``(n_images, 3, size, size)`` and ``int64`` ``(n_images,)``.

    Raises:
        ValueError: ``n_images`` below 1.
    """
    if n_images < 1:
        raise ValueError(f"n_images={n_images!r} must be positive.")
    rng = np.random.default_rng(seed)
    labels = np.arange(n_images, dtype=np.int64) % len(PROXY_CLASSES)
    rng.shuffle(labels)
    images = np.stack([render_proxy_image(rng, int(label), size) for label in labels])
    return images, labels
