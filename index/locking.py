"""An exclusive writer lock across processes and threads (filelock's `flock` on a file in the gallery).

The kernel drops an `flock` when its holder dies, even by `kill -9`, so a crashed writer
never leaves the gallery locked. Each thread takes the lock through its own file handle
(filelock's thread-local mode), so two threads of one process also serialise. Readers take
no lock: SQLite's WAL mode gives them a consistent snapshot while a writer works.
"""

from __future__ import annotations

from pathlib import Path

import filelock

from matcher.errors import Bone2GeneError


class LockTimeout(Bone2GeneError, TimeoutError):
    """Another writer held the gallery longer than we were willing to wait."""

    http_status = 503
    title = "Busy"


class WriterLock:
    """`with WriterLock(path):` serialises writers of one gallery, across threads and processes."""

    def __init__(self, path: Path, timeout_s: float = 120.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._lock = filelock.FileLock(path, timeout=timeout_s, thread_local=True, is_singleton=False)

    def __enter__(self) -> WriterLock:
        try:
            self._lock.acquire(poll_interval=0.01)
        except filelock.Timeout:
            raise LockTimeout(f"another writer holds the gallery's writer lock {self.path} (waited {self.timeout_s:.0f} s)") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
