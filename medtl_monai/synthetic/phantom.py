"""Semi-synthetic chest phantoms: CT volumes in HU and X-ray projections with a learnable lesion signal.

A phantom is drawn from a patient's :class:`Anatomy` (body size, fat, lungs, heart, diaphragm domes, spine, ribs,
sternum, trachea, aorta) and a session's :class:`Findings` (pose on the table, vessels, nodules, dependent
atelectasis and, for the positive class, ground-glass opacities near -500 HU; pleural effusions when asked for, as
the multi-label demo does). Everything is defined in millimetres in a body frame, so the same case can be rendered on
any grid: :func:`render_ct` on a CT grid, :func:`render_xray` integrates attenuation along the antero-posterior axis
on a coarser grid.

Coordinates follow DICOM's patient frame (LPS): ``x`` towards the patient's left, ``y`` posterior, ``z`` superior.
Volumes are numpy arrays indexed ``[z, y, x]`` (slice, row, column), like a stack of DICOM slices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

__all__ = [
    "MU_WATER_PER_MM",
    "Anatomy",
    "CTGeometry",
    "Findings",
    "render_ct",
    "render_xray",
    "sample_anatomy",
    "sample_findings",
]

#: Linear attenuation of water per mm at an effective energy of about 70 keV.
MU_WATER_PER_MM = 0.0195

_AIR, _FAT, _SOFT, _BLOOD, _LIVER, _BONE, _CORTEX = -1000.0, -100.0, 40.0, 45.0, 60.0, 350.0, 700.0
_FLUID = 10.0  # pleural effusion (transudate)


@dataclass(frozen=True)
class Anatomy:
    """Patient-level anatomy in mm (stable across a patient's sessions).

    Attributes:
        body: half-width (left-right) and half-depth (antero-posterior) of the chest.
        fat: subcutaneous fat thickness.
        lung_offset: lateral distance of each lung's centre from the midline.
        lung_radii: left-right and antero-posterior semi-axes of a lung.
        lung_top: height of the apices above the body origin (the carina is near 0).
        lung_base: height of the lowest (posterior) lung bases.
        dome_rise: height of the right and left diaphragm domes above ``lung_base``.
        heart: centre ``(u, v, w)`` and semi-axes of the heart.
        spine_radius: radius of the vertebral bodies.
        rib_period: cranio-caudal distance between ribs.
        lung_hu: mean HU of aerated lung.
        lung_gradient: HU added from anterior to posterior lung (gravity-dependent density).
    """

    body: tuple[float, float]
    fat: float
    lung_offset: float
    lung_radii: tuple[float, float]
    lung_top: float
    lung_base: float
    dome_rise: tuple[float, float]
    heart: tuple[tuple[float, float, float], tuple[float, float, float]]
    spine_radius: float
    rib_period: float
    lung_hu: float
    lung_gradient: float


@dataclass(frozen=True)
class Findings:
    """Session-level pose and findings in the body frame (mm).

    Attributes:
        shift: position of the body origin in the scanner's ``(x, y)`` plane.
        rotation: rotation of the body about the cranio-caudal axis, radians.
        vessels: ``(u, v, w, radius)`` of pulmonary vessel cross-sections.
        nodules: ``(u, v, w, radius)`` of small solid nodules.
        atelectasis: ``(u, v, w)`` centres of dependent atelectasis bands (confounders, both classes).
        opacities: ``(u, v, w, sigma, amplitude)`` of ground-glass opacities (positive class).
        noise: standard deviation of CT noise in HU.
        effusions: ``(side, height)`` of pleural effusions: fluid (10 HU) filling the lung of ``side`` (-1 the
            patient's right, +1 the left) from its lowest point up to ``height`` mm, rising 15 mm towards the chest
            wall (a meniscus); on a radiograph a blunted costophrenic angle and a fluid level.
    """

    shift: tuple[float, float]
    rotation: float
    vessels: list[tuple[float, float, float, float]] = field(default_factory=list)
    nodules: list[tuple[float, float, float, float]] = field(default_factory=list)
    atelectasis: list[tuple[float, float, float]] = field(default_factory=list)
    opacities: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    noise: float = 15.0
    effusions: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class CTGeometry:
    """A scan grid: voxel centres along each patient axis (mm), ``x`` and ``y`` ascending, ``z`` ascending.

    Attributes:
        x: column centres (towards the patient's left).
        y: row centres (posterior).
        z: slice centres (superior), relative to the body origin.
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(nz, ny, nx)``."""
        return len(self.z), len(self.y), len(self.x)

    @classmethod
    def centred(cls, shape: tuple[int, int, int], spacing: tuple[float, float, float], z0: float) -> CTGeometry:
        """A grid of ``shape = (nz, ny, nx)`` voxels of ``spacing = (dz, dy, dx)`` mm, centred in x and y.

        Args:
            shape: number of slices, rows and columns.
            spacing: slice, row and column spacing in mm.
            z0: height of the first (lowest) slice relative to the body origin.

        Returns:
            the grid.
        """
        (nz, ny, nx), (dz, dy, dx) = shape, spacing
        return cls(x=(np.arange(nx) - (nx - 1) / 2) * dx, y=(np.arange(ny) - (ny - 1) / 2) * dy,
                   z=z0 + np.arange(nz) * dz)


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw a patient's anatomy.

    Args:
        rng: the random generator.

    Returns:
        the anatomy.
    """
    a, b = rng.uniform(128, 150), rng.uniform(95, 116)
    base = rng.uniform(-150, -125)
    right = rng.uniform(55, 80)
    return Anatomy(
        body=(a, b),
        fat=rng.uniform(6, 22),
        lung_offset=rng.uniform(0.42, 0.47) * a,
        lung_radii=(rng.uniform(0.31, 0.36) * a, rng.uniform(0.62, 0.70) * b),
        lung_top=rng.uniform(100, 125),
        lung_base=base,
        dome_rise=(right, right - rng.uniform(10, 25)),
        heart=((0.12 * a, -0.25 * b, base + rng.uniform(75, 95)),
               (rng.uniform(0.30, 0.37) * a, rng.uniform(0.36, 0.44) * b, rng.uniform(55, 68))),
        spine_radius=rng.uniform(15, 19),
        rib_period=rng.uniform(24, 30),
        lung_hu=rng.uniform(-875, -835),
        lung_gradient=rng.uniform(15, 45),
    )


def _lung_point(rng: np.random.Generator, anat: Anatomy, rho: tuple[float, float]) -> tuple[float, float, float]:
    """A point in one lung at normalised radius in ``rho`` (0 centre, 1 pleura), above the diaphragm."""
    (la, lb), c = anat.lung_radii, (anat.lung_top - anat.lung_base) / 2
    wc = (anat.lung_top + anat.lung_base) / 2
    while True:
        side = rng.choice((-1.0, 1.0))
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        r = rng.uniform(*rho)
        u, v, w = side * anat.lung_offset + r * d[0] * la, 0.05 * anat.body[1] + r * d[1] * lb, wc + r * d[2] * c
        dome = anat.lung_base + anat.dome_rise[0 if side < 0 else 1]
        if w > dome + 5 and not _in_heart(anat, u, v, w):
            return float(u), float(v), float(w)


def _in_heart(anat: Anatomy, u: float, v: float, w: float) -> bool:
    (hu, hv, hw), (ra, rb, rc) = anat.heart
    return ((u - hu) / ra) ** 2 + ((v - hv) / rb) ** 2 + ((w - hw) / rc) ** 2 <= 1.3


def sample_findings(rng: np.random.Generator, anat: Anatomy, *, positive: bool) -> Findings:
    """Draw a session's pose, normal structures, confounders and (if ``positive``) ground-glass opacities.

    Both classes get vessels, sometimes nodules and dependent atelectasis; only positives get 3-7 ground-glass
    opacities (peripheral blobs of 13-24 mm scale adding 300-420 HU to aerated lung, i.e. about -500 HU, capped at
    -250 HU where they overlap).

    Args:
        rng: the random generator.
        anat: the patient's anatomy.
        positive: whether the session shows the disease.

    Returns:
        the findings.
    """
    vessels = [(*_lung_point(rng, anat, (0.0, 0.75)), rng.uniform(1.5, 3.5)) for _ in range(rng.integers(25, 40))]
    nodules = [(*_lung_point(rng, anat, (0.2, 0.85)), rng.uniform(3, 6)) for _ in range(rng.integers(0, 3))]
    atelectasis = []
    if rng.random() < 0.35:
        side = rng.choice((-1.0, 1.0))
        atelectasis.append((side * anat.lung_offset, 0.05 * anat.body[1] + 0.8 * anat.lung_radii[1],
                            anat.lung_base + anat.dome_rise[0 if side < 0 else 1] + rng.uniform(10, 30)))
    opacities = []
    if positive:
        opacities = [(*_lung_point(rng, anat, (0.4, 0.85)), rng.uniform(13, 24), rng.uniform(300, 420))
                     for _ in range(rng.integers(3, 8))]
    return Findings(shift=(rng.uniform(-12, 12), rng.uniform(-10, 6)), rotation=math.radians(rng.uniform(-5, 5)),
                    vessels=vessels, nodules=nodules, atelectasis=atelectasis, opacities=opacities,
                    noise=rng.uniform(8, 22))


class _Canvas:
    """A volume on a grid with helpers to paint body-frame primitives inside their bounding boxes only."""

    def __init__(self, grid: CTGeometry, findings: Findings, fill: float) -> None:
        self.grid, self.f = grid, findings
        self.vol = np.full(grid.shape, fill, dtype=np.float32)
        self.cos, self.sin = math.cos(findings.rotation), math.sin(findings.rotation)

    def box(self, c: tuple[float, float, float], r: tuple[float, float, float]):
        """Slices of the bounding box of an ellipsoid (centre ``c``, semi-axes ``r``) and its normalised radius²."""
        g, (cx, cy) = self.grid, self.f.shift
        px = cx + c[0] * self.cos - c[1] * self.sin
        py = cy + c[0] * self.sin + c[1] * self.cos
        rad = max(r[0], r[1])
        ix = slice(*np.searchsorted(g.x, (px - rad, px + rad)))
        iy = slice(*np.searchsorted(g.y, (py - rad, py + rad)))
        iz = slice(*np.searchsorted(g.z, (c[2] - r[2], c[2] + r[2]))) if math.isfinite(r[2]) else slice(None)
        x, y, z = g.x[ix][None, None, :] - cx, g.y[iy][None, :, None] - cy, g.z[iz][:, None, None]
        u = x * self.cos + y * self.sin
        v = -x * self.sin + y * self.cos
        r2 = ((u - c[0]) / r[0]) ** 2 + ((v - c[1]) / r[1]) ** 2
        if math.isfinite(r[2]):
            r2 = r2 + ((z - c[2]) / r[2]) ** 2
        sl = (iz, iy, ix)
        return sl, np.broadcast_to(r2, self.vol[sl].shape), (u, v, np.broadcast_to(z, (z.shape[0], 1, 1)))

    def v_full(self) -> np.ndarray:
        """The antero-posterior body-frame coordinate ``v`` on the whole grid, shape ``(1, ny, nx)``."""
        x = self.grid.x[None, None, :] - self.f.shift[0]
        y = self.grid.y[None, :, None] - self.f.shift[1]
        return -x * self.sin + y * self.cos

    def paint(self, c, r, value: float, inside: np.ndarray | None = None, w_range=None) -> np.ndarray:
        """Set the ellipsoid (optionally only where ``inside``) to ``value``; return the painted box mask."""
        sl, r2, (_, _, z) = self.box(c, r)
        mask = r2 <= 1.0
        if w_range is not None:
            mask = mask & (z >= w_range[0]) & (z <= w_range[1])
        if inside is not None:
            mask = mask & inside[sl]
        self.vol[sl][mask] = value
        return mask


def render_ct(anat: Anatomy, findings: Findings, grid: CTGeometry, *, table: bool = True,
              blur: tuple[float, float, float] | None = (0.45, 0.6, 0.6), noise: bool = True,
              rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render a phantom in HU on a grid.

    Args:
        anat: the patient's anatomy.
        findings: the session's pose and findings.
        grid: the voxel centres.
        table: draw the scanner table under the patient.
        blur: Gaussian sigma in voxels ``(z, y, x)`` for partial-volume effects; ``None`` for none.
        noise: add Gaussian noise of ``findings.noise`` HU (needs ``rng``).
        rng: the random generator for the noise.

    Returns:
        the float32 HU volume ``[z, y, x]`` and the boolean mask of aerated lung (before blur and noise).
    """
    cv = _Canvas(grid, findings, _AIR)
    inf = math.inf
    (a, b), top, base = anat.body, anat.lung_top, anat.lung_base
    neck = top + 15.0
    # body: chest below the neck (fat outside, soft tissue inside), a narrower neck above
    cv.paint((0, 0, 0), (a, b, inf), _FAT, w_range=(-inf, neck))
    cv.paint((0, 0, 0), (a - anat.fat, b - anat.fat, inf), _SOFT, w_range=(-inf, neck))
    cv.paint((0, 0.1 * b, 0), (0.45 * a, 0.6 * b, inf), _SOFT, w_range=(neck, inf))
    # lungs: ellipsoids above the diaphragm domes, minus the heart
    (la, lb), wc, c = anat.lung_radii, (top + base) / 2, (top - base) / 2
    vc = 0.05 * b
    lung = np.zeros(grid.shape, dtype=bool)
    for side, dome in ((-1.0, anat.dome_rise[0]), (1.0, anat.dome_rise[1])):
        sl, r2, (_, v, z) = cv.box((side * anat.lung_offset, vc, wc), (la, lb, c))
        inside = (r2 <= 1.0) & (z > base + dome - 40.0 * np.clip(r2, 0, 1))
        lung[sl] |= inside
    hsl, hr2, _ = cv.box(*anat.heart)
    lung[hsl] &= hr2 > 1.0
    fluid = _effusions(cv, anat, lung)
    # aerated lung with a gravity-dependent (posterior) density gradient
    gradient = anat.lung_gradient * (cv.v_full() - vc) / lb
    cv.vol[lung] = (anat.lung_hu + np.broadcast_to(gradient, grid.shape))[lung]
    cv.vol[fluid] = _FLUID
    # ground-glass opacities inside aerated lung, capped below consolidation
    for u, v, w, sigma, amp in findings.opacities:
        sl, r2, _ = cv.box((u, v, w), (3 * sigma, 3 * sigma, 3 * sigma))
        bump = amp * np.minimum(1.0, 1.4 * np.exp(-4.5 * r2))
        m = lung[sl]
        cv.vol[sl][m] = np.minimum(cv.vol[sl][m] + bump[m], -250.0)
    for u, v, w in findings.atelectasis:
        cv.paint((u, v, w), (0.6 * la, 9.0, 28.0), -150.0, inside=lung)
    for u, v, w, r in findings.vessels:
        cv.paint((u, v, w), (r, r, 3 * r), _BLOOD, inside=lung)
    for u, v, w, r in findings.nodules:
        cv.paint((u, v, w), (r, r, r), 30.0, inside=lung)
    # liver under the right dome; mediastinum: heart, descending aorta, trachea; bones: spine, sternum, ribs
    cv.paint((-0.35 * a, 0.05 * b, base + anat.dome_rise[0] - 75), (0.45 * a, 0.7 * b, 75), _LIVER, inside=~lung)
    cv.paint(*anat.heart, _SOFT, inside=~lung)
    cv.paint((0.14 * a, 0.5 * b, 0), (11, 11, inf), _BLOOD, w_range=(base, 55))
    cv.paint((0, -0.05 * b, 0), (8, 8, inf), _AIR, w_range=(15, neck + 200))
    sy = 0.72 * b
    rv = anat.spine_radius
    cv.paint((0, sy, 0), (rv + 3, rv + 3, inf), _CORTEX)
    cv.paint((0, sy, 0), (rv, rv, inf), _BONE)
    cv.paint((0, sy + rv + 8, 0), (9, 11, inf), 500.0)
    cv.paint((0, sy + rv + 7, 0), (5, 5, inf), _SOFT)
    cv.paint((0, -b + anat.fat + 8, 0), (13, 6, inf), 450.0, w_range=(base + 40, top - 10))
    _ribs(cv, anat)
    if table:
        _table(cv, anat)
    hu = cv.vol
    if blur is not None:
        hu = ndimage.gaussian_filter(hu, sigma=blur, mode="nearest")
    if noise:
        if rng is None:
            raise ValueError("noise=True needs an rng")
        hu = hu + rng.normal(0.0, findings.noise, size=hu.shape).astype(np.float32)
    return hu.astype(np.float32), lung


def _effusions(cv: _Canvas, anat: Anatomy, lung: np.ndarray) -> np.ndarray:
    """Remove the pleural fluid of ``cv.f.effusions`` from the ``lung`` mask (in place) and return the fluid mask."""
    fluid = np.zeros(lung.shape, dtype=bool)
    (la, lb), (top, base) = anat.lung_radii, (anat.lung_top, anat.lung_base)
    for side, height in cv.f.effusions:
        dome = anat.dome_rise[0 if side < 0 else 1]
        sl, r2, (u, _, z) = cv.box((side * anat.lung_offset, 0.05 * anat.body[1], (top + base) / 2),
                                   (la, lb, (top - base) / 2))
        level = base + dome - 40.0 + height + 15.0 * np.clip(r2, 0.0, 1.0)  # rises towards the chest wall
        fluid[sl] |= lung[sl] & (z < level) & (u * side > 0)
    lung &= ~fluid
    return fluid


def _ribs(cv: _Canvas, anat: Anatomy) -> None:
    """Ribs: an elliptic shell inside the chest wall, banded in z and sloping down anteriorly."""
    a, b = anat.body
    ai, bi = a - anat.fat, b - anat.fat
    sl, r2, (u, v, z) = cv.box((0, 0, 0), (ai, bi, math.inf))
    rho = np.sqrt(r2)
    phi = np.arctan2(v, u)
    shell = (rho > 0.88) & (rho < 0.95)
    front = np.abs(phi + math.pi / 2) < 0.4  # costal cartilage near the sternum
    back = np.abs(phi - math.pi / 2) < 0.3  # vertebrae
    phase = (z + 25.0 * (-v / bi)) / anat.rib_period
    band = (phase - np.floor(phase)) < 0.38
    inside = (z > anat.lung_base - 20) & (z < anat.lung_top + 5)
    mask = shell & ~front & ~back & band & inside
    cv.vol[sl][mask] = 300.0


def _table(cv: _Canvas, anat: Anatomy) -> None:
    """A flat table top and a thin lower shell in the scanner frame, under the rotated body."""
    g, (_, cy) = cv.grid, cv.f.shift
    a, b = anat.body
    reach = math.hypot(a * cv.sin, b * cv.cos)
    top = cy + reach + 6.0
    for y0, y1, hu in ((top, top + 5.0, 250.0), (top + 22.0, top + 25.0, 200.0)):
        iy = slice(*np.searchsorted(g.y, (y0, y1)))
        ix = slice(*np.searchsorted(g.x, (-190.0, 190.0)))
        cv.vol[:, iy, ix] = hu


def render_xray(anat: Anatomy, findings: Findings, *, size: int = 256, fov: float = 360.0,
                exposure: float = 1.0, rng: np.random.Generator | None = None,
                noise: float = 12.0) -> np.ndarray:
    """Render a postero-anterior chest radiograph: the attenuation line integral along ``y``, log-compressed.

    The body is rendered on a coarse grid (``size / 2`` in-plane, 32 samples front to back), integrated, upsampled
    to ``size x size``, and mapped to 12-bit values where more attenuation is brighter (MONOCHROME2 convention):
    ``4095 * (1 - exp(-exposure * integral / 2.2))``. No table (the patient stands).

    Args:
        anat: the patient's anatomy.
        findings: the session's pose and findings.
        size: rows and columns of the image.
        fov: field of view in mm (square); pixel spacing is ``fov / size``.
        exposure: scales the line integral (beam quality / processing differences).
        rng: the random generator for noise; ``None`` for none.
        noise: standard deviation of additive noise in 12-bit units.

    Returns:
        ``(size, size)`` float32 image, row 0 at the top (superior), column 0 at the patient's right.
    """
    n = size // 2
    step = fov / n
    centre_w = anat.lung_top + 60.0 - fov / 2
    grid = CTGeometry(x=(np.arange(n) - (n - 1) / 2) * step, y=(np.arange(32) - 15.5) * (340.0 / 32),
                      z=centre_w + (np.arange(n) - (n - 1) / 2) * step)
    hu, _ = render_ct(anat, findings, grid, table=False, blur=None, noise=False)
    mu = np.clip(1.0 + hu / 1000.0, 0.0, None) * MU_WATER_PER_MM
    line = mu.sum(axis=1) * (340.0 / 32)  # (z, x)
    line = ndimage.zoom(line, size / n, order=1)[::-1]  # row 0 superior
    img = 4095.0 * (1.0 - np.exp(-exposure * line / 2.2))
    img = ndimage.gaussian_filter(img, 0.8)
    if rng is not None and noise > 0:
        img = img + rng.normal(0.0, noise, size=img.shape)
    return np.clip(img, 0, 4095).astype(np.float32)
