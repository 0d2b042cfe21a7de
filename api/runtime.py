"""What the service holds while it runs: the model (as inference slots), the gallery, the
keys, the recent analyses and the cohort map. Loaded once at start-up (`create_app`).

An analysis answers before its attention overlay exists: the overlay is drawn on the
first request for it (`overlay`), in an inference slot, and kept with the analysis.
"""

from __future__ import annotations

from dataclasses import replace

from api.cohort_maps import CohortMaps
from api.inference import InferenceSlots
from api.keys import KeyStore
from api.pictures import overlay_png, png_bytes, thumbnail
from api.recent import RecentAnalyses, StoredAnalysis
from api.settings import ServiceSettings
from index.store import Gallery, GalleryError
from matcher.analysis import AnalysisOptions
from matcher.bone_age_reference import reference_or_bundled
from matcher.checkpoint import load_model
from matcher.io import Radiograph, ReadLimits

__all__ = ["Runtime"]


class Runtime:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        reference = reference_or_bundled(settings.ba_reference)  # cheap: fail first
        self.model, self.card = load_model(settings.model)
        self.gallery = Gallery.open(settings.gallery)
        if self.gallery.model_fingerprint != self.card.fingerprint:
            raise GalleryError(
                f"gallery {settings.gallery} holds model {self.gallery.model_fingerprint[:12]} but the service was started with "
                f"{self.card.fingerprint[:12]}; start it with the gallery's model or re-embed the gallery"
            )
        self.keys = KeyStore(settings.keys_path)
        self.limits = ReadLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)
        options = AnalysisOptions(attention=False, reference=reference)
        self.slots = InferenceSlots(self.model, options, settings.inference_slots, settings.queue_limit, settings.queue_timeout_s)
        self.recent = RecentAnalyses(settings.analyses_kept, settings.analyses_memory_bytes)
        self.maps = CohortMaps(self.gallery)

    def analyze(self, radiograph: Radiograph, sex: str | None, age_months: float | None, attention: bool) -> tuple[str, StoredAnalysis]:
        """Analyse in a free slot (`Busy` when none frees in time) and keep the result; the overlay, if
        wanted, is drawn when first asked for."""
        with self.slots.analyzer() as analyzer:
            result = analyzer.analyze(radiograph, sex=sex, age_months=age_months)
        kept = result if result.accepted else replace(result, model_input=None)
        stored = StoredAnalysis(kept, radiograph.pixels, png_bytes(thumbnail(radiograph.pixels)), overlay_wanted=attention)
        return self.recent.keep(stored), stored

    def analysis(self, analysis_id: str) -> StoredAnalysis | None:
        return self.recent.get(analysis_id)

    def overlay(self, analysis_id: str, stored: StoredAnalysis) -> bytes:
        """The attention overlay of a kept analysis, drawn once (in an inference slot) and then kept."""
        with stored.lock:
            if stored.overlay_png is None:
                with self.slots.analyzer() as analyzer:
                    attention = analyzer.attention_for(stored.analysis)
                display = Radiograph.from_pixels(stored.pixels).normalised()
                self.recent.attach_overlay(analysis_id, stored, overlay_png(display, attention))
            assert stored.overlay_png is not None
            return stored.overlay_png

    @property
    def analyses_memory(self) -> tuple[int, int]:
        """How many analyses are kept, and the bytes they hold."""
        return self.recent.memory

    def case_thumbnail(self, digest: str) -> bytes:
        return png_bytes(thumbnail(self.gallery.images.get(digest)))
