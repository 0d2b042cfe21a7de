"""The service's cohort map: one UMAP fit of the whole gallery that answers at once.

The first request fits it (or loads the stored fit) and waits. After the gallery changes,
the last fit keeps answering at once: cases added since are placed on it with UMAP's
transform, removed ones are left out, and one refit runs in the background and replaces it
when done (a refit takes about a minute at 30,000 cases).
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from index.store import Gallery

log = logging.getLogger(__name__)


def position_on(cohort, embedding: np.ndarray) -> list[float]:
    """(x, y) of an embedding on a cohort map, rounded as the API reports points."""
    x, y = cohort.place(embedding)[0]
    return [round(float(x), 4), round(float(y), 4)]


class CohortMaps:
    def __init__(self, gallery: Gallery) -> None:
        self.gallery = gallery
        self._map = None  # the last fit
        self._extended_map = None  # (the fit it extends, that fit brought up to a later generation)
        self._refitting = False
        self._lock = threading.Lock()

    def current(self):
        """The whole gallery's map, for the gallery as it is now (see the module docstring)."""
        from index.explore import cohort_map, extend_map

        with self._lock:
            if self._map is None or self._map.model_fingerprint != self.gallery.model_fingerprint:
                self._map = cohort_map(self.gallery)
            fitted = self._map
        generation = self.gallery.generation
        if fitted.generation == generation:
            return fitted
        self._refit_in_background()
        with self._lock:
            cached = self._extended_map
        if cached is not None and cached[0] is fitted and cached[1].generation == generation:
            return cached[1]
        extended = extend_map(fitted, self.gallery)
        with self._lock:
            self._extended_map = (fitted, extended)
        return extended

    def position(self, embedding: np.ndarray) -> list[float] | None:
        """Where a query lands on the last fit; None until someone asked for the map (an analysis never waits for a fit)."""
        with self._lock:
            current = self._map
        return None if current is None else position_on(current, embedding)

    def _refit_in_background(self) -> None:
        with self._lock:
            if self._refitting:
                return
            self._refitting = True
        threading.Thread(target=self._refit, name="cohort-map-refit", daemon=True).start()

    def _refit(self) -> None:
        from index.explore import cohort_map

        try:
            fresh = cohort_map(self.gallery)
            with self._lock:
                if self._map is None or fresh.generation > self._map.generation:
                    self._map = fresh
        except Exception:
            log.exception("refitting the cohort map failed")  # the old map keeps answering; the next request tries again
        finally:
            with self._lock:
                self._refitting = False
