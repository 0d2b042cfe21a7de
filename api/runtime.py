"""What the service holds while it runs: the model, the gallery, the keys, recent analyses,
and the gate that bounds concurrent inference.

Loaded once at start-up. Inference is CPU/GPU bound, so at most `inference_slots`
analyses run at a time; up to `queue_limit` more wait (at most `queue_timeout_s`), and
anything beyond is told to retry (503 + Retry-After) instead of piling up.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, Field

from api.keys import KeyStore
from index.store import Gallery
from matcher.analysis import Analysis, AnalysisOptions, Analyzer, attention_overlay
from matcher.bone_age_reference import reference_or_bundled
from matcher.checkpoint import BUNDLED_MODEL_DIR, load_model
from matcher.io import ReadLimits

log = logging.getLogger(__name__)


class ServiceSettings(BaseModel):
    gallery: Path
    model: Path = BUNDLED_MODEL_DIR
    keys: Path | None = None  # default: <gallery>/keys.sqlite
    max_upload_bytes: int = Field(40 * 2**20, gt=0)
    max_pixels: int = Field(40_000_000, gt=0)
    inference_slots: int = Field(1, ge=1)
    queue_limit: int = Field(16, ge=0)
    queue_timeout_s: float = Field(60.0, gt=0)
    # recent analyses (overlays, add-to-gallery) are kept in memory, the oldest dropped first
    # when either bound is reached: a 16-bit 2,500 x 2,000 radiograph alone is 10 MB
    analyses_kept: int = Field(256, ge=1)
    analyses_memory_bytes: int = Field(1024 * 2**20, ge=2**20)
    ba_reference: Path | None = None  # bone-age SD table for z-scores; default: the bundled one

    @property
    def keys_path(self) -> Path:
        return self.keys or self.gallery / "keys.sqlite"


class Busy(Exception):  # noqa: N818
    """Too many analyses waiting; the client should retry later."""


class InferenceGate:
    def __init__(self, slots: int, queue_limit: int, timeout_s: float) -> None:
        self._slots = threading.Semaphore(slots)
        self._waiting = 0
        self._limit = slots + queue_limit
        self._lock = threading.Lock()
        self.timeout_s = timeout_s

    def __enter__(self) -> InferenceGate:
        with self._lock:
            if self._waiting >= self._limit:
                raise Busy("the service is busy with other analyses")
            self._waiting += 1
        if not self._slots.acquire(timeout=self.timeout_s):
            with self._lock:
                self._waiting -= 1
            raise Busy(f"no analysis slot became free within {self.timeout_s:.0f} s")
        return self

    def __exit__(self, *exc: object) -> None:
        self._slots.release()
        with self._lock:
            self._waiting -= 1


@dataclass
class StoredAnalysis:
    analysis: Analysis
    pixels: np.ndarray
    overlay_png: bytes | None
    thumbnail_png: bytes
    created: float = field(default_factory=time.time)

    @property
    def nbytes(self) -> int:
        """Memory it holds (pixels, pictures, embedding): what the service's memory bound counts."""
        embedding = self.analysis.embedding
        return self.pixels.nbytes + len(self.overlay_png or b"") + len(self.thumbnail_png) + (0 if embedding is None else embedding.nbytes)


def position_on(cohort, embedding: np.ndarray) -> list[float]:  # noqa: ANN001 - index.explore.CohortMap
    """(x, y) of an embedding on a cohort map, rounded as the API reports points."""
    x, y = cohort.place(embedding)[0]
    return [round(float(x), 4), round(float(y), 4)]


