"""Does adding HPO terms, candidate genes and the measured hand to the image rank disorders better?

Per random draw (`splits`), each query gets `index.evidence` features for every disorder of
the gallery; a combination of sources ranks by the logit of an `EvidenceModel` fitted on
that combination (on another cohort: `fit_combinations`), a single source by its own
feature. The profile's typical profiles are learnt from the draw's gallery cases only, as a
gallery learns them. Top-k is macro-averaged over disorders, as in the rest of the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from index import hpo
from index.catalogue import Disorder
from index.evidence import SOURCES, EvidenceModel, evidence_features, fit_evidence_model
from index.profile_evidence import TypicalProfiles
from matcher.model import Bone2GeneModel
from matcher.rank import DEFAULT_RULE, LabelIndex, RankingRule, label_ranks, label_scores, macro_topk
from training.protocol import markdown
from training.protocol.splits import DisorderGroups, Draw, disorder_groups, random_draws

if TYPE_CHECKING:
    from matcher.hand_measure import HandMeasurer

# the evidence a clinician brings, and the features each uses ("excluded" rides with the phenotype)
SOURCE_SETS = {
    "image": ("image",),
    "phenotype": ("phenotype", "excluded"),
    "genes": ("gene",),
    "image + phenotype": ("image", "phenotype", "excluded"),
    "image + genes": ("image", "gene"),
    "phenotype + genes": ("phenotype", "excluded", "gene"),
    "image + phenotype + genes": ("image", "phenotype", "excluded", "gene"),
    "profile": ("profile",),
    "image + profile": ("image", "profile"),
    "image + phenotype + genes + profile": SOURCES,
}
ALL_SOURCES = "image + phenotype + genes + profile"  # the service's default evidence model


def _query_evidence(row: pd.Series) -> tuple[list[hpo.Term], list[hpo.Term], list[str] | None]:
    observed = [hpo.Term(t, "") for t in hpo.split_terms(row.get("hpo"))]
    excluded = [hpo.Term(t, "") for t in hpo.split_terms(row.get("hpo_excluded"))]
    genes = hpo.split_terms(row.get("candidate_genes")) or None
    return observed, excluded, genes


def draw_features(
    vectors: np.ndarray,
    table: pd.DataFrame,
    catalogue: Sequence[Disorder],
    gallery: np.ndarray,
    queries: np.ndarray,
    rule: RankingRule = DEFAULT_RULE,
    z: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (Q, D, 5), true disorder code per query (Q,), group of each query row) for one
    gallery/query split; `z`: every film's profile (N, 19), for the profile source."""
    disorders = table["disorder"].astype(str).to_numpy()
    labels = LabelIndex.of(list(disorders[gallery]))
    entries = {d.id: d for d in catalogue}
    in_gallery = [entries.get(name) or Disorder(id=name, name=f"{name} (not catalogued)") for name in labels.names]
    sims = vectors[queries] @ vectors[gallery].T
    patients = table["patient_id"].astype(str).to_numpy()
    sims[patients[queries][:, None] == patients[gallery][None, :]] = -np.inf
    scores = label_scores(sims, labels, rule)[0]
    profiles = None if z is None else TypicalProfiles.fit(z[gallery], list(disorders[gallery]))
    features = []
    for q, row in zip(range(len(queries)), table.iloc[queries].itertuples(index=False), strict=True):
        observed, excluded, genes = _query_evidence(pd.Series(row._asdict()))
        image = [None if not np.isfinite(s) else float(s) for s in scores[q]]
        match = None if profiles is None else profiles.match(z[queries[q]], labels.names)
        features.append(evidence_features(in_gallery, image, observed, excluded, genes, match).values)
    lookup = {name: i for i, name in enumerate(labels.names)}
    codes = np.array([lookup[d] for d in disorders[queries]])
    return np.stack(features) if features else np.zeros((0, len(labels.names), len(SOURCES))), codes, queries


def _columns(sources: Sequence[str]) -> list[int]:
    return [SOURCES.index(s) for s in sources]


