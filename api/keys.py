"""API keys: random secrets shown once, stored only as SHA-256 hashes, each with one role.

Roles are ordered: reader (query) < curator (add/remove cases and disorders) < admin.
Keys are high-entropy random strings, so a plain SHA-256 is enough (no password
stretching needed); comparison happens on the hash in SQL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Role = Literal["reader", "curator", "admin"]
ROLES: tuple[Role, ...] = ("reader", "curator", "admin")
PREFIX = "b2g_"


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    role: Role
    label: str
    created: str


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def role_allows(held: Role, needed: Role) -> bool:
    return ROLES.index(held) >= ROLES.index(needed)


class KeyStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS keys(key_id TEXT PRIMARY KEY, hash TEXT UNIQUE NOT NULL, role TEXT NOT NULL,"
                " label TEXT NOT NULL, created TEXT NOT NULL, revoked TEXT)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def create(self, role: Role, label: str = "") -> tuple[str, KeyInfo]:
        """A new key; the secret is returned once and never stored."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        key = PREFIX + secrets.token_urlsafe(32)
        info = KeyInfo(secrets.token_hex(4), role, label, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        with self._connect() as db:
            db.execute("INSERT INTO keys VALUES (?, ?, ?, ?, ?, NULL)", (info.key_id, _hash(key), role, label, info.created))
        return key, info

    def verify(self, key: str) -> KeyInfo | None:
        if not key.startswith(PREFIX) or len(key) > 200:
            return None
        with self._connect() as db:
            row = db.execute("SELECT key_id, role, label, created FROM keys WHERE hash = ? AND revoked IS NULL", (_hash(key),)).fetchone()
        return KeyInfo(*row) if row else None

    def list(self) -> list[KeyInfo]:
        with self._connect() as db:
            rows = db.execute("SELECT key_id, role, label, created FROM keys WHERE revoked IS NULL ORDER BY created").fetchall()
        return [KeyInfo(*r) for r in rows]

    def revoke(self, key_id: str) -> bool:
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE keys SET revoked = ? WHERE key_id = ? AND revoked IS NULL",
                (dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), key_id),
            )
        return cursor.rowcount == 1