def png_bytes(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def thumbnail(pixels: np.ndarray, side: int = 384) -> np.ndarray:
    """An 8-bit thumbnail (longer side `side`), for display only."""
    image = pixels.astype(np.float32) / (255.0 if pixels.dtype == np.uint8 else 65535.0)
    h, w = image.shape
    scale = min(1.0, side / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return (np.clip(small, 0, 1) * 255).astype(np.uint8)


class Runtime:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        reference = reference_or_bundled(settings.ba_reference)  # cheap: fail first
        model, card = load_model(settings.model)
        self.model, self.card = model, card
        self.gallery = Gallery.open(settings.gallery)
        if self.gallery.model_fingerprint != card.fingerprint:
            raise ValueError(
                f"gallery {settings.gallery} holds model {self.gallery.model_fingerprint[:12]} but the service was started with "
                f"{card.fingerprint[:12]}; start it with the gallery's model or re-embed the gallery"
            )
        self.keys = KeyStore(settings.keys_path)
        self.limits = ReadLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)
        self.gate = InferenceGate(settings.inference_slots, settings.queue_limit, settings.queue_timeout_s)
        self._analyzers = {flag: Analyzer(model, AnalysisOptions(attention=flag, reference=reference)) for flag in (False, True)}
        self._model_lock = threading.Lock()  # one forward/backward at a time per model instance
        self._analyses: OrderedDict[str, StoredAnalysis] = OrderedDict()
        self._analyses_bytes = 0
        self._analyses_lock = threading.Lock()
        self._map = None  # the last fit of the cohort map
        self._extended_map = None  # (the fit it extends, that fit brought up to a later generation)
        self._refitting = False
        self._map_lock = threading.Lock()

    def analyze(self, radiograph, sex: str | None, age_months: float | None, attention: bool) -> tuple[str, StoredAnalysis]:  # noqa: ANN001
        with self.gate, self._model_lock:
            result = self._analyzers[attention].analyze(radiograph, sex=sex, age_months=age_months)
        overlay = None
        if result.attention is not None:
            display = radiograph.normalised()
            overlay_image = attention_overlay(display, result.attention)
            h, w = overlay_image.shape[:2]
            scale = min(1.0, 768 / max(h, w))
            overlay = png_bytes(cv2.resize(overlay_image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA))
        # the full-resolution attention array (4 bytes a pixel) lives on only as the overlay PNG
        stored = StoredAnalysis(replace(result, attention=None), radiograph.pixels, overlay, png_bytes(thumbnail(radiograph.pixels)))
        analysis_id = secrets.token_urlsafe(12)
        with self._analyses_lock:
            self._analyses[analysis_id] = stored
            self._analyses_bytes += stored.nbytes
            while len(self._analyses) > 1 and (
                len(self._analyses) > self.settings.analyses_kept or self._analyses_bytes > self.settings.analyses_memory_bytes
            ):
                self._analyses_bytes -= self._analyses.popitem(last=False)[1].nbytes
        return analysis_id, stored

    @property
    def analyses_memory(self) -> tuple[int, int]:
        """How many analyses are kept, and the bytes they hold."""
        with self._analyses_lock:
            return len(self._analyses), self._analyses_bytes

    def cohort_map(self):  # noqa: ANN201 - index.explore.CohortMap
        """The whole gallery's map, for the gallery as it is now.

        The first call fits it (or loads the stored fit) and waits. After the gallery
        changes, the last fit keeps answering at once: cases added since are placed on it
        with UMAP's transform, removed ones are left out, and one refit runs in the
        background and replaces it when done (a refit takes about a minute at 30,000 cases).
        """
        from index.explore import cohort_map, extend_map

        with self._map_lock:
            if self._map is None or self._map.model_fingerprint != self.gallery.model_fingerprint:
                self._map = cohort_map(self.gallery)
            fitted = self._map
        generation = self.gallery.generation
        if fitted.generation == generation:
            return fitted
        self._refit_in_background()
        with self._map_lock:
            cached = self._extended_map
        if cached is not None and cached[0] is fitted and cached[1].generation == generation:
            return cached[1]
        extended = extend_map(fitted, self.gallery)
        with self._map_lock:
            self._extended_map = (fitted, extended)
        return extended

    def _refit_in_background(self) -> None:
        with self._map_lock:
            if self._refitting:
                return
            self._refitting = True

        def refit() -> None:
            from index.explore import cohort_map

            try:
                fresh = cohort_map(self.gallery)
                with self._map_lock:
                    if self._map is None or fresh.generation > self._map.generation:
                        self._map = fresh
            except Exception:  # noqa: BLE001 - the old map keeps answering; the next request tries again
                log.exception("refitting the cohort map failed")
            finally:
                with self._map_lock:
                    self._refitting = False

        threading.Thread(target=refit, name="cohort-map-refit", daemon=True).start()

    def map_position(self, embedding: np.ndarray) -> list[float] | None:
        """Where a query lands on the last fit; None until someone asked for the map (an analysis never waits for a fit)."""
        with self._map_lock:
            current = self._map
        return None if current is None else position_on(current, embedding)

    def analysis(self, analysis_id: str) -> StoredAnalysis | None:
        with self._analyses_lock:
            return self._analyses.get(analysis_id)

    def case_thumbnail(self, digest: str) -> bytes:
        return png_bytes(thumbnail(self.gallery.images.get(digest)))

