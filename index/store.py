"""A gallery of confirmed cases: one directory, crash-safe, shared by readers and writers.

    gallery/
      gallery.sqlite              cases, disorders, genes, embeddings, model fingerprint, audit log
      index.e<E>.g<G>.faiss       FAISS index (ids = case row ids) reflecting generation G
      images/ab/ab....png         content-addressed pixels (no headers, no PHI)
      writer.lock                 flock that serialises writers across processes

Rules that keep it consistent whatever happens:
- SQLite (WAL, synchronous=FULL) is the truth. A write is one transaction that also bumps
  `generation`; when `add_cases` returns, the cases are durable ("acknowledged").
- The FAISS file is derived. It is saved under a name carrying the generation it reflects;
  on open, or when another process has written, the index catches up from SQLite (cases
  added and rows removed since) or is rebuilt. A crash between the commit and the index
  save therefore loses nothing. Small galleries save it after every write; large ones once
  the unsaved changes reach a share of the index, and when the writer closes the gallery
  (`IndexSavePolicy`): rewriting a million-case index for each added case would cost a
  gigabyte of disk writes per case.
- Images are written (and synced) before the transaction that references them; an image
  whose case is deleted is listed in `pending_image_deletions` in the deleting transaction
  and removed after the commit, or by the next writer if we crashed in between. Orphan
  images from an add that never committed are swept the same way.
- A gallery holds embeddings of exactly one model (its fingerprint); adding vectors of
  another model is refused, and `reembed` swaps every vector in one transaction.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from index.catalogue import Disorder
from index.images import ImageStore
from index.locking import LockTimeout, WriterLock
from index.vectors import IndexSpec, VectorIndex

FORMAT_VERSION = "1"
DB_NAME = "gallery.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS disorders(
    id TEXT PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL,
    omim TEXT, orpha TEXT, mondo TEXT, nosology_group INTEGER, nosology_revision INTEGER, added TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS genes(symbol TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS disorder_genes(
    disorder_id TEXT NOT NULL REFERENCES disorders(id), gene TEXT NOT NULL REFERENCES genes(symbol),
    PRIMARY KEY(disorder_id, gene));
CREATE TABLE IF NOT EXISTS cases(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id TEXT NOT NULL UNIQUE, patient_id TEXT NOT NULL,
    sex TEXT NOT NULL CHECK(sex IN ('M', 'F')), age_months REAL NOT NULL CHECK(age_months >= 0),
    disorder_id TEXT REFERENCES disorders(id), gene TEXT REFERENCES genes(symbol),
    bone_age_months REAL, source TEXT NOT NULL DEFAULT '', image_sha256 TEXT,
    added TEXT NOT NULL, added_generation INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS cases_disorder ON cases(disorder_id);
CREATE INDEX IF NOT EXISTS cases_generation ON cases(added_generation);
CREATE TABLE IF NOT EXISTS embeddings(case_row INTEGER PRIMARY KEY REFERENCES cases(id) ON DELETE CASCADE, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS removed(case_row INTEGER PRIMARY KEY, generation INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS removed_generation ON removed(generation);
CREATE TABLE IF NOT EXISTS pending_image_deletions(sha256 TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS audit(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calibration(id INTEGER PRIMARY KEY CHECK(id = 1), generation INTEGER NOT NULL, document TEXT NOT NULL);
"""


class GalleryError(ValueError):
    """A request the gallery refuses; the message says what was wrong and what to do."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


@dataclass(frozen=True)
class IndexSavePolicy:
    """When a write also rewrites the FAISS file (a cache of SQLite, see the module docstring).

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


@dataclass
class NewCase:
    """A confirmed case to add. `embedding` must come from the gallery's model."""

    embedding: np.ndarray
    sex: str
    age_months: float
    disorder: str | None = None  # catalogue id or exact name; None = undiagnosed
    gene: str | None = None
    patient_id: str | None = None
    case_id: str | None = None  # a pseudonym; invented when missing
    bone_age_months: float | None = None
    source: str = ""
    pixels: np.ndarray | None = None  # stored for re-embedding (pixels only)


