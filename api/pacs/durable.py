"""Writes that survive a crash or a power cut: the file's bytes synced, then its directory entry."""

from __future__ import annotations

import os
from pathlib import Path

from index.images import fsync_dir

__all__ = ["fsync_dir", "write_synced"]


def write_synced(path: Path, data: bytes) -> None:
    """Write `data` to `path` and sync it to disk before returning."""
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
