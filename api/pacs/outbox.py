"""Answers waiting to be delivered, on disk: nothing is lost when the PACS is down or the node stops.

Each answer (the SR and the SC of one film) is a folder `outbox/<id>/` holding the DICOM files and
`job.json` (attempts, when to try next, the last error). A folder appears whole or not at all: it
is written under a temporary name, synced and renamed. A failed delivery waits, doubling from
`first_s` up to `max_s`; a delivered answer's folder is removed, since its files identify the
patient and belong in the PACS, not here.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import pydicom

from api.pacs.durable import fsync_dir, write_synced


@dataclass
class Job:
    job_id: str
    files: list[str]
    attempts: int = 0
    next_try: float = 0.0  # time.time() of the next attempt
    last_error: str | None = None


@dataclass(frozen=True)
class Backoff:
    first_s: float = 5.0
    max_s: float = 900.0

    def wait(self, attempts: int) -> float:
        return min(self.max_s, self.first_s * 2 ** max(attempts - 1, 0))


class Outbox:
    def __init__(self, root: Path, backoff: Backoff | None = None) -> None:
        self.root = root
        self.backoff = backoff or Backoff()
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-*"):  # a put the node died in: its answer was never queued
            shutil.rmtree(stale, ignore_errors=True)

    def put(self, datasets: list[pydicom.Dataset]) -> Job:
        """Queue `datasets` as one answer, durably; returns its job."""
        job = Job(uuid.uuid4().hex, [f"{i}.dcm" for i in range(len(datasets))])
        staging = self.root / f".tmp-{job.job_id}"
        staging.mkdir()
        for name, ds in zip(job.files, datasets, strict=True):
            buffer = pydicom.filebase.DicomBytesIO()
            pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
            write_synced(staging / name, buffer.getvalue())
        write_synced(staging / "job.json", json.dumps(asdict(job)).encode())
        fsync_dir(staging)
        staging.rename(self.root / job.job_id)
        fsync_dir(self.root)
        return job

    def jobs(self) -> list[Job]:
        """Every queued answer, oldest first."""
        found = []
        for folder in self.root.iterdir():
            if folder.name.startswith(".") or not (folder / "job.json").is_file():
                continue
            found.append((folder.stat().st_mtime, Job(**json.loads((folder / "job.json").read_text()))))
        return [job for _, job in sorted(found, key=lambda pair: pair[0])]

    def due(self, now: float | None = None) -> list[Job]:
        now = time.time() if now is None else now
        return [job for job in self.jobs() if job.next_try <= now]

    def files(self, job: Job) -> list[Path]:
        return [self.root / job.job_id / name for name in job.files]

    def datasets(self, job: Job) -> list[pydicom.Dataset]:
        return [pydicom.dcmread(path) for path in self.files(job)]

    def delivered(self, job: Job) -> None:
        shutil.rmtree(self.root / job.job_id)
        fsync_dir(self.root)

    def failed(self, job: Job, error: str, now: float | None = None) -> Job:
        """Record a failed attempt and when to try again (the job stays queued)."""
        job.attempts += 1
        job.last_error = error[:500]
        job.next_try = (time.time() if now is None else now) + self.backoff.wait(job.attempts)
        folder = self.root / job.job_id
        write_synced(folder / "job.json.tmp", json.dumps(asdict(job)).encode())
        (folder / "job.json.tmp").replace(folder / "job.json")
        fsync_dir(folder)
        return job

    def __len__(self) -> int:
        return len(self.jobs())
