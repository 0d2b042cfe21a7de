"""Films received but not yet analysed, on disk: a film acknowledged to the sender is never lost.

The SCP answers a C-STORE as soon as the object is durably here (an analysis takes seconds, a
sender waits for none of it); the node's worker then takes the oldest file first. A file appears
whole or not at all (written under a temporary name, synced, renamed); it is removed once handled.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from api.pacs.durable import fsync_dir, write_synced


class Inbox:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-*"):  # a write the node died in: never acknowledged to its sender
            stale.unlink(missing_ok=True)

    def put(self, encoded: bytes, origin: str) -> Path:
        """Keep one received object durably; returns its file."""
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}-{_safe(origin)}.dcm"
        staging = self.root / f".tmp-{name}"
        write_synced(staging, encoded)
        target = self.root / name
        staging.rename(target)
        fsync_dir(self.root)
        return target

    def pending(self) -> list[Path]:
        """Files waiting, oldest first."""
        return sorted(p for p in self.root.glob("*.dcm") if not p.name.startswith("."))

    @staticmethod
    def origin_of(path: Path) -> str:
        return path.stem.split("-", 2)[-1]

    @property
    def quarantine(self) -> Path:
        return self.root.parent / "failed"

    def set_aside(self, path: Path) -> None:
        """Keep a film the node failed on (kept on this machine only, for the administrator)."""
        self.quarantine.mkdir(exist_ok=True)
        path.replace(self.quarantine / path.name)
        fsync_dir(self.root)

    def done(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        fsync_dir(self.root)

    def __len__(self) -> int:
        return len(self.pending())


def _safe(origin: str) -> str:
    return "".join(c if c.isalnum() or c in "_." else "_" for c in origin)[:40] or "unknown"
