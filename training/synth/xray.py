"""From a hand layout to a processed radiograph: framing, attenuation, detector, processing.

Physics kept deliberately simple but in the right order, because each step leaves a
mark real images have: Beer-Lambert attenuation through soft tissue, cortical and
trabecular bone; scatter (veiling glare that lowers contrast); quantum noise, stronger
where fewer photons arrive; detector blur; then the vendor's log transform, tone curve
and unsharp-mask edge enhancement; finally collimation edges, lead side markers and
burnt-in labels. Every setting is sampled per image (`Exposure`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from training.synth.geometry import HandLayout
from training.synth.raster import Disc, PathMaps, Tube, draw_disc, draw_tube
from training.synth.tones import apply_tone, site_tones


@dataclass(frozen=True)
class RenderStyle:
    """How one renderer forms its images: configuration as data (`RENDERERS` names them). The classic
    style is the generator's original look; the film style's settings were read off RSNA development
    films only (ids with id % 20 == 10), never off the films the realism suite reports on
    (docs/decisions/phantoms_like_films.md)."""

    grain: float = 0.0  # trabecular pattern in every bone (`raster.trabecular_grain`), oriented in the tubular ones
    film_exposure: bool = False  # exposures from `Exposure.sample_film` (processing and texture of real sites)
    top_margin: tuple[float, float] = (0.025, 0.08)  # space above the fingertips, as a share of the height
    fill: tuple[float, float] = (0.70, 0.86)  # the hand's (fingertips to wrist) share of the height
    forearm_depth: float = 1.0  # the forearm's soft-tissue thickness, relative to the classic model's
    tone_curves: bool = False  # RSNA-like films take a real site's tone curve (`tones.site_tones`), not the parametric one
    pronation_sd_deg: float = 0.0  # the hand turned slightly about its long axis (`geometry.Pose.pronation_deg`); 0: flat
    thumb_abduction_deg: float = 0.0  # added to every drawn thumb abduction (`geometry.Pose`)
    film_scan_share: float = 0.0  # share of films that are a scanned film on a light box (`FilmScan`)

    def exposure(self, rng: np.random.Generator) -> Exposure:
        return Exposure.sample_film(rng, self.tone_curves) if self.film_exposure else Exposure.sample(rng)


# film: on the development films the fingertips lie 11-20% below the top edge (classic phantoms 7-11%)
# and the wrist and forearm are the brightest part; the hand fills 76-92% of the height (the share of a
# standardised view above its mean: 0.32 on development films, 0.27 at 64-80%, 0.30 now), and their mean
# view sets the thumb nearer the index than the generator's standard pose (-10 degrees); all in
# docs/decisions/phantoms_like_films.md
RENDERERS: dict[str, RenderStyle] = {
    "classic": RenderStyle(),
    "film": RenderStyle(
        grain=1.0,
        film_exposure=True,
        top_margin=(0.05, 0.16),
        fill=(0.76, 0.92),
        forearm_depth=1.4,
        tone_curves=True,
        pronation_sd_deg=6.0,
        thumb_abduction_deg=-10.0,
        film_scan_share=0.2,
    ),
}


@dataclass(frozen=True)
class Exposure:
    """Acquisition and processing settings of one radiograph."""

    mu_soft: float  # linear attenuation per mm
    mu_cortical: float
    mu_trabecular: float
    photons: float  # quanta per pixel in the open field (noise level)
    scatter: float  # fraction of veiling glare
    blur_mm: float  # detector/focal-spot blur
    tone_k: float  # tone-curve compression
    background: float  # processed grey of the open field
    white: float  # processed grey of the densest anatomy
    range_margin: float  # auto-ranging headroom above the densest anatomy
    gamma: float
    edge_enhance: float
    heel: float  # anode heel gradient across the image
    texture: float  # trabecular texture amplitude
    collimation: tuple[float, float, float, float]  # inset fraction left, top, right, bottom
    collimation_white: bool  # unexposed border white (raw) or black (electronic shutter)
    marker: bool
    label: bool
    mottle: float = 0.0  # lumpy overlap of tissues and trabecular clusters, a few mm across (the film renderer; 0: classic)
    fog: float = 0.0  # uneven grey added over the whole film (scanned film's base fog, scatter): its largest amplitude
    site_tone: tuple[float, ...] | None = None  # a real site's tone curve (`tones.ToneModel.sample`): open field, hand quantiles
    equalisation: float = 0.0  # share of the broad excess attenuation of thick parts taken out before the tone curve

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Exposure:
        sides = tuple(float(rng.uniform(0.01, 0.07)) if rng.random() < 0.35 else 0.0 for _ in range(4))
        return cls(
            mu_soft=float(rng.uniform(0.028, 0.040)),
            mu_cortical=float(rng.uniform(0.11, 0.16)),
            mu_trabecular=float(rng.uniform(0.055, 0.070)),
            photons=float(rng.uniform(6000.0, 20000.0)),
            scatter=float(rng.uniform(0.05, 0.25)),
            blur_mm=float(rng.uniform(0.15, 0.35)),
            tone_k=float(rng.uniform(0.3, 1.1)),
            background=float(rng.uniform(0.20, 0.48)),
            white=float(rng.uniform(0.82, 0.97)),
            range_margin=float(rng.uniform(0.95, 1.15)),
            gamma=float(rng.uniform(1.0, 1.5)),
            edge_enhance=float(rng.uniform(0.05, 0.35)),
            heel=float(rng.uniform(-0.06, 0.06)),
            texture=float(rng.uniform(0.06, 0.14)),
            collimation=sides,  # type: ignore[arg-type]
            collimation_white=bool(rng.random() < 0.6),
            marker=bool(rng.random() < 0.6),
            label=bool(rng.random() < 0.35),
        )

    @classmethod
    def sample_film(cls, rng: np.random.Generator, tone_curves: bool = False) -> Exposure:
        """The film renderer's exposures: the classic physics, then processing and texture as two kinds
        of site show them. Most films (the RSNA challenge's: scanned film and CR) are processed to a
        near-black open field with the hand in the mid greys and visibly mottled; the rest (the atlas's)
        keep a grey field and a bright, smooth hand (the classic processing). The ranges were read off
        RSNA development films only (ids with id % 20 == 10) at the 100-px scale the realism suite reads.
        `tone_curves`: the RSNA-like films take a real site's tone curve (`tones.site_tones`) and have
        their thick parts equalised first, as CR/DR processing does."""
        base = cls.sample(rng)
        if rng.random() < 0.75:
            rsna_like = replace(
                base,
                background=float(rng.uniform(0.0, 0.12)),
                white=float(rng.uniform(0.62, 0.88)),
                photons=float(rng.uniform(800.0, 3000.0)),
                mottle=float(rng.uniform(0.15, 0.4)),
                collimation_white=bool(rng.random() < 0.15),  # an unexposed white border is rare on these films
                fog=float(rng.uniform(0.0, 0.12)),
            )
            if not tone_curves:
                return rsna_like
            background, hand = site_tones().sample(rng)  # the fitted greys include the films' own fog: half as much on top
            tone = (background, *map(float, hand))
            return replace(
                rsna_like, background=background, fog=rsna_like.fog / 2, site_tone=tone, equalisation=float(rng.uniform(0.2, 0.6))
            )
        return replace(base, mottle=float(rng.uniform(0.0, 0.15)))


@dataclass(frozen=True)
class FilmScan:
    """A film photographed or scanned on a light box (about a fifth of the RSNA development films: 9
    of 40 looked at): the film a tilted rectangle inside the image, its clear edge a bright band, a
    dark surround outside. Pixel units; the film's bottom may run past the image."""

    centre: tuple[float, float]
    half_size: tuple[float, float]
    angle_deg: float
    edge_px: float
    surround: float
    edge_grey: float

    def inside(self, shape: tuple[int, int]) -> np.ndarray:
        """uint8 1 inside the film rectangle, 0 outside."""
        (cx, cy), (hw, hh) = self.centre, self.half_size
        corners = np.array([[cx - hw, cy - hh], [cx + hw, cy - hh], [cx + hw, cy + hh], [cx - hw, cy + hh]], np.float32)
        rot = cv2.getRotationMatrix2D((cx, cy), self.angle_deg, 1.0)
        film = np.zeros(shape, np.uint8)
        cv2.fillConvexPoly(film, np.round(cv2.transform(corners[None], rot)[0]).astype(np.int32), 1)
        return film


@dataclass(frozen=True)
class Frame:
    """How the millimetre layout lands on the detector."""

    shape: tuple[int, int]  # (height, width) px
    px_per_mm: float
    rotation: float  # radians, clockwise on the image
    offset: tuple[float, float]  # image position of the layout origin
    film_scan: FilmScan | None = None

    def point(self, xy: tuple[float, float] | np.ndarray) -> tuple[float, float]:
        x, y = float(xy[0]), -float(xy[1])  # +y (distal) is up the image
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        return (self.offset[0] + self.px_per_mm * (c * x - s * y), self.offset[1] + self.px_per_mm * (s * x + c * y))

    def points(self, pts: np.ndarray) -> np.ndarray:
        return np.array([self.point(p) for p in pts], dtype=np.float32)


MAX_REACH = 0.96  # fingertips' margin plus the hand's share of the height: the wrist never lower than this


def choose_frame(layout: HandLayout, size: int, rotation_deg: float, rng: np.random.Generator, style: RenderStyle = RenderStyle()) -> Frame:
    """Scale and place the hand like a radiographer would: filling most of the field (how much, and
    how far below the top edge: `style`)."""
    height = int(size)
    width = round(size * rng.uniform(0.74, 0.88))
    rotation = math.radians(rotation_deg)
    probe = Frame((height, width), 1.0, rotation, (0.0, 0.0))
    # capsule ends padded by their radius so that fingertips are never cut off
    hand_pts = []
    for c in layout.capsules:
        for p, r in ((c.p0, c.r0), (c.p1, c.r1)):
            hand_pts += [(p[0] + dx * r, p[1] + dy * r) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    for poly in layout.polygons[:-1]:  # not the forearm, which runs off the image
        hand_pts += list(poly)
    hand_pts.append(layout.wrist)
    px = np.array([probe.point(p) for p in hand_pts])
    x0, y0 = px.min(axis=0)
    x1, y1 = px.max(axis=0)
    extra = 12.0 * layout.scale
    fill = rng.uniform(*style.fill)
    top_margin = rng.uniform(*style.top_margin) * height
    fill = min(fill, MAX_REACH - top_margin / height)  # the wrist stays on the film
    scanned = style.film_scan_share > 0 and rng.random() < style.film_scan_share
    if scanned:  # a film on a light box: the hand smaller, with room for the film's edges around it
        fill, top_margin = fill * rng.uniform(0.62, 0.8), top_margin + rng.uniform(0.04, 0.1) * height
    scale = min(fill * height / (y1 - y0 + extra), (0.8 if scanned else 0.94) * width / (x1 - x0 + extra))
    offset_y = top_margin - (y0 - extra / 2) * scale
    centre_x = (x0 + x1) / 2 * scale
    offset_x = width / 2 - centre_x + rng.normal(0.0, 0.03) * width
    frame = Frame((height, width), float(scale), rotation, (float(offset_x), float(offset_y)))
    return replace(frame, film_scan=_film_around(frame, px, scale, rng)) if scanned else frame


def _film_around(frame: Frame, probe_px: np.ndarray, scale: float, rng: np.random.Generator) -> FilmScan:
    """The scanned film's rectangle around the hand as `frame` places it (`probe_px`: the hand's
    outline at unit scale, unrotated offsets), a few per cent of the image beyond it on every side."""
    height, width = frame.shape
    x0, y0 = probe_px.min(axis=0) * scale + np.array(frame.offset)
    x1, y1 = probe_px.max(axis=0) * scale + np.array(frame.offset)
    left, right, top = (rng.uniform(0.03, 0.09) * s for s in (width, width, height))
    bottom = max(y1, height) + rng.uniform(-0.05, 0.1) * height
    centre = ((x0 - left + x1 + right) / 2, (y0 - top + bottom) / 2)
    half = ((x1 + right - x0 + left) / 2, (bottom - y0 + top) / 2)
    return FilmScan(
        centre,
        half,
        float(rng.uniform(-3.0, 3.0)),
        float(rng.uniform(0.004, 0.012) * height),
        float(rng.uniform(0.0, 0.15)),
        float(rng.uniform(0.7, 0.95)),
    )


def _tube_to_px(tube: Tube, frame: Frame) -> Tube:
    k = frame.px_per_mm
    return Tube(
        **{
            **tube.__dict__,
            "origin": frame.point(tube.origin),
            "angle": tube.angle + frame.rotation,
            "length": tube.length * k,
            "r_prox": tube.r_prox * k,
            "r_shaft": tube.r_shaft * k,
            "r_dist": tube.r_dist * k,
            "cortex": tube.cortex * k,
            "bend": tube.bend * k,
        }
    )


def _disc_to_px(disc: Disc, frame: Frame) -> Disc:
    k = frame.px_per_mm
    return Disc(
        **{
            **disc.__dict__,
            "centre": frame.point(disc.centre),
            "angle": disc.angle + frame.rotation,
            "half_q": disc.half_q * k,
            "half_p": disc.half_p * k,
            "depth": disc.depth * k,
        }
    )


def bone_paths(layout: HandLayout, frame: Frame, grain: float = 0.0) -> PathMaps:
    """Path lengths through bone (px) for every primitive of the layout (`grain`: the trabecular
    pattern of tubular and round bones, `raster.trabecular_grain`; 0 in the classic renderer)."""
    maps = PathMaps.empty(frame.shape)
    for tube in layout.tubes:
        draw_tube(maps, replace(_tube_to_px(tube, frame), grain=grain))
    for disc in layout.discs:
        draw_disc(maps, replace(_disc_to_px(disc, frame), grain=grain))
    return maps


def soft_tissue(layout: HandLayout, frame: Frame, forearm_depth: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(thickness in mm, binary mask) of the soft-tissue envelope (`forearm_depth`: the forearm's
    thickness relative to the classic model's)."""
    h, w = frame.shape
    mask = np.zeros((h, w), np.uint8)
    forearm = np.zeros((h, w), np.uint8)
    k = frame.px_per_mm
    for cap in layout.capsules:
        p0, p1 = np.array(frame.point(cap.p0)), np.array(frame.point(cap.p1))
        d = p1 - p0
        n = np.array([-d[1], d[0]]) / max(float(np.linalg.norm(d)), 1e-6)
        quad = np.array([p0 + n * cap.r0 * k, p1 + n * cap.r1 * k, p1 - n * cap.r1 * k, p0 - n * cap.r0 * k])
        cv2.fillConvexPoly(mask, np.round(quad).astype(np.int32), 255, lineType=cv2.LINE_AA)
        cv2.circle(mask, tuple(np.round(p0).astype(int)), round(cap.r0 * k), 255, -1, cv2.LINE_AA)
        cv2.circle(mask, tuple(np.round(p1).astype(int)), round(cap.r1 * k), 255, -1, cv2.LINE_AA)
    for i, poly in enumerate(layout.polygons):
        pts = cv2.convexHull(np.round(frame.points(poly)).astype(np.int32))
        target = forearm if i == len(layout.polygons) - 1 else mask
        cv2.fillConvexPoly(target, pts, 255, lineType=cv2.LINE_AA)
    mask = cv2.max(mask, forearm)
    # round the joins between fingers, palm and forearm a little, as flesh does
    mask = (_blur(mask.astype(np.float32), max(1.5, 2.5 * k * layout.scale)) > 127).astype(np.uint8) * 255
    dist_mm = cv2.distanceTransform(mask, cv2.DIST_L2, 5) / k
    rc = 12.0 * layout.scale + 2.0
    hand_t = np.where(dist_mm < rc, 2.0 * np.sqrt(np.clip(dist_mm * (2 * rc - dist_mm), 0, None)), 2.0 * rc)
    forearm_dist = cv2.distanceTransform(forearm, cv2.DIST_L2, 5) / k
    rf = 15.0 * layout.scale + 3.0
    fore_t = 2.0 * np.sqrt(np.clip(forearm_dist * (2 * rf - np.minimum(forearm_dist, rf)), 0, None))
    thickness = np.maximum(hand_t, forearm_depth * fore_t * (forearm > 0))
    thickness = _blur(thickness.astype(np.float32), max(1.0, 1.0 * k))
    return thickness * (mask > 0), mask


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide kernels run on a downsampled copy (a large share of render time)."""
    if sigma <= 6.0:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    factor = sigma / 3.0
    h, w = image.shape
    small = cv2.resize(image, (max(1, int(w / factor)), max(1, int(h / factor))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 3.0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _band_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator, stretch: float = 1.0) -> np.ndarray:
    noise = rng.standard_normal(shape, dtype=np.float32)
    fine = cv2.GaussianBlur(noise, (0, 0), sigmaX=sigma, sigmaY=sigma * stretch)
    coarse = _blur(cv2.GaussianBlur(noise, (0, 0), sigmaX=sigma, sigmaY=sigma * stretch), sigma * 3)
    band = fine - coarse
    return band / max(float(band.std()), 1e-6)


@dataclass
class Radiograph:
    """A processed image in [0, 1] (bone bright), its hand mask and pixel spacing."""

    image: np.ndarray
    mask: np.ndarray
    pixel_spacing_mm: float


def transmitted(
    soft_mm: np.ndarray, cortical_mm: np.ndarray, trabecular_mm: np.ndarray, exposure: Exposure, texture: np.ndarray | float = 0.0
) -> np.ndarray:
    """The share of the beam that crosses each pixel (Beer-Lambert): exp of minus the line integral
    of attenuation through soft tissue (where no bone is), cortex and trabecular bone (its density
    modulated by `texture`, a relative amplitude per pixel)."""
    soft_only = np.maximum(soft_mm - cortical_mm - trabecular_mm, 0.0)
    attenuation = (
        exposure.mu_soft * soft_only + exposure.mu_cortical * cortical_mm + exposure.mu_trabecular * trabecular_mm * (1.0 + texture)
    )
    return cv2.exp((-attenuation).astype(np.float32))


def expose(
    layout: HandLayout,
    frame: Frame,
    exposure: Exposure,
    rng: np.random.Generator,
    coarseness: float = 1.0,
    style: RenderStyle = RenderStyle(),
) -> Radiograph:
    """Render the layout as a processed radiograph (`style`: the renderer's grain and forearm)."""
    k = frame.px_per_mm
    soft, mask = soft_tissue(layout, frame, style.forearm_depth)
    maps = bone_paths(layout, frame, style.grain)
    cortical_mm = maps.cortical / k
    trabecular_mm = maps.trabecular / k
    texture = exposure.texture * coarseness * _band_noise(frame.shape, max(0.5, 0.12 * k * coarseness), rng, stretch=2.0)
    if exposure.mottle > 0:  # a few millimetres across: what a 100-px copy of a real film still shows inside the hand
        lumps = _band_noise(frame.shape, max(0.5, 0.8 * k), rng)
        soft = soft * (1.0 + 0.1 * exposure.mottle * lumps)
        texture = texture + exposure.mottle * lumps
    intensity = transmitted(soft, cortical_mm, trabecular_mm, exposure, texture)
    glare = _blur(intensity, 25.0 * k)
    intensity = (1 - exposure.scatter) * intensity + exposure.scatter * glare
    photons = exposure.photons * (frame.shape[0] / 1024.0) ** -2  # bigger pixels collect more quanta
    noisy = intensity + rng.standard_normal(frame.shape, dtype=np.float32) * np.sqrt(intensity * np.float32(1.0 / photons))
    blur = max(0.3, exposure.blur_mm * k)
    noisy = cv2.GaussianBlur(noisy.astype(np.float32), (0, 0), blur)
    log_signal = -cv2.log(np.maximum(noisy, np.float32(1e-4)))

    if exposure.equalisation > 0:
        log_signal = equalise_thick_parts(log_signal, mask, exposure.equalisation, k)
    # processing: a real site's tone curve where one was drawn, the parametric vendor curve otherwise
    if exposure.site_tone is not None:
        image = apply_tone(log_signal, mask, exposure.site_tone[0], np.array(exposure.site_tone[1:]))
    else:
        image = _parametric_tone(log_signal, mask, exposure)
    low = _blur(image, 1.5 * k + 2.0)
    image = image + exposure.edge_enhance * (image - low)
    h, _w = frame.shape
    ramp = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    image = image * (1.0 + exposure.heel * ramp)
    if exposure.fog > 0:
        image = image + exposure.fog * _fog_field(frame.shape, rng)

    open_field = _collimate(frame.shape, exposure, rng)
    outside = open_field == 0
    if outside.any():
        fill = rng.uniform(0.9, 1.0) if exposure.collimation_white else rng.uniform(0.0, 0.04)
        image[outside] = fill + rng.normal(0, 0.01, int(outside.sum()))
    hand_mask = ((mask > 0) & (open_field > 0)).astype(np.uint8) * 255
    overlay = _annotations(frame.shape, exposure, hand_mask, rng)
    image = np.where(overlay >= 0, overlay, image)
    hand_mask[overlay >= 0] = 0
    if frame.film_scan is not None:
        image, hand_mask = _on_light_box(image, hand_mask, frame.film_scan, rng)
    return Radiograph(np.clip(image, 0.0, 1.0).astype(np.float32), hand_mask, 1.0 / k)


def _on_light_box(image: np.ndarray, hand_mask: np.ndarray, scan: FilmScan, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The processed film as a scan of it shows it: inside the film's rectangle as it was, its clear
    edge a bright band, outside a dark, slightly uneven surround; the hand mask ends at the film."""
    film = scan.inside(image.shape)
    band = max(1, round(scan.edge_px))
    inner = cv2.erode(film, np.ones((2 * band + 1, 2 * band + 1), np.uint8))
    h, _w = image.shape
    surround = (
        scan.surround + 0.04 * np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None] + rng.normal(0, 0.01, image.shape).astype(np.float32)
    )
    edge = scan.edge_grey + rng.normal(0, 0.02, image.shape).astype(np.float32)
    image = np.where(inner > 0, image, np.where(film > 0, edge, surround)).astype(np.float32)
    return image, np.where(inner > 0, hand_mask, 0).astype(np.uint8)


def equalise_thick_parts(log_signal: np.ndarray, mask: np.ndarray, share: float, px_per_mm: float) -> np.ndarray:
    """CR/DR multi-frequency processing in its simplest form: where the anatomy is thicker than its
    median (wrist, forearm) a `share` of the broad excess is taken out, so the bones inside thick
    soft tissue keep their contrast instead of burning out to white."""
    broad = _blur(log_signal, 12.0 * px_per_mm)
    inside = broad[::4, ::4][mask[::4, ::4] > 0]
    level = float(np.median(inside)) if inside.size else 0.0
    return log_signal - np.float32(share) * np.maximum(broad - np.float32(level), 0.0)


def _parametric_tone(log_signal: np.ndarray, mask: np.ndarray, exposure: Exposure) -> np.ndarray:
    """Vendor processing auto-ranges on the anatomy (histogram analysis), so the densest part lands
    near white whatever the exposure; then a compressive tone curve and gamma, applied as a lookup
    table (one pass over the image)."""
    inside = log_signal[::4, ::4][mask[::4, ::4] > 0]
    l_max = float(np.percentile(inside, 99.5)) * exposure.range_margin if inside.size else 2.4
    l_max = max(l_max, 0.2)
    table_top = l_max * 1.5
    grid = np.linspace(0.0, table_top, 8192, dtype=np.float64)
    tone = (1.0 - np.exp(-exposure.tone_k * grid)) / (1.0 - math.exp(-exposure.tone_k * l_max))
    span = exposure.white - exposure.background
    table = (exposure.background + span * np.clip(tone, 0.0, 1.0) ** exposure.gamma).astype(np.float32)
    index = np.minimum(np.maximum(log_signal, 0.0) * np.float32(8191 / table_top), 8191).astype(np.int32)
    return table[index]


def _fog_field(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth field in [0, 1] across the film: a tilted plane plus a few broad blobs."""
    h, w = shape
    coarse = rng.random((4, 4)).astype(np.float32)
    blobs = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    plane = (np.cos(angle) * xx / w + np.sin(angle) * yy / h + 1.0) / 2.0
    field_ = 0.5 * plane + 0.5 * blobs
    return (field_ - field_.min()) / max(float(field_.max() - field_.min()), 1e-6)


def _collimate(shape: tuple[int, int], exposure: Exposure, rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    left, top, right, bottom = exposure.collimation
    field_ = np.zeros(shape, np.uint8)
    rect = np.array([[left * w, top * h], [w - right * w, top * h], [w - right * w, h - bottom * h], [left * w, h - bottom * h]])
    angle = rng.normal(0.0, 1.2) if any(exposure.collimation) else 0.0
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    rect = cv2.transform(rect[None].astype(np.float32), rot)[0]
    # where no blade is in, the field runs past the image border on that side
    if left == 0.0:
        rect[[0, 3], 0] = -w
    if top == 0.0:
        rect[[0, 1], 1] = -h
    if right == 0.0:
        rect[[1, 2], 0] = 2 * w
    if bottom == 0.0:
        rect[[2, 3], 1] = 2 * h
    cv2.fillConvexPoly(field_, np.round(rect).astype(np.int32), 1)
    return field_


_LABELS = ("L", "LEFT", "L PA", "PA", "LT")


def _annotations(shape: tuple[int, int], exposure: Exposure, hand: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lead side marker and burnt-in text, placed where the hand is not; -1 = no overlay."""
    h, w = shape
    overlay = np.full(shape, -1.0, np.float32)
    scale = h / 1024.0
    items: list[tuple[str, float, bool]] = []
    if exposure.marker:
        items.append((str(rng.choice(["L", "L", "LT"])), 1.6 * scale, True))
    if exposure.label:
        items.append((f"{rng.choice(_LABELS)} {rng.integers(1, 99):02d}", 0.9 * scale, False))
    for text, font_scale, boxed in items:
        thickness = max(1, round(3 * scale))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        pad = int(6 * scale)
        for _ in range(20):  # look for a corner region clear of the hand
            x = int(rng.uniform(0.02, 0.98) * w - tw) if rng.random() < 0.5 else int(rng.uniform(0.02, 0.25) * w)
            y = int(rng.uniform(0.05, 0.3) * h) if rng.random() < 0.6 else int(rng.uniform(0.75, 0.95) * h)
            x0, y0, x1, y1 = x - pad, y - th - pad, x + tw + pad, y + base + pad
            if x0 < 0 or y0 < 0 or x1 >= w or y1 >= h:
                continue
            if hand[y0:y1, x0:x1].any() or (overlay[y0:y1, x0:x1] >= 0).any():
                continue
            ink = np.zeros((y1 - y0, x1 - x0), np.uint8)  # OpenCV 5 draws text on 8-bit only
            if boxed:
                cv2.rectangle(ink, (0, 0), (x1 - x0 - 1, y1 - y0 - 1), 255, max(1, thickness // 2))
            cv2.putText(ink, text, (pad, pad + th), cv2.FONT_HERSHEY_SIMPLEX, font_scale, 255, thickness, cv2.LINE_AA)
            alpha = ink.astype(np.float32) / 255.0
            ground = -1.0 if boxed else float(rng.uniform(0.0, 0.1))
            patch = np.where(alpha > 0, 0.98 * alpha + max(ground, 0.0) * (1 - alpha), ground).astype(np.float32)
            overlay[y0:y1, x0:x1] = patch
            break
    return overlay
