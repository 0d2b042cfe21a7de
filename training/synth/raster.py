"""Bones as solids, projected: per-pixel path lengths through cortex and trabecular bone.

An X-ray image is a map of how much matter the beam crossed. A tubular bone is modelled
as a body of revolution around its axis with a cortical shell, so the path through it at
lateral offset t is the chord 2*sqrt(R^2 - t^2) minus the marrow chord: this is what
gives real radiographs their bright cortical margins and darker medulla. Epiphyses,
carpals and sesamoids are ellipsoids with a thin shell and optional deformations
(cone, capping overhangs, wedge, irregular outline). The film renderer gives a shaft's medulla an
oriented trabecular pattern (`Tube.grain`, `trabecular_grain`), and carpals, epiphyses and
sesamoids an unoriented one (`Disc.grain`). All geometry is in pixels here;
`geometry` converts from millimetres.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Tube:
    """The ossified shaft of a tubular bone in its local frame.

    `origin` is the proximal end (px), `angle` the axis direction in radians in image
    coordinates (0 = up the image, positive = towards image-right). Radii are half-widths
    (px). End shapes: "round" (articular head, capped), "flat" (physis side: may be
    tilted, cupped, coned or frayed), "square" (a broad non-growing base), "point"
    (tapered base), "tuft" (distal phalanx).
    """

    name: str
    origin: tuple[float, float]
    angle: float
    length: float
    r_prox: float
    r_shaft: float
    r_dist: float
    cortex: float
    prox_end: str = "round"
    dist_end: str = "round"
    flare_prox: float = 0.25  # fraction of the length over which the end widens
    flare_dist: float = 0.25
    end_tilt: float = 0.0  # radians, tilt of the distal end plane (Madelung, clinodactyly)
    cup: float = 0.0  # 0..1 concave distal/physeal end
    cone: float = 0.0  # 0..1 V-shaped crater at the physeal end
    fray: float = 0.0  # 0..1 irregular physeal margin
    tongue: float = 0.0  # 0..1 lucent tongue into the metaphysis (hypophosphatasia)
    taper: float = 0.0  # 0..1 bullet/pointed ends
    bend: float = 0.0  # px lateral bow at mid-shaft
    density: float = 1.0
    seed: int = 0
    grain: float = 0.0  # amplitude of the oriented trabecular pattern in the medulla (0: none, the classic renderer)

    @property
    def physis_end(self) -> str | None:
        if self.prox_end == "flat":
            return "prox"
        if self.dist_end == "flat":
            return "dist"
        return None


@dataclass
class Disc:
    """An ellipsoid (epiphysis, carpal, sesamoid, calcification) in its local frame.

    `angle` is the direction of its +p axis; for an epiphysis +p points into its
    metaphysis, so `cone` (a point growing into the shaft) and `capping` (edges bending
    around it) deform the +p side. `half_q` is the half-width across, `half_p` along,
    `depth` the half-thickness in the beam direction.
    """

    name: str
    centre: tuple[float, float]
    angle: float
    half_q: float
    half_p: float
    depth: float
    density: float = 1.0
    shell: float = 0.22  # fraction of the radius that is cortical rim
    squareness: float = 2.0  # outline exponent: 2 = ellipse, larger = boxier (epiphyses)
    cone: float = 0.0
    capping: float = 0.0
    wedge: float = 0.0  # + thicker on the +q side (triangular radial epiphysis)
    irregularity: float = 0.0
    fragments: float = 0.0
    seed: int = 0
    trabecular: bool = True
    grain: float = 0.0  # amplitude of the trabecular pattern in the interior (0: none, the classic renderer)


@dataclass
class PathMaps:
    """Accumulated path lengths (px) through cortical and trabecular bone."""

    cortical: np.ndarray
    trabecular: np.ndarray

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> PathMaps:
        return cls(np.zeros(shape, np.float32), np.zeros(shape, np.float32))


def _local_grid(
    shape: tuple[int, int], centre: tuple[float, float], angle: float, reach: float, extent: float
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """Pixels near a primitive in its frame: (slices, along-axis, across-axis) or None.

    `reach` bounds the extent along the axis from `centre` in both directions, `extent`
    across it. Image y grows downwards, so "up the image" is -y.
    """
    cx, cy = centre
    ax, ay = np.sin(angle), -np.cos(angle)  # unit vector of +axis in image coordinates
    half_w = abs(ax) * reach + abs(ay) * extent
    half_h = abs(ay) * reach + abs(ax) * extent
    x0, x1 = int(np.floor(cx - half_w)) - 1, int(np.ceil(cx + half_w)) + 2
    y0, y1 = int(np.floor(cy - half_h)) - 1, int(np.ceil(cy + half_h)) + 2
    h, w = shape
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    ax32, ay32 = np.float32(ax), np.float32(ay)
    along = dx * ax32 + dy * ay32
    across = dy * ax32 - dx * ay32  # +across points to image-right when the axis is up
    return (slice(y0, y1), slice(x0, x1)), along, across


def _smooth_noise_1d(n_terms: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(-1.0, 1.0, n_terms), rng.uniform(0.0, 2 * np.pi, n_terms)


def _profile(u: np.ndarray, tube: Tube) -> np.ndarray:
    """Radius along the normalised axis u in [0, 1]: shaft, flared ends, capped heads."""
    r = np.full_like(u, tube.r_shaft)
    fp, fd = max(tube.flare_prox, 1e-3), max(tube.flare_dist, 1e-3)
    near_p = np.clip(1.0 - u / fp, 0.0, 1.0)
    near_d = np.clip(1.0 - (1.0 - u) / fd, 0.0, 1.0)
    r = r + (tube.r_prox - tube.r_shaft) * near_p**2 + (tube.r_dist - tube.r_shaft) * near_d**2
    if tube.taper > 0:
        # bullet shape: ends narrower than a normal flare would make them
        r = r * (1.0 - 0.45 * tube.taper * (near_p**1.5 + near_d**1.5))
    for end, ur in (("prox", u), ("dist", 1.0 - u)):
        shape = tube.prox_end if end == "prox" else tube.dist_end
        r_end = tube.r_prox if end == "prox" else tube.r_dist
        if shape in ("round", "tuft"):
            cap = min(0.9 * r_end / tube.length, 0.35)
            inside = np.clip(ur / cap, 0.0, 1.0)
            r = r * np.sqrt(1.0 - (1.0 - inside) ** 2)
        elif shape == "point":
            cap = min(2.2 * r_end / tube.length, 0.45)
            inside = np.clip(ur / cap, 0.0, 1.0)
            r = r * (0.25 + 0.75 * inside**0.8)
    if tube.dist_end == "tuft":
        # ungual tuberosity: the distal tip widens slightly before its rounded end
        tip = np.clip(1.0 - (1.0 - u) / 0.3, 0.0, 1.0)
        r = r * (1.0 + 0.25 * np.sin(np.pi * tip) * tip)
    return r


def draw_tube(maps: PathMaps, tube: Tube) -> None:
    """Add one tubular bone's cortical and marrow path lengths to `maps`."""
    r_max = max(tube.r_prox, tube.r_shaft, tube.r_dist) * 1.4 + abs(tube.bend) + 2
    axis = np.array([np.sin(tube.angle), -np.cos(tube.angle)])
    mid = np.asarray(tube.origin) + axis * tube.length / 2
    grid = _local_grid(maps.cortical.shape, (mid[0], mid[1]), tube.angle, tube.length / 2 + r_max, r_max)
    if grid is None:
        return
    sl, along, across = grid
    s = along + tube.length / 2  # 0 at the proximal end
    u = np.minimum(np.maximum(s / tube.length, 0.0), 1.0)
    t = across - tube.bend * 4.0 * u * (1.0 - u)
    r = _profile(u, tube)

    # where the bone ends along its axis, per lateral offset (physeal-end deformations)
    rel = np.minimum(np.abs(t) / np.maximum(r, 1e-3), 1.0)
    end_shift = np.zeros_like(s)
    rng = np.random.default_rng(tube.seed)
    if tube.physis_end is not None:
        r_end = tube.r_prox if tube.physis_end == "prox" else tube.r_dist
        end_shift += tube.cup * 0.35 * r_end * (1.0 - rel**2)
        end_shift += tube.cone * 0.9 * r_end * np.clip(1.0 - rel * 1.2, 0.0, 1.0)
        rel2 = rel * rel
        end_shift += 0.06 * r_end * rel2 * rel2 * rel2  # slightly rounded corners
        if tube.fray > 0:
            amp, phase = _smooth_noise_1d(6, rng)
            k = np.arange(3, 9)[:, None, None]
            wobble = (amp[:, None, None] * np.sin(k * t[None] / max(r_end, 1.0) * 2.2 + phase[:, None, None])).sum(0)
            end_shift += tube.fray * 0.12 * r_end * (wobble - wobble.min())
    rel2 = rel * rel
    corners = 0.12 * max(tube.r_prox, tube.r_dist) * rel2 * rel2  # gently rounded square corners
    s_lo = np.zeros_like(s) + (corners if tube.prox_end == "square" else 0.0)
    s_hi = np.full_like(s, tube.length) - (corners if tube.dist_end == "square" else 0.0)
    if tube.physis_end == "prox":
        s_lo = s_lo + end_shift
    elif tube.physis_end == "dist":
        s_hi = s_hi - end_shift
    s_hi = s_hi + t * np.tan(tube.end_tilt)
    inside = np.minimum(np.maximum(np.minimum(s - s_lo, s_hi - s) + 0.5, 0.0), 1.0)  # one-pixel soft edge

    cortex = tube.cortex * (0.35 + 0.65 * np.sqrt(np.maximum(np.sin(np.pi * u), 0.0)))
    r_in = np.maximum(r - cortex, 0.0)
    outer = 2.0 * np.sqrt(np.maximum(r * r - t * t, 0.0))
    inner = 2.0 * np.sqrt(np.maximum(r_in * r_in - t * t, 0.0))
    marrow = inner.copy()
    if tube.physis_end is not None and (tube.fray > 0 or tube.tongue > 0):
        # rachitic/HPP metaphysis: less mineral just behind the physis
        d_end = (s - s_lo) if tube.physis_end == "prox" else (s_hi - s)
        zone = np.clip(1.0 - d_end / (0.25 * tube.length), 0.0, 1.0)
        marrow *= 1.0 - 0.35 * tube.fray * zone
        if tube.tongue > 0:
            tongue = np.exp(-((t / (0.22 * tube.r_shaft)) ** 2)) * np.clip(1.0 - d_end / (0.3 * tube.length), 0.0, 1.0)
            marrow *= 1.0 - 0.85 * tube.tongue * tongue
            outer = outer - (outer - inner) * 0.6 * tube.tongue * tongue
    if tube.grain > 0:
        marrow = marrow * np.maximum(1.0 + tube.grain * trabecular_grain(s, t, tube.r_shaft, tube.seed), 0.0)
    weight = inside * tube.density
    maps.cortical[sl] += (np.maximum(outer - inner, 0.0) * weight).astype(np.float32)
    maps.trabecular[sl] += (marrow * weight).astype(np.float32)


