"""Whole-gallery operations that move every case at once: snapshots out and in, and the
vector swap of re-embedding with a new model.

A snapshot is a .tar of a consistent database copy and the content-addressed images; an
import checks the database and every image against its digest before the new gallery
directory appears. Re-embedding replaces every vector and the model fingerprint in one
transaction and bumps the index epoch (older index files become stale).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from index.database import DB_NAME, GalleryDatabase, GalleryError
from index.images import ImageStore

Embed = Callable[[list[tuple[np.ndarray, str]]], np.ndarray]


def write_snapshot(db: GalleryDatabase, images: ImageStore, target: Path) -> Path:
    """Write the .tar (call under the writer lock, so no image changes meanwhile)."""
    target = Path(target)
    if target.exists():
        raise GalleryError(f"{target} exists; choose a new file name for the snapshot")
    with tempfile.TemporaryDirectory(dir=target.parent if target.parent.exists() else None) as tmp:
        copy = Path(tmp) / DB_NAME
        db.backup_to(copy)
        partial = target.with_name(target.name + ".partial")
        with tarfile.open(partial, "w") as tar:
            tar.add(copy, arcname=DB_NAME)
            for digest in sorted(images.digests()):
                tar.add(images.path_of(digest), arcname=f"images/{digest[:2]}/{digest}.png")
        os.replace(partial, target)
    return target


def unpack_snapshot(snapshot: Path, path: Path) -> None:
    """Unpack into the new directory `path`, checking the database and every image; nothing appears on failure."""
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


def embed_stored(table: pd.DataFrame, images: ImageStore, embed: Embed, embedding_dim: int) -> np.ndarray:
    """The new model's vectors for every case of `table` (`Gallery.cases()`), from the stored images."""
    if table["image_sha256"].isna().any():
        missing = table.loc[table["image_sha256"].isna(), "case_id"].tolist()
        raise GalleryError(
            f"{len(missing)} case(s) have no stored image (e.g. {missing[0]!r}) and cannot be re-embedded; remove them first"
        )
    pixels = [(images.get(d), s) for d, s in zip(table["image_sha256"], table["sex"], strict=True)]
    vectors = np.asarray(embed(pixels), dtype=np.float32) if pixels else np.zeros((0, embedding_dim), np.float32)
    if vectors.shape != (len(table), embedding_dim):
        raise GalleryError(f"the new model returned {vectors.shape} vectors for {len(table)} cases")
    return vectors


def swap_vectors(db: GalleryDatabase, rows: np.ndarray, vectors: np.ndarray, model_fingerprint: str, embedding_dim: int) -> None:
    """Every vector, the fingerprint and the width replaced in one transaction; the index epoch bumped."""

    def work(connection: sqlite3.Connection, _: int) -> None:
        connection.execute("DELETE FROM embeddings")
        connection.executemany("INSERT INTO embeddings VALUES (?, ?)", [(int(r), v.tobytes()) for r, v in zip(rows, vectors, strict=True)])
        epoch = int(connection.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]) + 1
        for key, value in (("model_fingerprint", model_fingerprint), ("embedding_dim", str(embedding_dim)), ("epoch", str(epoch))):
            connection.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
        connection.execute("DELETE FROM calibration")

    old = db.meta("model_fingerprint")
    db.transaction(work, "reembed", {"from": old, "to": model_fingerprint, "cases": len(rows)})
