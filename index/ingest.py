"""Embed a case manifest's radiographs and add them to a gallery (the `gallery add` command,
the demo and the tests all ingest this way).

One atomic write per chunk of images: an interrupted ingest keeps what was added, and a
rerun skips the case ids already present.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from index.cases import checked_phenotypes
from index.hpo import split_terms
from index.store import Gallery, GalleryError, NewCase
from matcher.analysis import AnalysisOptions, Analyzer
from matcher.batch import BatchItem, embed_many
from matcher.checkpoint import BUNDLED_MODEL_DIR, ModelCard, load_model
from matcher.hand_measure import HandMeasurer, bundled_measurer
from matcher.io import Radiograph
from matcher.manifest import read_case_manifest
from matcher.model import Bone2GeneModel

Progress = Callable[[int, int], None]  # (done, total)


def _manifest_phenotypes(table: pd.DataFrame) -> dict[str, tuple[list[str], list[str]]]:
    """Each case's (observed, excluded) HPO ids, every one checked before any image is embedded."""
    cases = [
        NewCase(
            np.zeros(1),
            "M",
            0.0,
            case_id=str(row["case_id"]),
            phenotypes=split_terms(row["hpo"]),
            excluded_phenotypes=split_terms(row["hpo_excluded"]),
        )
        for _, row in table.iterrows()
    ]
    return dict(zip(table["case_id"].astype(str), checked_phenotypes(cases), strict=True))


def manifest_from_phenopackets(source: Path, gallery: Gallery, folder: Path) -> Path:
    """A manifest CSV in `folder` made from one phenopacket file or a folder of them (`*.json`)."""
    from index.phenopackets_io import PhenopacketError, read_phenopackets

    files = sorted(Path(source).glob("*.json")) if Path(source).is_dir() else [Path(source)]
    if not files:
        raise PhenopacketError(f"no phenopackets (*.json) in {source}")
    path = Path(folder) / "phenopackets_manifest.csv"
    read_phenopackets(files, gallery.disorders()).to_csv(path, index=False)
    return path


def add_manifest(
    gallery: Gallery,
    manifest_path: Path,
    model_dir: Path | None = None,
    batch_size: int = 8,
    workers: int = 1,
    progress: Progress | None = None,
    measurer: HandMeasurer | Literal["bundled"] | None = "bundled",
) -> tuple[int, list[str]]:
    """Embed and add every case of a manifest not yet in the gallery, each with its bones measured
    by `measurer` (the bundled landmark model and norms; None: not measured); returns (added,
    refusals by the quality gate)."""
    table = read_case_manifest(manifest_path, require_disorder=True)
    present = set(gallery.cases()["case_id"])
    todo = table[~table["case_id"].isin(present)]
    for disorder in sorted(set(todo["disorder"].dropna())):
        gallery.resolve_disorder(disorder)  # fail before any work if a label is unknown
    phenotypes = _manifest_phenotypes(todo)  # ... or an HPO id
    model, card = load_model(model_dir or BUNDLED_MODEL_DIR)
    measurer = bundled_measurer() if measurer == "bundled" else measurer
    added, refusals = 0, []
    chunk = max(batch_size, 32)
    for start in range(0, len(todo), chunk):
        part = todo.iloc[start : start + chunk]
        items = [BatchItem(Path(p), s) for p, s in zip(part["path"], part["sex"], strict=True)]
        results = embed_many(model, items, batch_size=batch_size, workers=workers, keep_pixels=True)
        bones = _measured([r.pixels if r.accepted else None for r in results], measurer)
        cases = []
        for (_, row), result, lengths in zip(part.iterrows(), results, bones, strict=True):
            if not result.accepted:
                refusals.append(f"{row['case_id']} ({Path(row['path']).name}): {'; '.join(result.reasons)}")
                continue
            cases.append(
                NewCase(
                    result.embedding,
                    row["sex"],
                    row["age_months"],
                    row["disorder"],
                    row["gene"],
                    row["patient_id"],
                    row["case_id"],
                    row["bone_age_months"],
                    row["source"] or "",
                    result.pixels,
                    *phenotypes[row["case_id"]],
                    lengths,
                )
            )
        if cases:
            gallery.add_cases(cases, card.fingerprint)
            added += len(cases)
        if progress:
            progress(min(start + chunk, len(todo)), len(todo))
    return added, refusals


def _measured(films: list[np.ndarray | None], measurer: HandMeasurer | None) -> list[np.ndarray | None]:
    """Each film's bone lengths (None for a film not given, or without a measurer), found in one batch."""
    given = [i for i, film in enumerate(films) if film is not None]
    if measurer is None or not given:
        return [None] * len(films)
    lengths = dict(zip(given, measurer.lengths_of([films[i] for i in given]), strict=True))
    return [lengths.get(i) for i in range(len(films))]


def measure_gallery(gallery: Gallery, measurer: HandMeasurer, everything: bool = False, progress: Progress | None = None) -> int:
    """Measure the bones on the stored image of every case that has none (all of them with
    `everything`: a new landmark model), stored in one write; returns how many were measured.
    Galleries built before cases carried their bones get their profiles this way."""
    table = gallery.cases()
    table = table[table["image_sha256"].notna()]
    if not everything:
        table = table[~table["row"].isin(gallery.bones.lengths().index)]
    measured: dict[int, np.ndarray] = {}
    rows, digests = table["row"].tolist(), table["image_sha256"].tolist()
    for start in range(0, len(rows), 32):
        films = [gallery.images.get(d) for d in digests[start : start + 32]]
        for row, lengths in zip(rows[start : start + 32], measurer.lengths_of(films), strict=True):
            measured[int(row)] = lengths
        if progress:
            progress(min(start + 32, len(rows)), len(rows))
    if measured:
        gallery.bones.set_lengths(measured)
    return len(measured)


def reembed_gallery(gallery: Gallery, model: Bone2GeneModel, card: ModelCard, progress: Progress | None = None) -> int:
    """Swap every vector for the new model's embedding of the stored image (one atomic write); returns the count."""
    analyzer = Analyzer(model, AnalysisOptions(hand=None))  # only the embedding is kept: the hand is not measured

    def embed(items: list[tuple[np.ndarray, str]]) -> np.ndarray:
        vectors = []
        for i, (pixels, sex) in enumerate(items):
            result = analyzer.analyze(Radiograph.from_pixels(pixels), sex=sex)
            if result.embedding is None:
                raise GalleryError(f"case {i}: the new model's pipeline refused the stored image: {'; '.join(result.reasons)}")
            vectors.append(result.embedding)
            if progress:
                progress(i + 1, len(items))
        return np.stack(vectors) if vectors else np.zeros((0, card.config.embedding_dim), np.float32)

    return gallery.reembed(embed, card.fingerprint, card.config.embedding_dim)
