"""Recent analyses, kept in memory for their pictures and for add-to-gallery.

The oldest are dropped first when either bound is reached (a count and a byte budget: a
16-bit 2,500 x 2,000 radiograph alone is 10 MB). Each holds what a later request needs:
the pixels (to store the case), the model input (to draw the attention overlay on first
request) and the pictures drawn so far.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from matcher.analysis import Analysis


@dataclass
class StoredAnalysis:
    analysis: Analysis
    pixels: np.ndarray
    thumbnail_png: bytes
    overlay_wanted: bool = True
    overlay_png: bytes | None = None
    created: float = field(default_factory=time.time)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one overlay drawing at a time

    @property
    def nbytes(self) -> int:
        """Memory it holds (pixels, model input, pictures, embedding): what the memory bound counts."""
        arrays = (self.pixels, self.analysis.embedding, self.analysis.model_input, self.analysis.age_input)
        return sum(a.nbytes for a in arrays if a is not None) + len(self.overlay_png or b"") + len(self.thumbnail_png)


class RecentAnalyses:
    def __init__(self, kept: int, memory_bytes: int) -> None:
        self.kept, self.memory_bytes = kept, memory_bytes
        self._items: OrderedDict[str, StoredAnalysis] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def keep(self, stored: StoredAnalysis) -> str:
        """Store it under a new unguessable id; drops the oldest beyond the bounds."""
        analysis_id = secrets.token_urlsafe(12)
        with self._lock:
            self._items[analysis_id] = stored
            self._bytes += stored.nbytes
            self._trim()
        return analysis_id

    def attach_overlay(self, analysis_id: str, stored: StoredAnalysis, png: bytes) -> None:
        """Keep an overlay drawn later and count its bytes (under the lock that evictions take)."""
        with self._lock:
            stored.overlay_png = png
            if self._items.get(analysis_id) is stored:
                self._bytes += len(png)
                self._trim()

    def get(self, analysis_id: str) -> StoredAnalysis | None:
        with self._lock:
            return self._items.get(analysis_id)

    @property
    def memory(self) -> tuple[int, int]:
        """How many analyses are kept, and the bytes they hold."""
        with self._lock:
            return len(self._items), self._bytes

    def _trim(self) -> None:
        while len(self._items) > 1 and (len(self._items) > self.kept or self._bytes > self.memory_bytes):
            self._bytes -= self._items.popitem(last=False)[1].nbytes
