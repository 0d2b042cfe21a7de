"""The FAISS index as a cache of SQLite: loaded from its newest file, caught up, rebuilt, saved.

The index file is saved under a name carrying the generation it reflects; on open, or when
another process has written, the index catches up from SQLite (cases added and rows
removed since) or is rebuilt. A crash between a commit and the index save therefore loses
nothing. Small galleries save the file after every write; large ones once the unsaved
changes reach a share of the index, and when the writer closes the gallery
(`IndexSavePolicy`): rewriting a million-case index for each added case would cost a
gigabyte of disk writes per case.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.database import GalleryDatabase
from index.vectors import IndexSpec, VectorIndex


@dataclass(frozen=True)
class IndexSavePolicy:
    """When a write also rewrites the FAISS file.

    Below `always_below_vectors` the file is rewritten after every write: cheap, and the next
    open has nothing to catch up. Above it, the file is rewritten once the cases added and
    removed since it was saved reach `max_unsaved_fraction` of the index, so the disk writes
    per case stay bounded and the catch-up on open stays a small share of a rebuild.
    """

    always_below_vectors: int = 20_000  # a 20 MB flat file: about 80 ms per write here
    max_unsaved_fraction: float = 0.01

    def __post_init__(self) -> None:
        if self.always_below_vectors < 0 or not 0 < self.max_unsaved_fraction <= 1:
            raise ValueError("always_below_vectors must be >= 0 and max_unsaved_fraction in (0, 1]")

    def due(self, vectors: int, unsaved_changes: int) -> bool:
        return unsaved_changes > 0 and (vectors < self.always_below_vectors or unsaved_changes >= self.max_unsaved_fraction * vectors)


def _unpack(rows: list[tuple], dim: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    return ids, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)


class IndexSync:
    def __init__(self, db: GalleryDatabase, path: Path, dim: int, spec: IndexSpec) -> None:
        self.db, self.path = db, path
        self.vectors = VectorIndex(dim, spec)
        self.policy = IndexSavePolicy()
        self.wrote = False  # this instance wrote cases: closing saves a file it deferred

    def reset(self, dim: int) -> None:
        """An empty index of a new width (after re-embedding), rebuilt from SQLite."""
        self.vectors = VectorIndex(dim, self.vectors.spec)
        self.rebuild()

    def rebuild(self) -> None:
        rows = self.db.query("SELECT case_row, vector FROM embeddings ORDER BY case_row")
        self.vectors.rebuild(*_unpack(rows, self.vectors.dim))
        self.vectors.epoch, self.vectors.generation = self.db.epoch, self.db.generation

    def load(self) -> None:
        """The newest index file of this epoch (rebuilt when missing or damaged), caught up."""
        epoch = self.db.epoch
        newest = None if self.vectors.on_gpu else VectorIndex.newest_file(self.path, epoch)
        if newest is None:
            self.rebuild()
        else:
            try:
                self.vectors.load(newest[0], epoch, newest[1])
            except (RuntimeError, ValueError):
                self.rebuild()  # a damaged file is only a cache
        self.refresh()

    def refresh(self) -> None:
        """Bring the in-memory index up to SQLite (another process may have written)."""
        with self.db.lock:
            generation, epoch = self.db.generation, self.db.epoch
            if epoch != self.vectors.epoch:
                self.rebuild()
                return
            if generation == self.vectors.generation:
                return
            since = self.vectors.generation
            added = self.db.query(
                # driven by the cases_generation index: a join let SQLite scan every vector
                "SELECT case_row, vector FROM embeddings WHERE case_row IN (SELECT id FROM cases WHERE added_generation > ?) ORDER BY case_row",
                (since,),
            )
            removed = [r[0] for r in self.db.query("SELECT case_row FROM removed WHERE generation > ?", (since,))]
            # every case has exactly one embedding row; counting cases reads a small index
            # (cases_generation), counting embeddings would read every vector (0.2 s at 1e5)
            count = self.db.query("SELECT COUNT(*) FROM cases")[0][0]
        # rows added after the index's generation cannot be in it: the file name records it
        try:
            self.vectors.add(*_unpack(added, self.vectors.dim))
            ok = self.vectors.remove(np.array(removed, dtype=np.int64))
        except RuntimeError:
            ok = False
        if not ok or self.vectors.ntotal != count:
            self.rebuild()
        else:
            self.vectors.generation = generation

    def save(self) -> None:
        self.vectors.save(self.path, self.db.epoch, self.db.generation)

    def unsaved_changes(self) -> int | None:
        """Cases added and removed since the newest index file; None when there is no usable file."""
        newest = VectorIndex.newest_file(self.path, self.db.epoch)
        if newest is None:
            return None
        added = self.db.query("SELECT COUNT(*) FROM cases WHERE added_generation > ?", (newest[1],))[0][0]
        removed = self.db.query("SELECT COUNT(*) FROM removed WHERE generation > ?", (newest[1],))[0][0]
        return int(added) + int(removed)

    def after_write(self) -> None:
        """After a write (under the writer lock): catch up, then save the file per `policy`."""
        self.refresh()
        self.wrote = True
        unsaved = self.unsaved_changes()
        if unsaved is None or self.policy.due(self.vectors.ntotal, unsaved):
            self.save()

    def save_if_lagging(self) -> None:
        """Save the file now if it lags behind SQLite (under the writer lock)."""
        self.refresh()
        if self.unsaved_changes() != 0:
            self.save()
