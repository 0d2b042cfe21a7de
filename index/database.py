"""The gallery's SQLite file: the schema, the meta table, and every write as one audited transaction.

SQLite (WAL, synchronous=FULL) is the gallery's truth. One connection is shared by the
threads of a process under a re-entrant lock; a write is one IMMEDIATE transaction that
also bumps `generation` and appends its audit row, so readers see all of it or none.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from matcher.errors import Bone2GeneError

FORMAT_VERSION = "1"
DB_NAME = "gallery.sqlite"
# Tables added after format 1 was released: created when an older gallery is opened (nothing
# in it changes; the new tables start empty), so the format version stays readable both ways.
ADDED_TABLES = {
    "disorder_phenotypes": "disorder_id TEXT NOT NULL REFERENCES disorders(id), term TEXT NOT NULL, PRIMARY KEY(disorder_id, term)",
    "case_phenotypes": (
        "case_row INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE, term TEXT NOT NULL,"
        " excluded INTEGER NOT NULL DEFAULT 0 CHECK(excluded IN (0, 1)), PRIMARY KEY(case_row, term)"
    ),
    # each case's measured tubular bones (`matcher.hand_scheme.BONE_NAMES`), in the film's pixels; a bone not found has no row
    "case_bones": (
        "case_row INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE, bone TEXT NOT NULL,"
        " length_px REAL NOT NULL CHECK(length_px > 0), PRIMARY KEY(case_row, bone)"
    ),
    # the pattern-profile norms the gallery's z-scores are read against (none: the bundled norms)
    "bone_norms": "id INTEGER PRIMARY KEY CHECK(id = 1), document TEXT NOT NULL",
}
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
""" + "\n".join(f"CREATE TABLE IF NOT EXISTS {name}({columns});" for name, columns in ADDED_TABLES.items())


class GalleryError(Bone2GeneError, ValueError):
    """A request the gallery refuses; the message says what was wrong and what to do."""


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


def create_database(path: Path, meta: dict[str, str], detail: dict) -> None:
    """Write a new database with its meta rows and the 'create' audit row; it appears only once complete."""
    tmp_db = path / f".{DB_NAME}.tmp"
    db = sqlite3.connect(tmp_db, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(SCHEMA)
    db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
    db.execute("INSERT INTO audit(at, actor, action, detail) VALUES (?, ?, 'create', ?)", (now(), actor(), json.dumps(detail)))
    db.close()
    os.replace(tmp_db, path / DB_NAME)


def read_meta(path: Path) -> dict[str, str]:
    """The meta table of the gallery at `path`, read-only; refuses what is not a gallery of our format."""
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
    return meta


Work = Callable[[sqlite3.Connection, int], object]


class GalleryDatabase:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path / DB_NAME, timeout=60, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA synchronous = FULL")
        self.lock = threading.RLock()  # hold it across several statements that must see one state
        self._add_missing_tables()

    def _add_missing_tables(self) -> None:
        present = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for name, columns in ADDED_TABLES.items():
            if name not in present:
                self._db.execute(f"CREATE TABLE IF NOT EXISTS {name}({columns})")

    def close(self) -> None:
        with self.lock:
            self._db.close()

    def meta(self, key: str) -> str:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        if not rows:
            raise GalleryError(f"gallery metadata {key!r} is missing; the database is damaged")
        return rows[0][0]

    @property
    def generation(self) -> int:
        return int(self.meta("generation"))

    @property
    def epoch(self) -> int:
        """Bumped when every vector is replaced (re-embedding): index files of older epochs are stale."""
        return int(self.meta("epoch"))

    def query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self.lock:
            return self._db.execute(sql, params).fetchall()

    def query_with_names(self, sql: str, params: Sequence = ()) -> tuple[list[str], list[tuple]]:
        with self.lock:
            cursor = self._db.execute(sql, params)
            return [d[0] for d in cursor.description], cursor.fetchall()

    def execute(self, sql: str, params: Sequence = ()) -> None:
        """One statement outside a transaction (autocommit): bookkeeping that is not a gallery change."""
        with self.lock:
            self._db.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> None:
        with self.lock:
            self._db.executemany(sql, rows)

    def read_table(self, sql: str):
        import pandas as pd

        with self.lock:
            return pd.read_sql_query(sql, self._db)

    def transaction(self, work: Work, action: str, detail: dict) -> tuple[object, int]:
        """Run `work(db, new_generation)` in one IMMEDIATE transaction with the audit row."""
        with self.lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                generation = int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]) + 1
                result = work(db, generation)
                db.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(generation),))
                db.execute(
                    "INSERT INTO audit(at, actor, action, detail) VALUES (?, ?, ?, ?)",
                    (now(), actor(), action, json.dumps(detail, default=str)),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return result, generation

    def audit_log(self, limit: int = 100) -> list[dict]:
        rows = self.query("SELECT seq, at, actor, action, detail FROM audit ORDER BY seq DESC LIMIT ?", (limit,))
        return [{"seq": r[0], "at": r[1], "actor": r[2], "action": r[3], "detail": json.loads(r[4])} for r in rows]

    def stored_calibration(self) -> tuple[int, dict] | None:
        rows = self.query("SELECT generation, document FROM calibration WHERE id = 1")
        return (int(rows[0][0]), json.loads(rows[0][1])) if rows else None

    def store_calibration(self, document: dict) -> None:
        """Kept with the generation it was computed at (bookkeeping, not a gallery change); under the writer lock."""
        with self.lock:
            self.execute("INSERT OR REPLACE INTO calibration VALUES (1, ?, ?)", (self.generation, json.dumps(document)))

    def backup_to(self, target: Path) -> None:
        """A consistent copy of the database (SQLite's online backup)."""
        with self.lock:
            backup = sqlite3.connect(target)
            self._db.backup(backup)
            backup.close()
