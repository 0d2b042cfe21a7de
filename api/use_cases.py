"""What a user asks of Bone2Gene, done once for the command line and the service alike.

- `analyse_films`: one patient's films through the analyser; the quality gate's refusals are
  kept with their reasons and the accepted films combined into one query (GestaltMatcher's
  multi-image setting).
- `rank_gallery`: the gallery's calibrated ranking of disorders and genes for an embedding.
- `ranking_phenopacket`: that ranking as a GA4GH phenopacket.
- `synthetic_gallery` / `demo_gallery`: a phantom cohort embedded into a new gallery whose
  catalogue is seeded with the built-in disorders (the demo, the tests and the service benchmark).

The CLI and the routes only parse their input, call these and shape the output, so the two
cannot drift apart.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from matcher.errors import Bone2GeneError
from matcher.rank import DEFAULT_RULE, RankingRule

if TYPE_CHECKING:
    import pandas as pd
    from phenopackets import Phenopacket

    from index.evidence import ClinicalFindings
    from index.filters import Filters
    from index.profile_evidence import HandProfile
    from index.query import QueryResult
    from index.store import Gallery
    from matcher.analysis import Analysis, Analyzer
    from matcher.io import Radiograph
    from training.synth.cohort import CohortConfig

DEMO_COHORT_SEED = 2027


class NoFilmAccepted(Bone2GeneError, ValueError):
    """The quality gate refused every film of a query; the message names each with its reasons."""


@dataclass
class AnalysedFilms:
    """One patient's films after analysis: each film's name and result, in the order given."""

    films: list[tuple[str, Analysis]]

    @property
    def accepted(self) -> list[tuple[str, Analysis]]:
        return [(name, a) for name, a in self.films if a.accepted and a.embedding is not None]

    @property
    def refusals(self) -> list[str]:
        """ "<film> was not accepted: <reasons>" for each film the gate refused."""
        return [
            f"{name} was not accepted: {'; '.join(a.reasons)}" for name, a in self.films if not (a.accepted and a.embedding is not None)
        ]

    def records(self) -> list[dict]:
        """Each film's result as JSON, named."""
        return [{"image": name, **a.to_json()} for name, a in self.films]

    def embedding(self) -> np.ndarray:
        """The accepted films combined into one query embedding; `NoFilmAccepted` when there is none."""
        from matcher.multi_image import combined_embedding

        accepted = self.accepted
        if not accepted:
            raise NoFilmAccepted("; ".join(self.refusals))
        return combined_embedding(np.stack([a.embedding for _, a in accepted]))

    def hand_profiles(self) -> list[HandProfile]:
        """The measured bones of each accepted film, for the ranking's profile evidence."""
        return [p for _, a in self.accepted if (p := hand_profile(a)) is not None]


def hand_profile(analysis: Analysis) -> HandProfile | None:
    """A film's measured bones with the age (chronological, else the bone age) and sex their z-scores
    need; None where the hand was not measured."""
    from index.profile_evidence import HandProfile

    if analysis.hand is None:
        return None
    age = analysis.age_months if analysis.age_months is not None else analysis.bone_age_months
    return HandProfile(analysis.hand.lengths_px, age, analysis.sex)


def analyse_films(
    analyzer: Analyzer, films: Sequence[Path | Radiograph], sex: str | None = None, age_months: float | None = None
) -> AnalysedFilms:
    """Analyse each film of one patient (an age belongs to one film: give it only for a single film)."""
    if len(films) > 1 and age_months is not None:
        raise ValueError("the age is the age at one film; leave it out when several films (visits) are combined")
    return AnalysedFilms([(_film_name(film, i), analyzer.analyze(film, sex=sex, age_months=age_months)) for i, film in enumerate(films)])


def _film_name(film: Path | Radiograph, position: int) -> str:
    return film.name if isinstance(film, Path) else f"film {position + 1}"


def rank_gallery(
    gallery: Gallery,
    embedding: np.ndarray,
    top: int = 10,
    filters: Filters | None = None,
    rule: RankingRule = DEFAULT_RULE,
    findings: ClinicalFindings | None = None,
    hand: Sequence[HandProfile] = (),
) -> QueryResult:
    """The gallery's disorders and genes ranked for `embedding` under `rule`, with the gallery's
    calibration of that rule (refitted first when stale), the clinical findings (HPO terms,
    candidate genes) given and the query's measured bones (`hand`, one per film)."""
    from index.query import calibration_for, query

    calibration = calibration_for(gallery, rule=rule)
    return query(gallery, embedding, top_k=top, filters=filters, calibration=calibration, rule=rule, findings=findings, hand=hand)


