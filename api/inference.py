"""Bounded concurrent inference: a slot is an `Analyzer` with its own copy of the model.

Inference is CPU/GPU bound, so at most `inference_slots` analyses run at a time, each on
its own model copy (an attention map runs a backward pass, which must not share a model
with another request). Up to `queue_limit` more wait, at most `timeout_s` each, and
anything beyond is told to retry (503 + Retry-After) instead of piling up. Whoever passes
the queue gets a free analyzer; nothing then waits on another lock.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from matcher.analysis import AnalysisOptions, Analyzer
from matcher.errors import Bone2GeneError
from matcher.model import Bone2GeneModel


class Busy(Bone2GeneError):
    """Too many analyses waiting; the client should retry later."""

    http_status = 503
    title = "Busy"


class InferenceSlots:
    def __init__(self, model: Bone2GeneModel, options: AnalysisOptions, slots: int, queue_limit: int, timeout_s: float) -> None:
        if slots < 1 or queue_limit < 0:
            raise ValueError("slots must be >= 1 and queue_limit >= 0")
        self._free: queue.Queue[Analyzer] = queue.Queue()
        for i in range(slots):
            self._free.put(Analyzer(model if i == 0 else copy.deepcopy(model), options))
        self._admitted = 0  # running + waiting
        self._limit = slots + queue_limit
        self._count_lock = threading.Lock()
        self.timeout_s = timeout_s

    @contextmanager
    def analyzer(self) -> Iterator[Analyzer]:
        """A free analyzer for the duration of the block; raises `Busy` when the queue is full or the wait too long."""
        with self._count_lock:
            if self._admitted >= self._limit:
                raise Busy("the service is busy with other analyses")
            self._admitted += 1
        try:
            try:
                analyzer = self._free.get(timeout=self.timeout_s)
            except queue.Empty:
                raise Busy(f"no analysis slot became free within {self.timeout_s:.0f} s") from None
            try:
                yield analyzer
            finally:
                self._free.put(analyzer)
        finally:
            with self._count_lock:
                self._admitted -= 1

    @property
    def admitted(self) -> int:
        """Analyses running or waiting now."""
        with self._count_lock:
            return self._admitted
