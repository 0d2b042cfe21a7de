"""An exclusive writer lock across processes (POSIX `flock` on a file in the gallery).

The kernel drops an `flock` when its holder dies, even by `kill -9`, so a crashed writer
never leaves the gallery locked. Readers take no lock: SQLite's WAL mode gives them a
consistent snapshot while a writer works.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path


class LockTimeout(TimeoutError):
    """Another writer held the gallery longer than we were willing to wait."""


class WriterLock:
    """`with WriterLock(path):` serialises writers of one gallery, across threads and processes."""

    _thread_locks: dict[str, threading.Lock] = {}
    _guard = threading.Lock()

    def __init__(self, path: Path, timeout_s: float = 120.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        with self._guard:
            self._thread_lock = self._thread_locks.setdefault(str(path.resolve()), threading.Lock())
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        if not self._thread_lock.acquire(timeout=self.timeout_s):
            raise LockTimeout(f"another writer in this process holds {self.path} (waited {self.timeout_s:.0f} s)")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    self._thread_lock.release()
                    raise LockTimeout(f"another process holds the gallery's writer lock {self.path} (waited {self.timeout_s:.0f} s)") from None
                time.sleep(0.01)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        self._thread_lock.release()
