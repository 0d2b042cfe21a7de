"""The gallery's disorder catalogue: disorders with their genes and HPO annotations, names resolved to ids."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import numpy as np

from index.catalogue import Disorder
from index.database import GalleryDatabase, GalleryError, now
from index.hpo import resolve_terms


def _insert(db: sqlite3.Connection, d: Disorder, replace: bool) -> None:
    exists = db.execute("SELECT 1 FROM disorders WHERE id = ?", (d.id,)).fetchone()
    if exists and not replace:
        raise GalleryError(f"disorder {d.id!r} is already in the catalogue")
    taken = db.execute("SELECT id FROM disorders WHERE lower(name) = lower(?) AND id != ?", (d.name, d.id)).fetchone()
    if taken:
        raise GalleryError(f"the name {d.name!r} is already used by disorder {taken[0]!r}")
    db.execute(
        "INSERT OR REPLACE INTO disorders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (d.id, d.name, d.category, d.omim, d.orpha, d.mondo, d.nosology_group, d.nosology_revision, now()),
    )
    db.execute("DELETE FROM disorder_genes WHERE disorder_id = ?", (d.id,))
    for gene in d.genes:
        db.execute("INSERT OR IGNORE INTO genes VALUES (?)", (gene,))
        db.execute("INSERT INTO disorder_genes VALUES (?, ?)", (d.id, gene))
    db.execute("DELETE FROM disorder_phenotypes WHERE disorder_id = ?", (d.id,))
    db.executemany("INSERT INTO disorder_phenotypes VALUES (?, ?)", [(d.id, term) for term in d.phenotypes])


class CatalogueStore:
    def __init__(self, db: GalleryDatabase) -> None:
        self.db = db

    def add(self, disorders: Iterable[Disorder], replace: bool = False) -> int:
        """Add entries in one transaction (refusing ids that exist unless `replace`); call under the writer lock."""
        items = list(disorders)
        for d in items:
            if d.phenotypes:
                resolve_terms(d.phenotypes)  # unknown or obsolete HPO ids are refused before anything is written

        def work(db: sqlite3.Connection, _: int) -> int:
            for d in items:
                _insert(db, d, replace)
            return len(items)

        count, _ = self.db.transaction(work, "add_disorders", {"ids": [d.id for d in items]})
        return int(count)  # type: ignore[arg-type]

    def all(self) -> list[Disorder]:
        return self._read("", ())

    def get(self, disorder_id: str) -> Disorder | None:
        """One entry by its id; None when the catalogue has no such id."""
        found = self._read("WHERE {column} = ?", (disorder_id,))
        return found[0] if found else None

    def _read(self, where: str, params: tuple) -> list[Disorder]:
        """Entries with their genes and HPO terms; `where` names the id column as {column}."""
        genes: dict[str, list[str]] = {}
        for disorder_id, gene in self.db.query(
            f"SELECT disorder_id, gene FROM disorder_genes {where.format(column='disorder_id')}", params
        ):
            genes.setdefault(disorder_id, []).append(gene)
        phenotypes: dict[str, list[str]] = {}
        for disorder_id, term in self.db.query(
            f"SELECT disorder_id, term FROM disorder_phenotypes {where.format(column='disorder_id')}", params
        ):
            phenotypes.setdefault(disorder_id, []).append(term)
        rows = self.db.query(
            f"SELECT id, name, category, omim, orpha, mondo, nosology_group, nosology_revision FROM disorders {where.format(column='id')} ORDER BY id",
            params,
        )
        return [
            Disorder(
                id=r[0],
                name=r[1],
                category=r[2],
                genes=genes.get(r[0], []),
                omim=r[3],
                orpha=r[4],
                mondo=r[5],
                nosology_group=r[6],
                nosology_revision=r[7],
                phenotypes=phenotypes.get(r[0], []),
            )
            for r in rows
        ]

    def count(self) -> int:
        return int(self.db.query("SELECT COUNT(*) FROM disorders")[0][0])

    def resolve(self, label: str | None, db: sqlite3.Connection | None = None) -> str | None:
        """A catalogue id from an id or a name (case-insensitive); None for undiagnosed. `db`: inside a transaction."""
        if label is None or (isinstance(label, float) and np.isnan(label)) or str(label).strip() == "":
            return None
        label = str(label).strip()
        sql = "SELECT id FROM disorders WHERE id = ? OR lower(name) = lower(?)"
        row = db.execute(sql, (label, label)).fetchone() if db is not None else (self.db.query(sql, (label, label)) or [None])[0]
        if row is None:
            raise GalleryError(
                f"disorder {label!r} is not in the catalogue; add it first (`bone2gene disorders add`) or check the spelling"
            )
        return row[0]
