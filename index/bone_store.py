"""The gallery's measured bones and the norms their pattern-profile z-scores are read against.

Each case's 19 tubular bones are stored in the film's pixels (`case_bones`, written with the
case by `index.cases` or later by `BoneStore.set_lengths`); z-scores are computed when read,
against the gallery's own norms (`bone2gene gallery norms --use`) or the bundled ones, so a
site can change its norms without measuring anything again.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd

from index import cases as case_rows
from index.database import GalleryDatabase
from index.locking import WriterLock
from matcher.bone_norms import BoneNorms, bundled_norms


class BoneStore:
    def __init__(self, db: GalleryDatabase, writer: WriterLock) -> None:
        self.db, self._writer = db, writer
        self._cache: tuple[int, pd.DataFrame] | None = None

    def lengths(self) -> pd.DataFrame:
        """The measured bones of every measured case: index `row` (as in `Gallery.cases()`), one column
        per bone in `matcher.hand_scheme.BONE_NAMES` order, NaN where not found (cached per generation)."""
        with self.db.lock:
            generation = self.db.generation
            if self._cache is None or self._cache[0] != generation:
                self._cache = (generation, case_rows.bone_table(self.db))
            return self._cache[1].copy()

    def set_lengths(self, measured: dict[int, np.ndarray], actor: str | None = None) -> None:
        """Store bones measured after the cases were added (case row -> 19 lengths), in one write."""
        with self._writer:
            self.db.transaction(case_rows.set_bones_work(measured), "measure_bones", {"cases": len(measured), "actor": actor})

    def norms(self) -> BoneNorms:
        """The norms the gallery's z-scores are read against: its own, else the bundled ones."""
        stored = self.db.query("SELECT document FROM bone_norms WHERE id = 1")
        return BoneNorms.from_json(json.loads(stored[0][0])) if stored else bundled_norms()

    def set_norms(self, norms: BoneNorms | None, actor: str | None = None) -> None:
        """Use a site's own norms (`bone2gene norms fit`) from now on; None: back to the bundled ones."""

        def work(db: sqlite3.Connection, _: int) -> None:
            db.execute("DELETE FROM bone_norms")
            if norms is not None:
                db.execute("INSERT INTO bone_norms VALUES (1, ?)", (json.dumps(norms.to_json()),))

        with self._writer:
            self.db.transaction(work, "set_norms", {"population": None if norms is None else norms.population, "actor": actor})
