"""Crash safety and concurrency of the gallery, with real processes.

- kill -9 at random instants during repeated batch adds and removals (60 times, half of
  them with the deferred index saves of a large gallery): metadata, vectors and images stay
  consistent and every acknowledged case is kept;
- two writer processes at once: serialised by the file lock, nothing lost;
- a reader keeps answering while a writer adds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from index.catalogue import Disorder
from index.store import Gallery

REPO = Path(__file__).resolve().parents[1]
DIM = 8

WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from index.store import Gallery, IndexSavePolicy, NewCase
    path, tag, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
    g = Gallery.open(path)
    if len(sys.argv) > 4:  # a large gallery's policy: the index file lags behind SQLite
        g.save_policy = IndexSavePolicy(always_below_vectors=0, max_unsaved_fraction=float(sys.argv[4]))
    rng = np.random.default_rng([ord(c) for c in tag])
    print("OPEN", flush=True)
    for b in range(batches):
        cases = []
        for i in range(4):
            v = rng.normal(size=__DIM__).astype(np.float32); v /= np.linalg.norm(v)
            cases.append(NewCase(v, "F", 60.0, "d0", case_id=f"{tag}-{b}-{i}",
                                 pixels=rng.integers(0, 255, (16, 16)).astype(np.uint8)))
        ids = g.add_cases(cases, "fp")
        print("ACK", " ".join(ids), flush=True)
        if b % 3 == 2:
            print("REMOVING", ids[0], flush=True)
            g.remove_case(ids[0])
            print("DEL", ids[0], flush=True)
    """
).replace("__DIM__", str(DIM))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _new_gallery(path: Path) -> None:
    g = Gallery.create(path, "fp", DIM)
    g.add_disorders([Disorder(id="d0", name="Test dysplasia, ABC-related")])
    g.close()


def _record(out: str, acknowledged: set[str], deleted: set[str], removing: set[str]) -> None:
    for line in out.splitlines():
        kind, *ids = line.split()
        {"ACK": acknowledged, "DEL": deleted, "REMOVING": removing, "OPEN": set()}[kind].update(ids)


def _check_consistent(path: Path, acknowledged: set[str], deleted: set[str], removing: set[str] = frozenset()) -> int:
    """`removing`: removals that started but were not acknowledged; either outcome is fine."""
    g = Gallery.open(path)  # catches up from SQLite on open
    rows = set(g.cases()["row"].tolist())
    assert set(g.vectors.ids().tolist()) == rows and g.vectors.ntotal == len(rows)
    g.recover()  # what the next writer does
    table = g.cases()
    ids = set(table["case_id"])
    kept = acknowledged - deleted - set(removing)
    assert kept <= ids, f"lost acknowledged cases: {sorted(kept - ids)[:5]}"
    assert not (deleted & ids), "a case whose removal was acknowledged came back"
    rows = set(table["row"].tolist())
    assert set(g.vectors.ids().tolist()) == rows and g.vectors.ntotal == len(rows)
    assert len(g.vectors_of(sorted(rows))) == len(rows)
    referenced = set(table["image_sha256"].dropna())
    assert g.images.digests() == referenced, "orphan or missing images"
    assert not list(path.glob("images/??/*.tmp"))
    g.close()
    return len(ids)


@pytest.mark.parametrize("attempts", [pytest.param(5, id="5-kills"), pytest.param(60, id="60-kills", marks=pytest.mark.slow)])
def test_kill_minus_nine_at_random_instants_keeps_the_gallery_consistent(tmp_path: Path, attempts: int) -> None:
    """Each kill lands at a random instant of a writer's work; 8 in the default suite, 60 with -m slow."""
    path = tmp_path / "g"
    _new_gallery(path)
    rng = np.random.default_rng(2026)
    acknowledged: set[str] = set()
    deleted: set[str] = set()
    removing: set[str] = set()
    kills = 0
    for attempt in range(attempts):
        policy = ["0.3"] if attempt % 2 else []
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"w{attempt}", "1000", *policy],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "OPEN", proc.stderr.read() if proc.stderr else ""
        time.sleep(float(rng.uniform(0.0, 0.25)))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        kills += proc.returncode == -signal.SIGKILL
        _record(out, acknowledged, deleted, removing)
        _check_consistent(path, acknowledged, deleted, removing)
    assert kills == attempts
    assert len(acknowledged) > attempts  # the writers got real work done between kills


def test_concurrent_writers_are_serialised(tmp_path: Path) -> None:
    path = tmp_path / "g"
    _new_gallery(path)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, "12"], stdout=subprocess.PIPE, text=True, env=_env())
        for tag in ("a", "b")
    ]
    acknowledged, deleted, removing = set(), set(), set()
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        _record(out, acknowledged, deleted, removing)
    assert len(acknowledged) == 2 * 12 * 4 and len(deleted) == 2 * 4
    assert _check_consistent(path, acknowledged, deleted) == 2 * 12 * 4 - 2 * 4


@pytest.mark.timeout(300)
def _committed_counts(batches: int) -> list[int]:
    """The case counts the WRITER script passes through, in order (4 added per batch, one removed every third)."""
    counts, count = [0], 0
    for b in range(batches):
        count += 4
        counts.append(count)
        if b % 3 == 2:
            count -= 1
            counts.append(count)
    return counts


def test_reader_keeps_answering_during_writes(tmp_path: Path) -> None:
    path = tmp_path / "g"
    _new_gallery(path)
    reader = Gallery.open(path)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "r", "25"], stdout=subprocess.PIPE, text=True, env=_env())
    seen = []
    query = np.ones(DIM, np.float32) / np.sqrt(DIM)
    while writer.poll() is None:
        seen.append(len(reader.search(query, 500)))
    writer.communicate()
    states = {count: i for i, count in enumerate(_committed_counts(25))}  # every count is reached once
    assert writer.returncode == 0 and len(seen) > 5
    assert set(seen) <= set(states), f"the reader saw states no commit produced: {sorted(set(seen) - set(states))}"
    order = [states[count] for count in seen]
    assert order == sorted(order), "the reader went back to an older state"
    assert len(set(seen)) >= 3, f"the reader did not follow the writes as they happened (saw only {sorted(set(seen))})"
    assert len(reader.search(query, 500)) == _committed_counts(25)[-1] == 25 * 4 - 8
    reader.close()
