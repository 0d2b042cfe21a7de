"""The FAISS side of a gallery: an inner-product index whose ids are the cases' row ids.

The structure is an index-factory string ("Flat" = exact, "HNSW32", "IVF1024,Flat", ...)
wrapped in `IndexIDMap2`. SQLite stays the source of truth: the index file carries the
gallery generation it reflects in its name (`index.e<epoch>.g<generation>.faiss`), and a
stale file is brought up to date from SQLite (adds and removals since then) or rebuilt.

Threads: one query at a time is fastest with one OpenMP thread on a small machine
(DESIGN.md section 6), batches use all cores; `search` sets this per call.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

INDEX_NAME = re.compile(r"^index\.e(\d+)\.g(\d+)\.faiss$")


@dataclass(frozen=True)
class IndexSpec:
    factory: str = "Flat"
    ef_search: int = 128  # HNSW search depth
    nprobe: int = 32  # IVF lists visited
    use_gpu: bool = False  # when faiss-gpu and a GPU are present (exact index only)


def gpu_available() -> bool:
    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


class VectorIndex:
    """Thread-safe FAISS index keyed by int64 case row ids."""

    def __init__(self, dim: int, spec: IndexSpec) -> None:
        self.dim = dim
        self.spec = spec
        self._lock = threading.RLock()
        self.index = self._empty()
        self.generation = 0
        self.epoch = 0

    def _empty(self) -> faiss.Index:
        base = faiss.index_factory(self.dim, self.spec.factory, faiss.METRIC_INNER_PRODUCT)
        if self.spec.use_gpu and gpu_available():  # faiss-gpu: the search runs on every visible GPU
            base = faiss.index_cpu_to_all_gpus(base)
        return self._tune(faiss.IndexIDMap2(base))

    def _cpu_copy(self) -> faiss.Index:
        """What goes to disk: GPU indexes are copied back to the CPU first."""
        if self.spec.use_gpu and gpu_available():
            return faiss.index_gpu_to_cpu(self.index)
        return self.index

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        with self._lock:
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def rebuild(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        index = self._empty()
        if len(ids):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            if not index.is_trained:
                index.train(vectors)
            index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        with self._lock:
            self.index = index

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if not len(ids):
            return
        with self._lock:
            if not self.index.is_trained:
                raise RuntimeError("the ANN index is not trained yet; rebuild it from the gallery")
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> bool:
        """Remove ids; False when the structure cannot remove (HNSW): the caller rebuilds."""
        if not len(ids):
            return True
        with self._lock:
            try:
                self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
            except RuntimeError:
                return False
        return True

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, ids) of the k nearest, best first; ids -1 where fewer exist."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(k, max(1, self.ntotal)))
        params = self._search_parameters(allowed)
        with self._lock:
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1 if len(queries) == 1 else max(1, os.cpu_count() or 1))
            try:
                sims, ids = _numpy_search(self.index)(queries, k, params=params)
            finally:
                faiss.omp_set_num_threads(threads)
        return sims, ids

    def _search_parameters(self, allowed: np.ndarray | None) -> faiss.SearchParameters | None:
        """Only the selector travels per call; nprobe and efSearch live on the index (`_tune`). An IVF
        index refuses generic parameters, so it gets IVF parameters carrying its own nprobe."""
        if allowed is None:
            return None
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        ivf = _ivf_of(self.index)
        params = faiss.SearchParameters() if ivf is None else faiss.SearchParametersIVF(nprobe=ivf.nprobe)
        params.sel = selector
        params._selector_ref = selector  # keep the selector alive as long as the parameters
        return params

    def _tune(self, index: faiss.Index) -> faiss.Index:
        """Set the search depth on the index itself, wherever its IVF or HNSW part sits
        (behind a PCA or OPQ pre-transform, inside the id map)."""
        ivf = _ivf_of(index)
        if ivf is not None:
            ivf.nprobe = min(self.spec.nprobe, ivf.nlist)
        with contextlib.suppress(RuntimeError):  # no HNSW part: nothing to set
            faiss.ParameterSpace().set_index_parameter(index, "efSearch", self.spec.ef_search)
        return index

    # -- files ---------------------------------------------------------------------
    def save(self, directory: Path, epoch: int, generation: int) -> Path:
        """Write atomically under a name that records what the file reflects, then drop older files."""
        target = directory / f"index.e{epoch}.g{generation}.faiss"
        tmp = directory / f".index.{os.getpid()}.tmp"
        with self._lock:
            faiss.write_index(self._cpu_copy(), str(tmp))
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.epoch, self.generation = epoch, generation
        for other in directory.glob("index.e*.g*.faiss"):
            if other != target:
                other.unlink(missing_ok=True)
        return target

    @staticmethod
    def newest_file(directory: Path, epoch: int) -> tuple[Path, int] | None:
        best: tuple[Path, int] | None = None
        for path in directory.glob("index.e*.g*.faiss"):
            match = INDEX_NAME.match(path.name)
            if match and int(match.group(1)) == epoch and (best is None or int(match.group(2)) > best[1]):
                best = (path, int(match.group(2)))
        return best

    @property
    def on_gpu(self) -> bool:
        return self.spec.use_gpu and gpu_available()

    def load(self, path: Path, epoch: int, generation: int) -> None:
        """Load a saved CPU index (a GPU gallery rebuilds from SQLite instead: see `Gallery`)."""
        index = faiss.read_index(str(path))
        if index.d != self.dim:
            raise ValueError(f"{path} holds {index.d}-d vectors, the gallery {self.dim}-d")
        with self._lock:
            self.index = self._tune(index)
            self.epoch, self.generation = epoch, generation


def _ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:  # not an IVF index (or a GPU copy)
        return None


def _numpy_search(index: faiss.Index):
    """The numpy ``search`` of ``index``, even after ``faiss.contrib.torch_utils`` was imported.

    pytorch-metric-learning imports ``faiss.contrib.torch_utils``, which swaps
    ``Index.search`` for a torch-aware version without the ``params`` argument
    (filters and nprobe/efSearch would raise TypeError); it keeps the original
    as ``search_numpy``.
    """
    return getattr(index, "search_numpy", index.search)
