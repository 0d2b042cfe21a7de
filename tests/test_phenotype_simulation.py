"""Simulated HPO term sets and candidate-gene lists: realistic noise, seeded, one set per patient."""

from __future__ import annotations

import numpy as np
import pandas as pd

from index import hpo
from index.builtin_catalogue import builtin_disorders
from training.synth.phenotypes import PhenotypeSimulation, add_phenotypes, simulate_candidates, simulate_terms


def test_terms_are_mostly_the_disorders_own_with_imprecision_noise_and_empties() -> None:
    achondroplasia = next(d for d in builtin_disorders() if d.id == "achondroplasia")
    annotations = achondroplasia.phenotypes
    ancestors = {p for t in annotations for p in hpo.parents(t)}
    rng = np.random.default_rng(0)
    draws = [simulate_terms(annotations, ["HP:0001156", "HP:0000960"], PhenotypeSimulation(), rng) for _ in range(400)]
    empty = np.mean([not observed for observed, _ in draws])
    assert 0.08 < empty < 0.25  # about 15% of patients have no terms
    terms = [t for observed, _ in draws for t in observed]
    own = np.mean([t in annotations for t in terms])
    general = np.mean([t in ancestors and t not in annotations for t in terms])
    assert 0.5 < own < 0.9 and 0.05 < general < 0.3  # mostly its own terms, some recorded as a parent, a few unrelated
    assert all(t not in annotations for _, excluded in draws for t in excluded) and any(excluded for _, excluded in draws)
    assert all(hpo.resolve_term(t) for t in set(terms))  # every simulated term is a current HPO term


def test_candidate_lists_hold_the_causal_gene_often_not_always() -> None:
    rng = np.random.default_rng(1)
    lists = [simulate_candidates(["FGFR3"], PhenotypeSimulation(), rng) for _ in range(500)]
    with_exome = [g for g in lists if g is not None]
    assert 0.5 < len(with_exome) / len(lists) < 0.7
    share = np.mean(["FGFR3" in g for g in with_exome])
    assert 0.78 < share < 0.92 and all(len(g) <= 200 for g in with_exome)
    assert 20 < np.mean([len(g) for g in with_exome]) < 40  # about 27% of 10-200 genes have a known disease association
    assert all("FGFR3" not in g for g in (simulate_candidates([], PhenotypeSimulation(exome=1.0), rng) for _ in range(20)))


def test_a_patients_films_share_one_simulation_and_the_seed_decides() -> None:
    manifest = pd.DataFrame(
        {
            "patient_id": ["p1", "p1", "p2", "p3"],
            "disorder": ["achondroplasia", "achondroplasia", "trps1", "unaffected"],
            "case_id": list("abcd"),
        }
    )
    disorders = builtin_disorders()
    first = add_phenotypes(manifest, disorders, seed=3, config=PhenotypeSimulation(no_terms=0.0, exome=1.0))
    assert first.loc[0, "hpo"] == first.loc[1, "hpo"] and first.loc[0, "candidate_genes"] == first.loc[1, "candidate_genes"]
    assert first.equals(add_phenotypes(manifest, disorders, seed=3, config=PhenotypeSimulation(no_terms=0.0, exome=1.0)))
    assert not first.equals(add_phenotypes(manifest, disorders, seed=4, config=PhenotypeSimulation(no_terms=0.0, exome=1.0)))
    assert all(hpo.split_terms(first.loc[2, "hpo"]))