_GRAIN_TILE = 128


@functools.cache
def _grain_tile() -> np.ndarray:
    """A seamless unit-SD noise tile, band-limited: the texture every bone's grain is read from (made once)."""
    noise = np.random.default_rng(20261207).standard_normal((_GRAIN_TILE, _GRAIN_TILE)).astype(np.float32)
    fy, fx = np.meshgrid(np.fft.fftfreq(_GRAIN_TILE), np.fft.fftfreq(_GRAIN_TILE), indexing="ij")
    band = np.exp(-(((np.hypot(fx, fy) - 0.12) / 0.06) ** 2))  # wavelengths of about 8 tile cells
    tile = np.real(np.fft.ifft2(np.fft.fft2(noise) * band)).astype(np.float32)
    return tile / tile.std()


def trabecular_grain(along: np.ndarray, across: np.ndarray, r_shaft: float, seed: int) -> np.ndarray:
    """Oriented trabecular texture (unit SD) at a bone's local coordinates (px): trabeculae run along
    the shaft, so the pattern is four times longer along the axis than across it, and scales with the bone."""
    from scipy.ndimage import map_coordinates

    offset = np.random.default_rng(seed).uniform(0, _GRAIN_TILE, 2)
    cell = max(r_shaft / 20.0, 0.2)  # px per tile cell across the shaft: trabeculae about 0.4 of its half-width apart
    rows = along / (4.0 * cell) + offset[0]
    cols = across / cell + offset[1]
    return map_coordinates(_grain_tile(), [rows.ravel(), cols.ravel()], order=1, mode="grid-wrap").reshape(along.shape)


