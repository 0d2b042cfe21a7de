"""Case rows: checking new cases, and the SQL of adding, removing and relabelling them.

Each `*_work` function is the body of one gallery transaction (`GalleryDatabase.transaction`);
`Gallery` runs them under the writer lock. Image files are written before the transaction
that references them; an image whose case is deleted is listed in `pending_image_deletions`
in the deleting transaction and removed after the commit by `sweep_images`, or by the next
writer if we crashed in between; orphans of an add that never committed go the same way.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from index.catalogue_store import CatalogueStore
from index.database import GalleryDatabase, GalleryError, now
from index.images import ImageStore

_TERMS = (
    "(SELECT group_concat(term, ';') FROM (SELECT term FROM case_phenotypes p WHERE p.case_row = c.id AND p.excluded = {} ORDER BY term))"
)
CASE_SELECT = (
    "SELECT c.id AS row, c.case_id, c.patient_id, c.sex, c.age_months, c.disorder_id AS disorder, d.name AS disorder_name,"
    f" c.gene, c.bone_age_months, c.source, c.image_sha256, c.added, {_TERMS.format(0)} AS hpo, {_TERMS.format(1)} AS hpo_excluded"
    " FROM cases c LEFT JOIN disorders d ON d.id = c.disorder_id"
)  # hpo / hpo_excluded: the observed and excluded HPO ids, ';'-separated (None: none recorded)


@dataclass
class NewCase:
    """A confirmed case to add. `embedding` must come from the gallery's model."""

    embedding: np.ndarray
    sex: str
    age_months: float
    disorder: str | None = None  # catalogue id or exact name; None = undiagnosed
    gene: str | None = None
    patient_id: str | None = None
    case_id: str | None = None  # a pseudonym; invented when missing
    bone_age_months: float | None = None
    source: str = ""
    pixels: np.ndarray | None = None  # stored for re-embedding (pixels only)
    phenotypes: Sequence[str] = ()  # HPO ids observed in the patient
    excluded_phenotypes: Sequence[str] = ()  # HPO ids looked for and absent
    bone_lengths: np.ndarray | None = None  # (19,) the measured tubular bones in the film's pixels, NaN where not found


def checked_phenotypes(cases: Sequence[NewCase]) -> list[tuple[list[str], list[str]]]:
    """Each case's (observed, excluded) HPO ids, resolved against the ontology (`index.hpo`):
    unknown and obsolete ids are refused, as is a term both observed and excluded."""
    from index.hpo import PhenotypeError, resolve_terms

    result = []
    for i, case in enumerate(cases):
        if not case.phenotypes and not case.excluded_phenotypes:
            result.append(([], []))
            continue
        try:
            observed = [t.id for t in resolve_terms(case.phenotypes)]
            excluded = [t.id for t in resolve_terms(case.excluded_phenotypes)]
        except PhenotypeError as exc:
            raise PhenotypeError(f"case {case.case_id or i}: {exc}") from None
        both = sorted(set(observed) & set(excluded))
        if both:
            raise PhenotypeError(f"case {case.case_id or i}: {', '.join(both)} both observed and excluded; keep one")
        result.append((observed, excluded))
    return result


def checked_vectors(cases: Sequence[NewCase], dim: int) -> list[np.ndarray]:
    """Each case's embedding as float32, after checking every field a row needs."""
    vectors = []
    for i, case in enumerate(cases):
        vector = np.asarray(case.embedding, dtype=np.float32).reshape(-1)
        if vector.shape != (dim,) or not np.all(np.isfinite(vector)):
            raise GalleryError(f"case {i}: the embedding must be {dim} finite numbers")
        norm = float(np.linalg.norm(vector))
        if not 0.99 < norm < 1.01:
            raise GalleryError(f"case {i}: the embedding must have unit length (has {norm:.3f})")
        if case.sex not in ("M", "F"):
            raise GalleryError(f"case {i}: sex must be M or F, not {case.sex!r}")
        if not (0 <= float(case.age_months) <= 1200):
            raise GalleryError(f"case {i}: age_months must be between 0 and 1200, not {case.age_months}")
        vectors.append(vector)
    return vectors