def ranking_phenopacket(
    gallery: Gallery,
    result: QueryResult,
    subject_id: str,
    sex: str | None,
    age_months: float | None,
    findings: ClinicalFindings,
    top: int,
) -> Phenopacket:
    """The ranking as a GA4GH phenopacket (v2): the patient's HPO terms, each ranked disorder an
    IN_PROGRESS interpretation."""
    from index.phenopackets_io import ranking_phenopacket as packet

    observed, excluded = [t.id for t in findings.observed], [t.id for t in findings.excluded]
    return packet(subject_id, sex, age_months, observed, excluded, result.disorders, gallery.disorders(), top)


def synthetic_gallery(
    cohort: CohortConfig,
    gallery_path: Path,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
    measure_hands: bool = True,
) -> tuple[pd.DataFrame, list[str]]:
    """Render `cohort` and add it to a new gallery at `gallery_path`, embedded with the bundled model
    (and its hands measured, unless told not to) and its catalogue seeded; returns the cohort's
    manifest and the gate's refusals."""
    from index.ingest import add_manifest
    from training.synth.cohort import generate_cohort

    manifest = generate_cohort(cohort)
    with _new_seeded_gallery(gallery_path) as gallery:
        measurer = "bundled" if measure_hands else None
        _, refused = add_manifest(gallery, cohort.out / "manifest.csv", None, batch_size, 1, progress, measurer)
    return manifest, refused


def _new_seeded_gallery(path: Path) -> Gallery:
    """A new gallery for the bundled model, its catalogue seeded with the built-in disorders."""
    from index.builtin_catalogue import seed_catalogue
    from index.store import Gallery
    from matcher.checkpoint import BUNDLED_MODEL_DIR, read_card

    card = read_card(BUNDLED_MODEL_DIR)
    gallery = Gallery.create(path, card.fingerprint, card.config.embedding_dim)
    seed_catalogue(gallery)
    return gallery


def demo_gallery(
    out: Path, n: int, size: int, log: Callable[[str], None], progress: Callable[[str], contextlib.AbstractContextManager] | None = None
) -> Path:
    """The demo's synthetic cohort (`out/cohort`) and its gallery (`out/gallery`), built once and
    reused afterwards; a build cut short is finished on the next call. `progress(what)` gives a
    context manager yielding a counter callback (a progress bar)."""
    from index.ingest import add_manifest, measure_gallery
    from index.store import Gallery, GalleryError
    from matcher.checkpoint import BUNDLED_MODEL_DIR, read_card
    from matcher.hand_measure import bundled_measurer
    from training.synth.cohort import CohortConfig, generate_cohort

    bar = progress or (lambda _: contextlib.nullcontext())
    cohort, path = out / "cohort", out / "gallery"
    if (cohort / "manifest.csv").exists() and (path / ".complete").exists():
        log(f"reusing the demo cohort and gallery in {out}")
    if not (cohort / "manifest.csv").exists():
        log(f"generating a demo cohort of {n} synthetic radiographs in {cohort} ...")
        with bar("rendering") as step:
            generate_cohort(CohortConfig(n=n, out=cohort, seed=DEMO_COHORT_SEED, size=size), progress=step)
    card = read_card(BUNDLED_MODEL_DIR)
    if (path / "gallery.sqlite").exists():
        gallery = Gallery.open(path)
        if gallery.model_fingerprint != card.fingerprint:
            raise GalleryError(f"{path} was built with another model; delete {out} to rebuild the demo")
    else:
        gallery = _new_seeded_gallery(path)
    if gallery.stats().cases == 0 or not (path / ".complete").exists():
        log("embedding the demo cohort into the gallery (once) ...")
        with bar("embedding") as step:
            _, refused = add_manifest(gallery, cohort / "manifest.csv", None, 8, 1, step)
        (path / ".complete").write_text("ok\n")
        log(f"demo gallery: {gallery.stats().cases} cases ({len(refused)} refused by the quality gate)")
    measurer = bundled_measurer()
    if measurer is not None and len(gallery.bones.lengths()) < gallery.stats().cases:  # a demo built before cases carried bones
        log("measuring the demo cases' bones (once) ...")
        with bar("measuring") as step:
            measure_gallery(gallery, measurer, progress=step)
    gallery.close()
    return path