def draw_disc(maps: PathMaps, disc: Disc) -> None:
    """Add one ellipsoid's rim and interior path lengths to `maps`."""
    reach = disc.half_p * (1.0 + 1.2 * disc.cone + 0.6 * disc.capping + 0.3 * disc.irregularity) + 2
    extent = disc.half_q * (1.0 + 0.3 * disc.irregularity) + 2
    grid = _local_grid(maps.cortical.shape, disc.centre, disc.angle, reach, extent)
    if grid is None:
        return
    sl, p, q = grid
    a, b = disc.half_q, disc.half_p
    if disc.irregularity > 0:
        rng = np.random.default_rng(disc.seed)
        theta = np.arctan2(p / b, q / a)
        amp, phase = _smooth_noise_1d(5, rng)
        k = np.arange(2, 7)[:, None, None]
        m = 1.0 + disc.irregularity * 0.12 * (amp[:, None, None] * np.cos(k * theta[None] + phase[:, None, None])).sum(0)
        p, q = p / m, q / m
    qn = np.clip(np.abs(q) / a, 0.0, 1.0)
    n = disc.squareness
    top = b * np.maximum(1.0 - qn**n, 0.0) ** (1.0 / n)
    # +p side (towards the metaphysis): cone point and capping horns extend it
    bottom = top.copy()
    bottom = bottom + disc.cone * 2.2 * b * np.clip(1.0 - qn * 1.6, 0.0, 1.0)
    bottom = bottom + disc.capping * 0.9 * b * qn**6 * (np.abs(q) <= a)
    if disc.wedge:
        scale = np.clip(1.0 + disc.wedge * q / a, 0.15, 2.5)
        top, bottom = top * scale, bottom * scale
    centre_p = (bottom - top) / 2.0
    half = (top + bottom) / 2.0
    # beam-direction thickness: an ellipsoid-like dome over the (possibly deformed) outline
    half = np.maximum(half, 1e-3)
    z = 1.0 - qn**n - np.abs((p - centre_p) / half) ** 2
    outer = 2.0 * disc.depth * np.sqrt(np.maximum(z, 0.0))
    k_in = max(1.0 - disc.shell, 1e-3)
    z_in = 1.0 - (qn / k_in) ** n - np.abs((p - centre_p) / (half * k_in)) ** 2
    inner = 2.0 * disc.depth * k_in * np.sqrt(np.maximum(z_in, 0.0))
    weight = disc.density
    if disc.fragments > 0:
        rng = np.random.default_rng(disc.seed + 1)
        blobs = rng.normal(size=(8, 8))
        field_ = cv2.resize(blobs, (outer.shape[1], outer.shape[0]), interpolation=cv2.INTER_CUBIC)
        weight = weight * np.clip(1.0 - disc.fragments * np.clip(-field_, 0.0, None) * 1.6, 0.0, 1.0)
    cortical = np.maximum(outer - inner, 0.0) * weight
    interior = inner * weight
    if disc.grain > 0 and disc.trabecular:  # round bones have no long axis: the pattern unstretched (along scaled to match)
        interior = interior * np.maximum(1.0 + disc.grain * trabecular_grain(4.0 * p, q, min(a, b), disc.seed), 0.0)
    if disc.trabecular:
        maps.cortical[sl] += cortical.astype(np.float32)
        maps.trabecular[sl] += interior.astype(np.float32)
    else:  # a calcification: dense throughout
        maps.cortical[sl] += (cortical + interior).astype(np.float32)