def checked_bone_rows(cases: Sequence[NewCase]) -> list[list[tuple[str, float]]]:
    """Each case's measured bones as (bone, length) rows (`bone_rows`)."""
    return [[] if c.bone_lengths is None else bone_rows(c.bone_lengths, c.case_id or str(i)) for i, c in enumerate(cases)]


def bone_rows(lengths: np.ndarray, case: str) -> list[tuple[str, float]]:
    """One case's 19 lengths as (bone, length) rows for the found bones; refuses lengths that are not
    19 numbers, positive where found (NaN: not found)."""
    from matcher.hand_scheme import BONE_NAMES

    values = np.asarray(lengths, dtype=float).reshape(-1)
    if values.shape != (len(BONE_NAMES),) or np.any(values[np.isfinite(values)] <= 0) or np.any(np.isinf(values)):
        raise GalleryError(f"case {case}: bone lengths must be {len(BONE_NAMES)} positive numbers (NaN where not found)")
    return [(name, float(v)) for name, v in zip(BONE_NAMES, values, strict=True) if np.isfinite(v)]


def case_ids_for(cases: Sequence[NewCase]) -> list[str]:
    case_ids = [c.case_id or f"case-{uuid.uuid4().hex[:12]}" for c in cases]
    if len(set(case_ids)) != len(case_ids):
        raise GalleryError("case ids within one batch must be unique")
    return case_ids


def _gene_symbol(db: sqlite3.Connection, gene: object) -> str | None:
    symbol = gene.strip().upper() if isinstance(gene, str) and gene.strip() else None
    if symbol:
        db.execute("INSERT OR IGNORE INTO genes VALUES (?)", (symbol,))
    return symbol


def insert_work(
    cases: Sequence[NewCase], vectors: list[np.ndarray], case_ids: list[str], digests: dict[int, str], catalogue: CatalogueStore
) -> Callable[[sqlite3.Connection, int], None]:
    phenotypes = checked_phenotypes(cases)  # before the transaction: nothing is written when one is wrong
    bones = checked_bone_rows(cases)

    def work(db: sqlite3.Connection, generation: int) -> None:
        for case, vector, case_id, (observed, excluded), measured in zip(cases, vectors, case_ids, phenotypes, bones, strict=True):
            if db.execute("SELECT 1 FROM cases WHERE case_id = ?", (case_id,)).fetchone():
                raise GalleryError(f"case {case_id!r} is already in the gallery; relabel it or choose another id")
            bone_age = None if case.bone_age_months is None or np.isnan(case.bone_age_months) else float(case.bone_age_months)
            cursor = db.execute(
                "INSERT INTO cases(case_id, patient_id, sex, age_months, disorder_id, gene, bone_age_months, source, image_sha256, added,"
                " added_generation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    case_id,
                    case.patient_id or case_id,
                    case.sex,
                    float(case.age_months),
                    catalogue.resolve(case.disorder, db),
                    _gene_symbol(db, case.gene),
                    bone_age,
                    case.source or "",
                    digests.get(id(case)),
                    now(),
                    generation,
                ),
            )
            db.execute("INSERT INTO embeddings VALUES (?, ?)", (cursor.lastrowid, vector.tobytes()))
            terms = [(cursor.lastrowid, t, 0) for t in observed] + [(cursor.lastrowid, t, 1) for t in excluded]
            db.executemany("INSERT INTO case_phenotypes VALUES (?, ?, ?)", terms)
            db.executemany("INSERT INTO case_bones VALUES (?, ?, ?)", [(cursor.lastrowid, bone, length) for bone, length in measured])

    return work


def remove_work(case_id: str) -> Callable[[sqlite3.Connection, int], None]:
    def work(db: sqlite3.Connection, generation: int) -> None:
        row = db.execute("SELECT id, image_sha256 FROM cases WHERE case_id = ?", (case_id,)).fetchone()
        if row is None:
            raise GalleryError(f"no case {case_id!r} in the gallery")
        db.execute("DELETE FROM embeddings WHERE case_row = ?", (row[0],))
        db.execute("DELETE FROM case_phenotypes WHERE case_row = ?", (row[0],))
        db.execute("DELETE FROM case_bones WHERE case_row = ?", (row[0],))
        db.execute("DELETE FROM cases WHERE id = ?", (row[0],))
        db.execute("INSERT OR REPLACE INTO removed VALUES (?, ?)", (row[0], generation))
        if row[1]:
            db.execute("INSERT OR IGNORE INTO pending_image_deletions VALUES (?)", (row[1],))

    return work


