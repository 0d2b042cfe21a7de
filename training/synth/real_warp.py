"""Disorders carried onto real hands: a real unaffected film warped so that its bones take a
spec's length changes, ray by ray, while everything else in the film stays real.

Each ray is rebuilt outwards from its metacarpal base: a bone's vector is scaled by its length
factor, so every joint beyond a changed bone moves with it (a short metacarpal pulls its whole
finger back). Factors are taken relative to the hand (divided by their geometric mean over
the reference bones, `matcher.bone_profile.REFERENCE_BONES`), because a film shows proportions,
not sizes. The film follows through a thin-plate-spline warp whose control points ride along
each bone and on either side of it (the soft tissue of the finger moves with its bones), while
the wrist, the carpus, the metacarpal bases, every point of an unchanged ray and the image
border stay put.

What can be carried this way (`CARRIED`): bone lengths. What cannot (`PHANTOM_ONLY`), because
no smooth warp creates or removes matter: cone epiphyses, fusions, extra or missing digits,
density, physeal and metaphyseal shapes; widths and angles could be warped but are not yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator

from matcher.bone_profile import REFERENCE_BONES
from matcher.hand_scheme import BONES, CARPAL_POINTS, MC_BASES, RAYS, WRIST_POINTS

CARRIED = ("length",)
PHANTOM_ONLY = ("width", "angles and clinodactyly", "cone epiphyses", "fusions", "extra or missing digits", "density", "physeal shapes")
ALONG = (0.0, 0.25, 0.5, 0.75)  # control points along each bone, as fractions of it
SIDE = 0.3  # lateral control points at this share of the spacing between neighbouring MCP joints
GRID_STEP = 4  # px: the warp is evaluated on this grid and interpolated in between
_SEGMENT = {(b.proximal, b.distal): b.name for b in BONES}


class WarpError(ValueError):
    """A film whose landmarks cannot carry a warp (a point needed is missing)."""


def relative_factors(length_factor: dict[str, float]) -> dict[str, float]:
    """Length factors relative to the hand: divided by their geometric mean over the reference bones."""
    mean = float(np.exp(np.mean([np.log(length_factor.get(b, 1.0)) for b in REFERENCE_BONES])))
    return {name: length_factor.get(name, 1.0) / mean for name in _SEGMENT.values()}


def target_points(points: np.ndarray, factors: dict[str, float]) -> np.ndarray:
    """(37, 2) where each landmark goes when every bone takes its factor (missing points stay missing)."""
    out = points.astype(float).copy()
    for chain in RAYS.values():
        for a, b in zip(chain[:-1], chain[1:], strict=True):
            out[b] = out[a] + (points[b] - points[a]) * factors.get(_SEGMENT[(a, b)], 1.0)
    return out


def _mcp_spacing(points: np.ndarray) -> float:
    heads = np.array([points[RAYS[r][1]] for r in (2, 3, 4, 5)], float)
    return float(np.median(np.linalg.norm(np.diff(heads, axis=0), axis=1)))


def _controls(source: np.ndarray, target: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Matching control points (source, target): along and beside every bone, the fixed points and the border."""
    src, dst = [], []
    half = SIDE * _mcp_spacing(source)
    for chain in RAYS.values():
        for a, b in zip(chain[:-1], chain[1:], strict=True):
            direction = source[b] - source[a]
            normal = np.array([-direction[1], direction[0]]) / max(float(np.linalg.norm(direction)), 1e-6)
            for f in ALONG:
                s, t = source[a] + f * (source[b] - source[a]), target[a] + f * (target[b] - target[a])
                for side in (-half, 0.0, half):
                    src.append(s + side * normal)
                    dst.append(t + side * normal)
        tip_direction = source[chain[-1]] - source[chain[-2]]
        beyond = tip_direction / max(float(np.linalg.norm(tip_direction)), 1e-6) * half
        src += [source[chain[-1]], source[chain[-1]] + beyond]
        dst += [target[chain[-1]], target[chain[-1]] + beyond]
    for i in (*WRIST_POINTS, *CARPAL_POINTS):
        if np.isfinite(source[i]).all():
            src.append(source[i])
            dst.append(source[i])
    h, w = shape
    border = [(x, y) for x in np.linspace(0, w - 1, 5) for y in (0, h - 1)] + [
        (x, y) for y in np.linspace(0, h - 1, 5)[1:-1] for x in (0, w - 1)
    ]
    src += [np.array(p, float) for p in border]
    dst += [np.array(p, float) for p in border]
    return np.array(src), np.array(dst)


@dataclass(frozen=True)
class WarpedFilm:
    image: np.ndarray  # the warped film, same shape and dtype as the real one
    points: np.ndarray  # (37, 2) its landmarks: where the real film's went
    factors: dict[str, float]  # the relative length factors it carries


def warp_hand(image: np.ndarray, points: np.ndarray, length_factor: dict[str, float]) -> WarpedFilm:
    """`image` (a real film) with its bones lengthened or shortened by `length_factor` (bone ->
    factor, as a spec resolves them); `points`: its 37 landmarks (every ray point needed)."""
    needed = sorted({p for chain in RAYS.values() for p in chain} | set(MC_BASES.values()))
    if not np.isfinite(points[needed]).all():
        raise WarpError("a finger or metacarpal landmark is missing; only films with every ray found can be warped")
    factors = relative_factors(length_factor)
    target = target_points(points, factors)
    src, dst = _controls(points.astype(float), target, image.shape[:2])
    h, w = image.shape[:2]
    ys, xs = np.arange(0, h + GRID_STEP, GRID_STEP, dtype=float), np.arange(0, w + GRID_STEP, GRID_STEP, dtype=float)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    _, first = np.unique(np.round(dst, 1), axis=0, return_index=True)  # a point given twice (landmarks that coincide) once
    src, dst = src[np.sort(first)], dst[np.sort(first)]
    try:
        back = RBFInterpolator(dst, src - dst, kernel="thin_plate_spline")(grid).reshape(len(ys), len(xs), 2)  # output -> source offset
    except np.linalg.LinAlgError as error:
        raise WarpError(f"the landmarks give no well-posed warp ({error}); leave this film out") from error
    dense = _resample_nodes(back.astype(np.float32), h, w)
    map_x = (np.arange(w, dtype=np.float32)[None, :] + dense[..., 0]).astype(np.float32)
    map_y = (np.arange(h, dtype=np.float32)[:, None] + dense[..., 1]).astype(np.float32)
    warped = cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
    return WarpedFilm(warped, target.astype(np.float32), factors)


def _resample_nodes(coarse: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear interpolation of values given at every GRID_STEP-th pixel onto every pixel."""
    gy = np.arange(h, dtype=np.float32) / GRID_STEP
    gx = np.arange(w, dtype=np.float32) / GRID_STEP
    map_x = np.broadcast_to(gx[None, :], (h, w)).astype(np.float32)
    map_y = np.broadcast_to(gy[:, None], (h, w)).astype(np.float32)
    return np.stack([cv2.remap(coarse[..., c], map_x, map_y, interpolation=cv2.INTER_LINEAR) for c in range(2)], axis=-1)