def fit_combinations(features: np.ndarray, codes: np.ndarray, fitted_on: str) -> dict[str, EvidenceModel]:
    """One logistic model per source set, from stacked (query, disorder) rows."""
    q, d, f = features.shape
    correct = np.zeros((q, d), bool)
    correct[np.arange(q), codes] = True
    models = {}
    for name, sources in SOURCE_SETS.items():
        rows = np.zeros((q * d, f))
        rows[:, _columns(sources)] = features.reshape(q * d, f)[:, _columns(sources)]
        models[name] = fit_evidence_model(rows, correct.reshape(-1), fitted_on)
    return models


def source_ranks(features: np.ndarray, codes: np.ndarray, model: EvidenceModel, sources: Sequence[str]) -> np.ndarray:
    """Rank of the true disorder when only `sources` are used (the others zeroed)."""
    masked = np.zeros_like(features)
    masked[..., _columns(sources)] = features[..., _columns(sources)]
    logits = masked @ model.weights()
    return label_ranks(logits, codes)


def topk_by_source(
    features: np.ndarray, codes: np.ndarray, models: dict[str, EvidenceModel], ks: Sequence[int] = (1, 5, 10)
) -> dict[str, dict[int, float]]:
    return {name: macro_topk(source_ranks(features, codes, models[name], sources), codes, ks) for name, sources in SOURCE_SETS.items()}


