"""The node's memory across restarts (SQLite): which films it has answered, and its counters.

A film sent twice (a PACS re-routing a study, a watcher seeing it again) is analysed once: it is
known by its SOP Instance UID, kept only as a SHA-256 digest so the ledger holds nothing a
patient could be traced by. Counters say what the node has done since it was first started.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

COUNTERS = ("received", "analysed", "refused", "duplicate", "sent", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS films (digest TEXT PRIMARY KEY, outcome TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def instance_digest(sop_instance_uid: str) -> str:
    return hashlib.sha256(sop_instance_uid.strip().encode()).hexdigest()


class Ledger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def seen(self, sop_instance_uid: str) -> str | None:
        """The outcome recorded for this film, or None if it has not been handled."""
        with self._lock:
            row = self._db.execute("SELECT outcome FROM films WHERE digest = ?", (instance_digest(sop_instance_uid),)).fetchone()
        return None if row is None else str(row[0])

    def record(self, sop_instance_uid: str, outcome: str, counter: str) -> None:
        """Remember the film's outcome and count it, in one transaction."""
        at = datetime.now(UTC).isoformat(timespec="seconds")
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO films VALUES (?, ?, ?)", (instance_digest(sop_instance_uid), outcome, at))
            self._bump(db, counter)

    def count(self, counter: str, by: int = 1) -> None:
        with self._transaction() as db:
            self._bump(db, counter, by)

    @staticmethod
    def _bump(db: sqlite3.Connection, counter: str, by: int = 1) -> None:
        if counter not in COUNTERS:
            raise ValueError(f"unknown counter {counter!r}")
        db.execute("INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?", (counter, by, by))

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return {name: int(rows.get(name, 0)) for name in COUNTERS}

    def close(self) -> None:
        with self._lock:
            self._db.close()
