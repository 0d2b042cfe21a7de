"""A gallery of confirmed cases: one directory, crash-safe, shared by readers and writers.

    gallery/
      gallery.sqlite              cases, disorders, genes, embeddings, model fingerprint, audit log
      index.e<E>.g<G>.faiss       FAISS index (ids = case row ids) reflecting generation G
      images/ab/ab....png         content-addressed pixels (no headers, no PHI)
      writer.lock                 file lock that serialises writers across processes

`Gallery` is the front; each rule lives in one part:
- `index.database`: SQLite (WAL, synchronous=FULL) is the truth; a write is one transaction
  that bumps `generation` and appends its audit row; when `add_cases` returns, the cases
  are durable ("acknowledged").
- `index.index_sync`: the FAISS file is a cache of SQLite, caught up or rebuilt on open and
  saved per `IndexSavePolicy`; a crash between a commit and the save loses nothing.
- `index.cases`: case rows and their images (written before the commit, swept after).
- `index.catalogue_store`: disorders and genes.
- `index.bone_store`: the cases' measured bones and the norms their profiles are read against.
- `index.snapshots`: export, import and the vector swap of re-embedding.
A gallery holds embeddings of exactly one model (its fingerprint); adding vectors of another
model is refused, and `reembed` swaps every vector in one transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from index import cases as case_rows
from index import snapshots
from index.bone_store import BoneStore
from index.catalogue import Disorder
from index.catalogue_store import CatalogueStore
from index.database import FORMAT_VERSION, GalleryDatabase, GalleryError, create_database, now, read_meta
from index.filters import Filters
from index.gallery_stats import GalleryStats, count_cases
from index.images import ImageStore
from index.index_sync import IndexSavePolicy, IndexSync
from index.locking import LockTimeout, WriterLock
from index.vectors import IndexSpec, VectorIndex

__all__ = ["Gallery", "GalleryError", "GalleryStats", "Hit", "IndexSavePolicy", "NewCase"]
NewCase = case_rows.NewCase


@dataclass
class Hit:
    row: int
    similarity: float


def _new_meta(model_fingerprint: str, embedding_dim: int, spec: IndexSpec) -> dict[str, str]:
    """The meta table of a new, empty gallery."""
    return {
        "format_version": FORMAT_VERSION,
        "model_fingerprint": model_fingerprint,
        "embedding_dim": str(embedding_dim),
        "index_factory": spec.factory,
        "ef_search": str(spec.ef_search),
        "nprobe": str(spec.nprobe),
        "use_gpu": "1" if spec.use_gpu else "0",
        "generation": "0",
        "epoch": "0",
        "created": now(),
    }


class Gallery:
    """Open with `Gallery.create(...)` or `Gallery.open(path)`; safe to share between threads."""

    def __init__(self, path: Path, spec: IndexSpec) -> None:
        self.path = path
        self.images = ImageStore(path / "images")
        self.db = GalleryDatabase(path)
        self.catalogue = CatalogueStore(self.db)
        self.index = IndexSync(self.db, path, int(self.db.meta("embedding_dim")), spec)
        self._writer = WriterLock(path / "writer.lock")
        self.bones = BoneStore(self.db, self._writer)  # the cases' measured bones and the norms they are read against
        self._closed = False
        self._cases_cache: tuple[int, pd.DataFrame] | None = None

    # -- opening and closing -------------------------------------------------------
    @classmethod
    def create(cls, path: Path, model_fingerprint: str, embedding_dim: int, index: IndexSpec | None = None) -> Gallery:
        path = Path(path)
        if (path / "gallery.sqlite").exists():
            raise GalleryError(f"{path} already holds a gallery; open it instead, or choose another directory")
        if path.exists() and any(path.iterdir()):
            raise GalleryError(f"{path} exists and is not empty; choose a new directory for the gallery")
        if embedding_dim < 1:
            raise GalleryError("embedding_dim must be positive")
        spec = index or IndexSpec()
        VectorIndex(embedding_dim, spec)  # refuses a bad factory string before anything is written
        path.mkdir(parents=True, exist_ok=True)
        create_database(
            path, _new_meta(model_fingerprint, embedding_dim, spec), {"model_fingerprint": model_fingerprint, "index": spec.factory}
        )
        gallery = cls(path, spec)
        gallery.index.save()
        return gallery

    @classmethod
    def open(cls, path: Path) -> Gallery:
        path = Path(path)
        meta = read_meta(path)
        spec = IndexSpec(meta["index_factory"], int(meta["ef_search"]), int(meta["nprobe"]), meta.get("use_gpu") == "1")
        gallery = cls(path, spec)
        gallery.index.load()
        return gallery

    def close(self) -> None:
        """Save a deferred index file (if this instance wrote), then close the database (idempotent)."""
        if self._closed:
            return
        self.save_deferred_index()
        self.db.close()
        self._closed = True

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -------------------------------------------------------------------
    @property
    def model_fingerprint(self) -> str:
        return self.db.meta("model_fingerprint")

    @property
    def generation(self) -> int:
        return self.db.generation

    @property
    def dim(self) -> int:
        return self.index.vectors.dim

    @property
    def vectors(self) -> VectorIndex:
        return self.index.vectors

    @property
    def save_policy(self) -> IndexSavePolicy:
        return self.index.policy

    @save_policy.setter
    def save_policy(self, policy: IndexSavePolicy) -> None:
        self.index.policy = policy

    # -- the FAISS file ----------------------------------------------------------
    def refresh(self) -> None:
        """Bring the in-memory index up to SQLite (another process may have written)."""
        self.index.refresh()

    def unsaved_changes(self) -> int | None:
        """Cases added and removed since the newest index file; None when there is no usable file."""
        return self.index.unsaved_changes()

    def checkpoint(self) -> None:
        """Save the index file now if it lags behind SQLite (what `close()` does for a writer)."""
        with self._writer:
            self.index.save_if_lagging()

    def save_deferred_index(self) -> None:
        """If this instance wrote, save the index file it may have deferred (on close, on service shutdown)."""
        if self.index.wrote:
            with contextlib.suppress(LockTimeout, OSError):  # the file is only a cache: the next open catches up
                self.checkpoint()

    def recover(self) -> None:
        """What a writer does after a crash: sweep orphan images and save an up-to-date index."""
        with self._writer:
            case_rows.sweep_images(self.db, self.images)
            self.index.refresh()
            self.index.save()

    # -- catalogue ---------------------------------------------------------------
    def add_disorders(self, disorders: Iterable[Disorder], replace: bool = False) -> int:
        """Add catalogue entries (refusing ids that exist unless `replace`); returns how many."""
        with self._writer:
            return self.catalogue.add(disorders, replace)

    def disorders(self) -> list[Disorder]:
        return self.catalogue.all()

    def disorder(self, disorder_id: str | None) -> Disorder | None:
        """The catalogue entry with this id; None when there is none (or no id: an undiagnosed case)."""
        return self.catalogue.get(disorder_id) if isinstance(disorder_id, str) else None

    def resolve_disorder(self, label: str | None) -> str | None:
        """A catalogue id from an id or a name (case-insensitive); None for undiagnosed."""
        return self.catalogue.resolve(label)

    # -- cases -------------------------------------------------------------------
    def add_cases(self, cases: Sequence[NewCase], model_fingerprint: str, actor: str | None = None) -> list[str]:
        """Add cases in one atomic write; returns their case ids once durable."""
        if model_fingerprint != self.model_fingerprint:
            raise GalleryError(
                f"these embeddings come from model {model_fingerprint[:12]} but the gallery holds model "
                f"{self.model_fingerprint[:12]}; use the gallery's model or re-embed the gallery (`bone2gene gallery reembed`)"
            )
        vectors = case_rows.checked_vectors(cases, self.dim)
        case_ids = case_rows.case_ids_for(cases)
        with self._writer:
            digests = {id(c): self.images.put(c.pixels) for c in cases if c.pixels is not None}  # synced before the commit
            try:
                self.db.transaction(
                    case_rows.insert_work(cases, vectors, case_ids, digests, self.catalogue),
                    "add_cases",
                    {"case_ids": case_ids, "actor": actor},
                )
            except BaseException:
                case_rows.sweep_images(self.db, self.images)  # the refused batch leaves no images behind
                raise
            self.index.after_write()
        return case_ids

    def remove_case(self, case_id: str, actor: str | None = None) -> None:
        """Delete a case from metadata, vectors and the image store."""
        with self._writer:
            self.db.transaction(case_rows.remove_work(case_id), "remove_case", {"case_id": case_id, "actor": actor})
            case_rows.sweep_images(self.db, self.images)
            self.index.after_write()

    def relabel(self, case_id: str, disorder: str | None, gene: str | None = None, actor: str | None = None) -> None:
        detail = {"case_id": case_id, "disorder": disorder, "gene": gene, "actor": actor}
        with self._writer:
            self.db.transaction(case_rows.relabel_work(case_id, disorder, gene, self.catalogue), "relabel", detail)

    # -- reading -----------------------------------------------------------------
    def cases(self, filters: Filters | None = None) -> pd.DataFrame:
        """Case metadata (no vectors) as a table; `row` is the FAISS id (cached per generation)."""
        with self.db.lock:
            generation = self.generation
            if self._cases_cache is None or self._cases_cache[0] != generation:
                self._cases_cache = (generation, self.db.read_table(f"{case_rows.CASE_SELECT} ORDER BY c.id"))
            table = self._cases_cache[1]
        return filters.apply(table) if filters else table.copy()

    def case(self, case_id: str) -> dict | None:
        """One case's metadata (the columns of `cases()`, NULL as None), found by its id in SQL."""
        names, rows = self.db.query_with_names(f"{case_rows.CASE_SELECT} WHERE c.case_id = ?", (case_id,))
        return dict(zip(names, rows[0], strict=True)) if rows else None

    def vectors_of(self, rows: Sequence[int]) -> np.ndarray:
        return case_rows.vectors_of(self.db, rows, self.dim)

    def search(self, embedding: np.ndarray, k: int, filters: Filters | None = None) -> list[Hit]:
        """The k most similar cases (cosine), best first, optionally within `filters`."""
        self.refresh()
        vector = np.asarray(embedding, dtype=np.float32).reshape(1, -1)
        if vector.shape[1] != self.dim:
            raise GalleryError(f"the query embedding has {vector.shape[1]} numbers; this gallery's model gives {self.dim}")
        allowed = None
        if filters is not None and filters.active():
            allowed = self.cases(filters)["row"].to_numpy(np.int64)
            if not len(allowed):
                return []
        sims, ids = self.vectors.search(vector, k, allowed)
        return [Hit(int(i), float(s)) for s, i in zip(sims[0], ids[0], strict=True) if i >= 0]

    def audit_log(self, limit: int = 100) -> list[dict]:
        return self.db.audit_log(limit)

    def stats(self) -> GalleryStats:
        return GalleryStats(
            **count_cases(self.cases()),
            catalogue_disorders=self.catalogue.count(),
            genes=int(self.db.query("SELECT COUNT(*) FROM genes")[0][0]),
            model_fingerprint=self.model_fingerprint,
            embedding_dim=self.dim,
            index_factory=self.vectors.spec.factory,
            index_vectors=self.vectors.ntotal,
            generation=self.generation,
            image_bytes=self.images.size_bytes(),
        )

    # -- calibration storage -------------------------------------------------------
    def stored_calibration(self) -> tuple[int, dict] | None:
        return self.db.stored_calibration()

    def store_calibration(self, document: dict) -> None:
        """Saved with the generation it was computed at (not a gallery change: no new generation)."""
        with self._writer:
            self.db.store_calibration(document)

    # -- whole-gallery operations ----------------------------------------------------
    def reembed(self, embed: snapshots.Embed, model_fingerprint: str, embedding_dim: int) -> int:
        """Replace every vector with `embed([(pixels, sex), ...])` of a new model, atomically."""
        with self._writer:
            table = self.cases()
            vectors = snapshots.embed_stored(table, self.images, embed, embedding_dim)
            snapshots.swap_vectors(self.db, table["row"].to_numpy(), vectors, model_fingerprint, embedding_dim)
            self.index.reset(embedding_dim)
            self.index.save()
        return len(table)

    def export_snapshot(self, target: Path) -> Path:
        """A consistent .tar of the database and images (taken under the writer lock)."""
        with self._writer:
            return snapshots.write_snapshot(self.db, self.images, target)

    @classmethod
    def import_snapshot(cls, snapshot: Path, path: Path) -> Gallery:
        """Unpack a snapshot into a new directory, check every image against its digest, rebuild the index."""
        snapshots.unpack_snapshot(snapshot, path)
        gallery = cls.open(path)
        gallery.recover()
        return gallery