def all_draw_features(
    vectors: np.ndarray,
    table: pd.DataFrame,
    catalogue: Sequence[Disorder],
    draws: Sequence[Draw],
    setting: str,
    z: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    return [draw_features(vectors, table, catalogue, *draw.setting(setting), z=z)[:2] for draw in draws]


def pooled(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Draws stacked for fitting (the same gallery disorders in every draw of a setting)."""
    return np.concatenate([f for f, _ in parts]), np.concatenate([c for _, c in parts])


SETTINGS = ("F->F+R", "R->F+R")
FIT_TERMS_SEED, TEST_TERMS_SEED = 7, 8  # the simulated terms and gene lists of the two cohorts


def measured_profiles(table: pd.DataFrame, measurer: HandMeasurer) -> np.ndarray:
    """(N, 19) each film's bone z-scores (the landmark model and its norms, the film's age and sex), as a gallery measures them."""
    from matcher.io import read_radiograph

    lengths = []
    for start in range(0, len(table), 32):
        films = [read_radiograph(Path(p)).normalised() for p in table["path"].iloc[start : start + 32]]
        lengths += measurer.lengths_of(films)
    if not lengths:
        return np.zeros((0, 19))
    return measurer.norms.z_table(np.stack(lengths), table["age_months"].to_numpy(float) / 12, table["sex"].astype(str).to_numpy())


@dataclass
class EvidenceCohort:
    """The diagnosed films a gate accepts: their embeddings, table (with simulated terms and gene
    lists), disorder groups and measured profiles (None: no landmark model)."""

    vectors: np.ndarray
    table: pd.DataFrame
    groups: DisorderGroups
    z: np.ndarray | None


def _embedded_cohort(
    model: Bone2GeneModel, manifest: Path, seed: int, device: str, workers: int, trained_on: Sequence[str], measurer: HandMeasurer | None
) -> EvidenceCohort:
    """The diagnosed films that pass the gate, embedded and measured as the gallery embeds and
    measures them, with simulated HPO terms and candidate-gene lists (`training.synth.phenotypes`, seeded)."""
    from index.builtin_catalogue import builtin_disorders
    from matcher.manifest import read_case_manifest
    from training.protocol.encoders import embed_films
    from training.synth.phenotypes import add_phenotypes

    table = read_case_manifest(manifest)
    table = table[table["disorder"].notna()].reset_index(drop=True)
    vectors, accepted = embed_films(model, table["path"], table["sex"], device, workers)
    table = add_phenotypes(table[accepted].reset_index(drop=True), builtin_disorders(), seed=seed)
    z = None if measurer is None else measured_profiles(table, measurer)
    return EvidenceCohort(vectors, table, disorder_groups(table, trained_on), z)


def evidence_report(
    model_dir: Path,
    fit_manifest: Path,
    test_manifest: Path,
    draws: int = 10,
    seed: int = 0,
    device: str = "auto",
    workers: int = 0,
    real_films: Path | None = None,
) -> tuple[str, dict]:
    """The evidence suite: the combinations of sources fitted on one cohort (one draw, F->F+R and
    R->F+R pooled), every source alone and combined reported on another over `draws` patient draws;
    with `real_films`, real unaffected hands held out of the landmark model and the norms against
    the test cohort's typical profiles (`real_controls`)."""
    from index.builtin_catalogue import builtin_disorders
    from matcher.checkpoint import load_model
    from matcher.hand_measure import bundled_measurer

    model, card = load_model(model_dir)
    measurer = bundled_measurer()
    catalogue, trained_on = builtin_disorders(), list(card.config.labels)
    fit = _embedded_cohort(model, fit_manifest, FIT_TERMS_SEED, device, workers, trained_on, measurer)
    parts = [
        p
        for s in SETTINGS
        for p in all_draw_features(fit.vectors, fit.table, catalogue, random_draws(fit.table, fit.groups, 1, seed), s, fit.z)
    ]
    features, codes = pooled(parts) if len({p[0].shape[1] for p in parts}) == 1 else parts[0]
    models = fit_combinations(features, codes, f"{fit_manifest} (terms seed {FIT_TERMS_SEED}): one draw, F->F+R and R->F+R")
    test = _embedded_cohort(model, test_manifest, TEST_TERMS_SEED, device, workers, trained_on, measurer)
    results: dict[str, dict[str, list[dict[int, float]]]] = {s: {} for s in SETTINGS}
    for setting in SETTINGS:
        draws_of = random_draws(test.table, test.groups, draws, seed + 1)
        for f, c in all_draw_features(test.vectors, test.table, catalogue, draws_of, setting, test.z):
            for name, values in topk_by_source(f, c, models).items():
                results[setting].setdefault(name, []).append(values)
    table = test.table
    about = {
        "fit_manifest": str(fit_manifest),
        "test_manifest": str(test_manifest),
        "films": len(table),
        "patients": int(table["patient_id"].nunique()),
        "with_terms": float(table["hpo"].notna().mean()),
        "with_gene_list": float(table["candidate_genes"].notna().mean()),
        "with_profile": None if test.z is None else float((np.isfinite(test.z).sum(axis=1) >= 10).mean()),
        "draws": draws,
    }
    data = {**about, "results": results, "models": {k: m.to_json() for k, m in models.items()}}
    text = _evidence_markdown(about, results, models)
    if real_films is not None and measurer is not None and test.z is not None:
        from training.protocol.real_controls import real_controls

        profiles = TypicalProfiles.fit(test.z, table["disorder"].astype(str).tolist())
        lines, data["real_controls"] = real_controls(real_films, measurer, profiles, models["profile"])
        text = "\n".join([text, "", *lines])
    return text, data


def _evidence_markdown(about: dict, results: dict, models: dict[str, EvidenceModel]) -> str:
    lines = [
        "# Image, HPO terms, candidate genes and the measured hand, alone and combined",
        "",
        f"Test cohort {about['test_manifest']}: {about['films']} films of {about['patients']} patients, the model's embeddings; "
        f"simulated HPO terms for {100 * about['with_terms']:.0f}% of films, an exome candidate list for "
        f"{100 * about['with_gene_list']:.0f}% (the causal gene in 85% of lists); "
        + (
            "no landmark model: no profile. "
            if about["with_profile"] is None
            else f"a pattern profile (10+ bones, the bundled landmark model and norms) for {100 * about['with_profile']:.0f}%. "
        )
        + "Combinations fitted on another cohort "
        f"({about['fit_manifest']}). Macro top-k over disorders, mean ± SD over {about['draws']} patient draws; "
        "R->F+R: disorders the model never saw, F->F+R: the ones it was trained on; gallery: half the patients of every disorder.",
        "",
    ]
    for setting, per_source in results.items():
        rows = [[name, *(markdown.percent([d[k] for d in draws]) for k in (1, 5, 10))] for name, draws in per_source.items()]
        lines += [f"## {setting}", "", *markdown.table(["evidence", "top-1", "top-5", "top-10"], rows), ""]
    weights = [[name, *(f"{m.coefficients.get(s, 0.0):.2f}" for s in SOURCES), f"{m.intercept:.2f}"] for name, m in models.items()]
    lines += ["## Fitted weights (logit per unit of each feature)", "", *markdown.table(["evidence", *SOURCES, "intercept"], weights)]
    return "\n".join(lines)