@dataclass(frozen=True)
class Filters:
    """Which cases a query or listing considers."""

    sex: str | None = None
    age_min_months: float | None = None
    age_max_months: float | None = None
    source: str | None = None
    disorders: tuple[str, ...] = ()
    genes: tuple[str, ...] = ()

    def active(self) -> bool:
        return any(v not in (None, ()) for v in (self.sex, self.age_min_months, self.age_max_months, self.source)) or bool(
            self.disorders or self.genes
        )


@dataclass
class Hit:
    row: int
    similarity: float


@dataclass
class GalleryStats:
    cases: int
    patients: int
    disorders_with_cases: int
    catalogue_disorders: int
    genes: int
    by_disorder: dict[str, int]
    by_sex: dict[str, int]
    by_source: dict[str, int]
    by_age_band: dict[str, int]
    model_fingerprint: str
    embedding_dim: int
    index_factory: str
    index_vectors: int
    generation: int
    image_bytes: int
    extras: dict = field(default_factory=dict)


AGE_BANDS = ((0, 24, "0-2 y"), (24, 60, "2-5 y"), (60, 120, "5-10 y"), (120, 168, "10-14 y"), (168, 1e9, "14+ y"))


class Gallery:
    """Open with `Gallery.create(...)` or `Gallery.open(path)`; safe to share between threads."""

    def __init__(self, path: Path, spec: IndexSpec) -> None:
        self.path = path
        self.images = ImageStore(path / "images")
        self._db = sqlite3.connect(path / DB_NAME, timeout=60, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db_lock = threading.RLock()
        self.dim = int(self._meta("embedding_dim"))
        self.vectors = VectorIndex(self.dim, spec)
        self._writer = WriterLock(path / "writer.lock")
        self.save_policy = IndexSavePolicy()
        self._closed = False
        self._wrote = False  # this instance wrote cases: close() saves an index file it deferred

    # -- opening -------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, model_fingerprint: str, embedding_dim: int, index: IndexSpec | None = None) -> Gallery:
        path = Path(path)
        if (path / DB_NAME).exists():
            raise GalleryError(f"{path} already holds a gallery; open it instead, or choose another directory")
        if path.exists() and any(path.iterdir()):
            raise GalleryError(f"{path} exists and is not empty; choose a new directory for the gallery")
        if embedding_dim < 1:
            raise GalleryError("embedding_dim must be positive")
        spec = index or IndexSpec()
        VectorIndex(embedding_dim, spec)  # refuses a bad factory string before anything is written
        path.mkdir(parents=True, exist_ok=True)
        tmp_db = path / f".{DB_NAME}.tmp"
        db = sqlite3.connect(tmp_db, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(SCHEMA)
        meta = {
            "format_version": FORMAT_VERSION, "model_fingerprint": model_fingerprint, "embedding_dim": str(embedding_dim),
            "index_factory": spec.factory, "ef_search": str(spec.ef_search), "nprobe": str(spec.nprobe),
            "use_gpu": "1" if spec.use_gpu else "0", "generation": "0", "epoch": "0", "created": _now(),
        }  # fmt: skip
        db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        db.execute("INSERT INTO audit(at, actor, action, detail) VALUES (?, ?, 'create', ?)",
                   (_now(), _actor(), json.dumps({"model_fingerprint": model_fingerprint, "index": spec.factory})))  # fmt: skip
        db.close()
        os.replace(tmp_db, path / DB_NAME)  # the gallery exists only once complete
        gallery = cls(path, spec)
        gallery.vectors.save(path, 0, 0)
        return gallery

    @classmethod
    def open(cls, path: Path) -> Gallery:
        path = Path(path)
        if not (path / DB_NAME).is_file():
            raise GalleryError(f"no gallery at {path} (expected {DB_NAME}); create one with `bone2gene gallery init`")
        try:
            db = sqlite3.connect(f"file:{path / DB_NAME}?mode=ro", uri=True)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            db.close()
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{path / DB_NAME} is not a readable gallery database: {exc}") from exc
        if meta.get("format_version") != FORMAT_VERSION:
            raise GalleryError(f"{path} has gallery format {meta.get('format_version')!r}; this version reads {FORMAT_VERSION!r}")
        spec = IndexSpec(meta["index_factory"], int(meta["ef_search"]), int(meta["nprobe"]), meta.get("use_gpu") == "1")
        gallery = cls(path, spec)
        gallery._load_index()
        return gallery

    def close(self) -> None:
        """Save a deferred index file (if this instance wrote), then close the database (idempotent)."""
        if self._closed:
            return
        self.save_deferred_index()
        with self._db_lock:
            self._db.close()
            self._closed = True

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- small helpers -------------------------------------------------------------
    def _meta(self, key: str) -> str:
        with self._db_lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise GalleryError(f"gallery metadata {key!r} is missing; the database is damaged")
        return row[0]

    @property
    def model_fingerprint(self) -> str:
        return self._meta("model_fingerprint")

    @property
    def generation(self) -> int:
        return int(self._meta("generation"))

    def _query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._db_lock:
            return self._db.execute(sql, params).fetchall()

    def _transaction(self, work: Callable[[sqlite3.Connection, int], object], action: str, detail: dict) -> tuple[object, int]:
        """Run `work(db, new_generation)` in one IMMEDIATE transaction with the audit row."""
        with self._db_lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                generation = int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]) + 1
                result = work(db, generation)
                db.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(generation),))
                db.execute("INSERT INTO audit(at, actor, action, detail) VALUES (?, ?, ?, ?)",
                           (_now(), _actor(), action, json.dumps(detail, default=str)))  # fmt: skip
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return result, generation

    # -- index maintenance ---------------------------------------------------------
    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        rows = self._query("SELECT case_row, vector FROM embeddings ORDER BY case_row")
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), self.dim)
        return ids, vectors

    def _rebuild_index(self) -> None:
        ids, vectors = self._all_vectors()
        self.vectors.rebuild(ids, vectors)
        self.vectors.epoch, self.vectors.generation = int(self._meta("epoch")), self.generation

    def _load_index(self) -> None:
        epoch = int(self._meta("epoch"))
        newest = None if self.vectors.on_gpu else VectorIndex.newest_file(self.path, epoch)
        if newest is None:
            self._rebuild_index()
        else:
            try:
                self.vectors.load(newest[0], epoch, newest[1])
            except (RuntimeError, ValueError):
                self._rebuild_index()  # a damaged file is only a cache
        self.refresh()

    def refresh(self) -> None:
        """Bring the in-memory index up to SQLite (another process may have written)."""
        with self._db_lock:
            generation, epoch = self.generation, int(self._meta("epoch"))
            if epoch != self.vectors.epoch:
                self._rebuild_index()
                return
            if generation == self.vectors.generation:
                return
            since = self.vectors.generation
            added = self._db.execute(
                # driven by the cases_generation index: a join let SQLite scan every vector
                "SELECT case_row, vector FROM embeddings WHERE case_row IN (SELECT id FROM cases WHERE added_generation > ?) ORDER BY case_row",
                (since,),
            ).fetchall()
            removed = [r[0] for r in self._db.execute("SELECT case_row FROM removed WHERE generation > ?", (since,))]
            # every case has exactly one embedding row; counting cases reads a small index
            # (cases_generation), counting embeddings would read every vector (0.2 s at 1e5)
            count = self._db.execute("SELECT COUNT(*) FROM cases").fetchone()[0]
        # rows added after the index's generation cannot be in it: the file name records it
        ids = np.array([r[0] for r in added], dtype=np.int64)
        vectors = np.frombuffer(b"".join(r[1] for r in added), dtype=np.float32).reshape(len(added), self.dim)
        try:
            self.vectors.add(ids, vectors)
            ok = self.vectors.remove(np.array(removed, dtype=np.int64))
        except RuntimeError:
            ok = False
        if not ok or self.vectors.ntotal != count:
            self._rebuild_index()
        else:
            self.vectors.generation = generation

    def _save_index(self) -> None:
        self.vectors.save(self.path, int(self._meta("epoch")), self.generation)

    def unsaved_changes(self) -> int | None:
        """Cases added and removed since the newest index file; None when there is no usable file."""
        newest = VectorIndex.newest_file(self.path, int(self._meta("epoch")))
        if newest is None:
            return None
        added = self._query("SELECT COUNT(*) FROM cases WHERE added_generation > ?", (newest[1],))[0][0]
        removed = self._query("SELECT COUNT(*) FROM removed WHERE generation > ?", (newest[1],))[0][0]
        return int(added) + int(removed)

    def _save_index_if_due(self) -> None:
        """After a write (under the writer lock, with the index refreshed): save per `save_policy`."""
        self._wrote = True
        unsaved = self.unsaved_changes()
        if unsaved is None or self.save_policy.due(self.vectors.ntotal, unsaved):
            self._save_index()

    def save_deferred_index(self) -> None:
        """If this instance wrote, save the index file it may have deferred (on close, on service shutdown)."""
        if self._wrote:
            try:
                self.checkpoint()
            except (LockTimeout, OSError):
                pass  # the file is only a cache: the next open catches up from SQLite

    def checkpoint(self) -> None:
        """Save the index file now if it lags behind SQLite (what `close()` does for a writer)."""
        with self._writer:
            self.refresh()
            if self.unsaved_changes() != 0:
                self._save_index()

    def _sweep_images(self) -> None:
        """Delete images whose case is gone (pending deletions, or adds that never committed)."""
        pending = [r[0] for r in self._query("SELECT sha256 FROM pending_image_deletions")]
        referenced = {r[0] for r in self._query("SELECT DISTINCT image_sha256 FROM cases WHERE image_sha256 IS NOT NULL")}
        for digest in pending:
            if digest not in referenced:
                self.images.delete(digest)
        if pending:
            with self._db_lock:
                self._db.executemany("DELETE FROM pending_image_deletions WHERE sha256 = ?", [(d,) for d in pending])
        for digest in self.images.digests() - referenced:
            self.images.delete(digest)
        for stale in self.images.root.glob("??/*.tmp") if self.images.root.is_dir() else []:
            stale.unlink(missing_ok=True)

    # -- catalogue -----------------------------------------------------------------
    def add_disorders(self, disorders: Iterable[Disorder], replace: bool = False) -> int:
        """Add catalogue entries (refusing ids that exist unless `replace`); returns how many."""
        items = list(disorders)

        def work(db: sqlite3.Connection, _: int) -> int:
            for d in items:
                exists = db.execute("SELECT 1 FROM disorders WHERE id = ?", (d.id,)).fetchone()
                if exists and not replace:
                    raise GalleryError(f"disorder {d.id!r} is already in the catalogue")
                taken = db.execute("SELECT id FROM disorders WHERE lower(name) = lower(?) AND id != ?", (d.name, d.id)).fetchone()
                if taken:
                    raise GalleryError(f"the name {d.name!r} is already used by disorder {taken[0]!r}")
                db.execute(
                    "INSERT OR REPLACE INTO disorders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (d.id, d.name, d.category, d.omim, d.orpha, d.mondo, d.nosology_group, d.nosology_revision, _now()),
                )
                db.execute("DELETE FROM disorder_genes WHERE disorder_id = ?", (d.id,))
                for gene in d.genes:
                    db.execute("INSERT OR IGNORE INTO genes VALUES (?)", (gene,))
                    db.execute("INSERT INTO disorder_genes VALUES (?, ?)", (d.id, gene))
            return len(items)

        with self._writer:
            count, _ = self._transaction(work, "add_disorders", {"ids": [d.id for d in items]})
        return int(count)  # type: ignore[arg-type]

    def disorders(self) -> list[Disorder]:
        genes: dict[str, list[str]] = {}
        for disorder_id, gene in self._query("SELECT disorder_id, gene FROM disorder_genes"):
            genes.setdefault(disorder_id, []).append(gene)
        rows = self._query("SELECT id, name, category, omim, orpha, mondo, nosology_group, nosology_revision FROM disorders ORDER BY id")
        return [
            Disorder(id=r[0], name=r[1], category=r[2], genes=genes.get(r[0], []), omim=r[3], orpha=r[4], mondo=r[5],
                     nosology_group=r[6], nosology_revision=r[7])  # fmt: skip
            for r in rows
        ]

    def resolve_disorder(self, label: str | None, db: sqlite3.Connection | None = None) -> str | None:
        """A catalogue id from an id or a name (case-insensitive); None for undiagnosed."""
        if label is None or (isinstance(label, float) and np.isnan(label)) or str(label).strip() == "":
            return None
        label = str(label).strip()
        query = "SELECT id FROM disorders WHERE id = ? OR lower(name) = lower(?)"
        row = (db.execute(query, (label, label)).fetchone() if db is not None else (self._query(query, (label, label)) or [None])[0])
        if row is None:
            raise GalleryError(f"disorder {label!r} is not in the catalogue; add it first (`bone2gene disorders add`) or check the spelling")
        return row[0]

    # -- cases ---------------------------------------------------------------------
    def add_cases(self, cases: Sequence[NewCase], model_fingerprint: str, actor: str | None = None) -> list[str]:
        """Add cases in one atomic write; returns their case ids once durable."""
        if model_fingerprint != self.model_fingerprint:
            raise GalleryError(
                f"these embeddings come from model {model_fingerprint[:12]} but the gallery holds model "
                f"{self.model_fingerprint[:12]}; use the gallery's model or re-embed the gallery (`bone2gene gallery reembed`)"
            )
        prepared = []
        for i, case in enumerate(cases):
            vector = np.asarray(case.embedding, dtype=np.float32).reshape(-1)
            if vector.shape != (self.dim,) or not np.all(np.isfinite(vector)):
                raise GalleryError(f"case {i}: the embedding must be {self.dim} finite numbers")
            norm = float(np.linalg.norm(vector))
            if not 0.99 < norm < 1.01:
                raise GalleryError(f"case {i}: the embedding must have unit length (has {norm:.3f})")
            if case.sex not in ("M", "F"):
                raise GalleryError(f"case {i}: sex must be M or F, not {case.sex!r}")
            if not (0 <= float(case.age_months) <= 1200):
                raise GalleryError(f"case {i}: age_months must be between 0 and 1200, not {case.age_months}")
            prepared.append((case, vector))
        case_ids = [c.case_id or f"case-{uuid.uuid4().hex[:12]}" for c in cases]
        if len(set(case_ids)) != len(case_ids):
            raise GalleryError("case ids within one batch must be unique")

        def work(db: sqlite3.Connection, generation: int) -> None:
            for (case, vector), case_id in zip(prepared, case_ids, strict=True):
                if db.execute("SELECT 1 FROM cases WHERE case_id = ?", (case_id,)).fetchone():
                    raise GalleryError(f"case {case_id!r} is already in the gallery; relabel it or choose another id")
                disorder = self.resolve_disorder(case.disorder, db)
                gene = case.gene.strip().upper() if isinstance(case.gene, str) and case.gene.strip() else None
                if gene:
                    db.execute("INSERT OR IGNORE INTO genes VALUES (?)", (gene,))
                cursor = db.execute(
                    "INSERT INTO cases(case_id, patient_id, sex, age_months, disorder_id, gene, bone_age_months, source, image_sha256, added, added_generation)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (case_id, case.patient_id or case_id, case.sex, float(case.age_months), disorder, gene,
                     None if case.bone_age_months is None or np.isnan(case.bone_age_months) else float(case.bone_age_months),
                     case.source or "", digests.get(id(case)), _now(), generation),
                )  # fmt: skip
                db.execute("INSERT INTO embeddings VALUES (?, ?)", (cursor.lastrowid, vector.tobytes()))

        with self._writer:
            digests = {id(c): self.images.put(c.pixels) for c in cases if c.pixels is not None}  # synced before the commit
            try:
                self._transaction(work, "add_cases", {"case_ids": case_ids, "actor": actor})
            except BaseException:
                self._sweep_images()  # the refused batch leaves no images behind
                raise
            self.refresh()
            self._save_index_if_due()
        return case_ids

    def remove_case(self, case_id: str, actor: str | None = None) -> None:
        """Delete a case from metadata, vectors and the image store."""

        def work(db: sqlite3.Connection, generation: int) -> str | None:
            row = db.execute("SELECT id, image_sha256 FROM cases WHERE case_id = ?", (case_id,)).fetchone()
            if row is None:
                raise GalleryError(f"no case {case_id!r} in the gallery")
            db.execute("DELETE FROM embeddings WHERE case_row = ?", (row[0],))
            db.execute("DELETE FROM cases WHERE id = ?", (row[0],))
            db.execute("INSERT OR REPLACE INTO removed VALUES (?, ?)", (row[0], generation))
            if row[1]:
                db.execute("INSERT OR IGNORE INTO pending_image_deletions VALUES (?)", (row[1],))
            return row[1]

        with self._writer:
            self._transaction(work, "remove_case", {"case_id": case_id, "actor": actor})
            self._sweep_images()
            self.refresh()
            self._save_index_if_due()

    def relabel(self, case_id: str, disorder: str | None, gene: str | None = None, actor: str | None = None) -> None:
        def work(db: sqlite3.Connection, _: int) -> None:
            if not db.execute("SELECT 1 FROM cases WHERE case_id = ?", (case_id,)).fetchone():
                raise GalleryError(f"no case {case_id!r} in the gallery")
            resolved = self.resolve_disorder(disorder, db)
            symbol = gene.strip().upper() if gene and gene.strip() else None
            if symbol:
                db.execute("INSERT OR IGNORE INTO genes VALUES (?)", (symbol,))
            db.execute("UPDATE cases SET disorder_id = ?, gene = ? WHERE case_id = ?", (resolved, symbol, case_id))

        with self._writer:
            self._transaction(work, "relabel", {"case_id": case_id, "disorder": disorder, "gene": gene, "actor": actor})

    def recover(self) -> None:
        """What a writer does after a crash: sweep orphan images and save an up-to-date index."""
        with self._writer:
            self._sweep_images()
            self.refresh()
            self._save_index()

    # -- reading -------------------------------------------------------------------
    def cases(self, filters: Filters | None = None) -> pd.DataFrame:
        """Case metadata (no vectors) as a table; `row` is the FAISS id (cached per generation)."""
        with self._db_lock:
            generation = self.generation
            cached = getattr(self, "_cases_cache", None)
            if cached is not None and cached[0] == generation:
                table = cached[1]
                return apply_filters(table, filters) if filters else table.copy()
            table = pd.read_sql_query(
                "SELECT c.id AS row, c.case_id, c.patient_id, c.sex, c.age_months, c.disorder_id AS disorder, d.name AS disorder_name,"
                " c.gene, c.bone_age_months, c.source, c.image_sha256, c.added FROM cases c LEFT JOIN disorders d ON d.id = c.disorder_id"
                " ORDER BY c.id",
                self._db,
            )
            self._cases_cache = (generation, table)
        return apply_filters(table, filters) if filters else table.copy()

    def vectors_of(self, rows: Sequence[int]) -> np.ndarray:
        wanted = list(map(int, rows))
        if not wanted:
            return np.zeros((0, self.dim), np.float32)
        found: dict[int, bytes] = {}
        for start in range(0, len(wanted), 900):
            chunk = wanted[start : start + 900]
            placeholders = ",".join("?" * len(chunk))
            found.update(self._query(f"SELECT case_row, vector FROM embeddings WHERE case_row IN ({placeholders})", chunk))
        missing = [r for r in wanted if r not in found]
        if missing:
            raise GalleryError(f"no embedding for case rows {missing[:5]}")
        return np.frombuffer(b"".join(found[r] for r in wanted), dtype=np.float32).reshape(len(wanted), self.dim)

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
        rows = self._query("SELECT seq, at, actor, action, detail FROM audit ORDER BY seq DESC LIMIT ?", (limit,))
        return [{"seq": r[0], "at": r[1], "actor": r[2], "action": r[3], "detail": json.loads(r[4])} for r in rows]

    def stats(self) -> GalleryStats:
        table = self.cases()
        bands = {label: int(((table["age_months"] >= lo) & (table["age_months"] < hi)).sum()) for lo, hi, label in AGE_BANDS}
        return GalleryStats(
            cases=len(table),
            patients=int(table["patient_id"].nunique()),
            disorders_with_cases=int(table["disorder"].dropna().nunique()),
            catalogue_disorders=int(self._query("SELECT COUNT(*) FROM disorders")[0][0]),
            genes=int(self._query("SELECT COUNT(*) FROM genes")[0][0]),
            by_disorder={str(k): int(v) for k, v in table["disorder"].fillna("(undiagnosed)").value_counts().items()},
            by_sex={str(k): int(v) for k, v in table["sex"].value_counts().items()},
            by_source={str(k or "(none)"): int(v) for k, v in table["source"].value_counts().items()},
            by_age_band=bands,
            model_fingerprint=self.model_fingerprint,
            embedding_dim=self.dim,
            index_factory=self.vectors.spec.factory,
            index_vectors=self.vectors.ntotal,
            generation=self.generation,
            image_bytes=self.images.size_bytes(),
        )

    # -- calibration storage ---------------------------------------------------------
    def stored_calibration(self) -> tuple[int, dict] | None:
        rows = self._query("SELECT generation, document FROM calibration WHERE id = 1")
        return (int(rows[0][0]), json.loads(rows[0][1])) if rows else None

    def store_calibration(self, document: dict) -> None:
        """Saved with the generation it was computed at (not a gallery change: no new generation)."""
        with self._writer, self._db_lock:
            self._db.execute("INSERT OR REPLACE INTO calibration VALUES (1, ?, ?)", (self.generation, json.dumps(document)))

    # -- model change ----------------------------------------------------------------
    def reembed(self, embed: Callable[[list[tuple[np.ndarray, str]]], np.ndarray], model_fingerprint: str, embedding_dim: int) -> int:
        """Replace every vector with `embed([(pixels, sex), ...])` of a new model, atomically."""
        with self._writer:
            table = self.cases()
            if table["image_sha256"].isna().any():
                missing = table.loc[table["image_sha256"].isna(), "case_id"].tolist()
                raise GalleryError(f"{len(missing)} case(s) have no stored image (e.g. {missing[0]!r}) and cannot be re-embedded; remove them first")
            pixels = [(self.images.get(d), s) for d, s in zip(table["image_sha256"], table["sex"], strict=True)]
            vectors = np.asarray(embed(pixels), dtype=np.float32) if pixels else np.zeros((0, embedding_dim), np.float32)
            if vectors.shape != (len(table), embedding_dim):
                raise GalleryError(f"the new model returned {vectors.shape} vectors for {len(table)} cases")

            def work(db: sqlite3.Connection, _: int) -> None:
                db.execute("DELETE FROM embeddings")
                db.executemany("INSERT INTO embeddings VALUES (?, ?)",
                               [(int(r), v.tobytes()) for r, v in zip(table["row"], vectors, strict=True)])  # fmt: skip
                epoch = int(db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]) + 1
                for key, value in (("model_fingerprint", model_fingerprint), ("embedding_dim", str(embedding_dim)), ("epoch", str(epoch))):
                    db.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
                db.execute("DELETE FROM calibration")

            old = self.model_fingerprint
            self._transaction(work, "reembed", {"from": old, "to": model_fingerprint, "cases": len(table)})
            self.dim = embedding_dim
            self.vectors = VectorIndex(embedding_dim, self.vectors.spec)
            self._rebuild_index()
            self._save_index()
        return len(table)

    # -- snapshots -------------------------------------------------------------------
    def export_snapshot(self, target: Path) -> Path:
        """A consistent .tar of the database and images (taken under the writer lock)."""
        target = Path(target)
        if target.exists():
            raise GalleryError(f"{target} exists; choose a new file name for the snapshot")
        with self._writer, tempfile.TemporaryDirectory(dir=target.parent if target.parent.exists() else None) as tmp:
            copy = Path(tmp) / DB_NAME
            with self._db_lock:
                backup = sqlite3.connect(copy)
                self._db.backup(backup)
                backup.close()
            partial = target.with_name(target.name + ".partial")
            with tarfile.open(partial, "w") as tar:
                tar.add(copy, arcname=DB_NAME)
                for digest in sorted(self.images.digests()):
                    tar.add(self.images.path_of(digest), arcname=f"images/{digest[:2]}/{digest}.png")
            os.replace(partial, target)
        return target

    @classmethod
    def import_snapshot(cls, snapshot: Path, path: Path) -> Gallery:
        """Unpack a snapshot into a new directory, check every image against its digest, rebuild the index."""
        path = Path(path)
        if path.exists():
            raise GalleryError(f"{path} exists; import a snapshot into a new directory")
        if not tarfile.is_tarfile(snapshot):
            raise GalleryError(f"{snapshot} is not a gallery snapshot (.tar from `bone2gene gallery export`)")
        staging = Path(tempfile.mkdtemp(prefix=".import-", dir=path.parent if path.parent.exists() else None))
        try:
            with tarfile.open(snapshot) as tar:
                names = tar.getnames()
                if DB_NAME not in names or any(not (n == DB_NAME or n.startswith("images/")) for n in names):
                    raise GalleryError(f"{snapshot} does not look like a gallery snapshot (unexpected members)")
                tar.extractall(staging, filter="data")
            db = sqlite3.connect(staging / DB_NAME)
            if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise GalleryError(f"the database in {snapshot} is damaged")
            db.execute("PRAGMA journal_mode = WAL")
            digests = [r[0] for r in db.execute("SELECT DISTINCT image_sha256 FROM cases WHERE image_sha256 IS NOT NULL")]
            db.close()
            store = ImageStore(staging / "images")
            for digest in digests:
                store.get(digest)  # raises on a missing or altered image
            os.replace(staging, path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        gallery = cls.open(path)
        gallery.recover()
        return gallery


def apply_filters(table: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    keep = pd.Series(True, index=table.index)
    if filters.sex:
        keep &= table["sex"] == filters.sex
    if filters.age_min_months is not None:
        keep &= table["age_months"] >= filters.age_min_months
    if filters.age_max_months is not None:
        keep &= table["age_months"] <= filters.age_max_months
    if filters.source:
        keep &= table["source"] == filters.source
    if filters.disorders:
        keep &= table["disorder"].isin(filters.disorders)
    if filters.genes:
        keep &= table["gene"].isin(filters.genes)
    return table[keep]