def relabel_work(
    case_id: str, disorder: str | None, gene: str | None, catalogue: CatalogueStore
) -> Callable[[sqlite3.Connection, int], None]:
    def work(db: sqlite3.Connection, _: int) -> None:
        if not db.execute("SELECT 1 FROM cases WHERE case_id = ?", (case_id,)).fetchone():
            raise GalleryError(f"no case {case_id!r} in the gallery")
        resolved = catalogue.resolve(disorder, db)
        db.execute("UPDATE cases SET disorder_id = ?, gene = ? WHERE case_id = ?", (resolved, _gene_symbol(db, gene), case_id))

    return work


def set_bones_work(measured: dict[int, np.ndarray]) -> Callable[[sqlite3.Connection, int], None]:
    """Store bone lengths measured after the cases were added (`BoneStore.set_lengths`), replacing any."""
    rows = {case_row: bone_rows(lengths, f"row {case_row}") for case_row, lengths in measured.items()}

    def work(db: sqlite3.Connection, _: int) -> None:
        for case_row, bones in rows.items():
            if not db.execute("SELECT 1 FROM cases WHERE id = ?", (case_row,)).fetchone():
                raise GalleryError(f"no case row {case_row} in the gallery (removed meanwhile?); measure again")
            db.execute("DELETE FROM case_bones WHERE case_row = ?", (case_row,))
            db.executemany("INSERT INTO case_bones VALUES (?, ?, ?)", [(case_row, bone, length) for bone, length in bones])

    return work


def bone_table(db: GalleryDatabase) -> pd.DataFrame:
    """Every measured case's bone lengths: one row per case row (index `row`), one column per bone (NaN: not found)."""
    from matcher.hand_scheme import BONE_NAMES

    table = db.read_table("SELECT case_row AS row, bone, length_px FROM case_bones")
    wide = table.pivot(index="row", columns="bone", values="length_px") if len(table) else pd.DataFrame(index=pd.Index([], name="row"))
    return wide.reindex(columns=list(BONE_NAMES)).astype(float)


def sweep_images(db: GalleryDatabase, images: ImageStore) -> None:
    """Delete images whose case is gone (pending deletions, or adds that never committed); under the writer lock."""
    pending = [r[0] for r in db.query("SELECT sha256 FROM pending_image_deletions")]
    referenced = {r[0] for r in db.query("SELECT DISTINCT image_sha256 FROM cases WHERE image_sha256 IS NOT NULL")}
    for digest in pending:
        if digest not in referenced:
            images.delete(digest)
    if pending:
        db.executemany("DELETE FROM pending_image_deletions WHERE sha256 = ?", [(d,) for d in pending])
    for digest in images.digests() - referenced:
        images.delete(digest)
    for stale in images.root.glob("??/*.tmp") if images.root.is_dir() else []:
        stale.unlink(missing_ok=True)


def vectors_of(db: GalleryDatabase, rows: Sequence[int], dim: int) -> np.ndarray:
    """The stored vectors of these case rows, in their order."""
    wanted = list(map(int, rows))
    found: dict[int, bytes] = {}
    for start in range(0, len(wanted), 900):  # SQLite's bound on parameters per statement
        chunk = wanted[start : start + 900]
        placeholders = ",".join("?" * len(chunk))
        found.update(db.query(f"SELECT case_row, vector FROM embeddings WHERE case_row IN ({placeholders})", chunk))
    missing = [r for r in wanted if r not in found]
    if missing:
        raise GalleryError(f"no embedding for case rows {missing[:5]}")
    return np.frombuffer(b"".join(found[r] for r in wanted), dtype=np.float32).reshape(len(wanted), dim)
