"""Simulated HPO term sets and exome candidate-gene lists for synthetic patients.

A clinician's term list is not the disorder's annotation list: it is a few of its features,
some recorded less precisely (an ancestor: "Brachydactyly" for "Type E brachydactyly"), a
few unrelated findings, sometimes features explicitly excluded, and sometimes nothing at all.
An exome gives a list of candidate genes in which the causal one is often, not always,
present. The defaults follow what PhenoScore and PEDIA simulate; every draw is seeded per
patient, so a patient's films share one term set and one candidate list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from index import hpo
from index.catalogue import Disorder


@dataclass(frozen=True)
class PhenotypeSimulation:
    no_terms: float = 0.15  # share of patients with no HPO terms at all
    mean_terms: float = 4.0  # annotation terms drawn per patient (1 + Poisson(mean - 1), at most all of them)
    imprecise: float = 0.3  # each drawn term replaced by a parent with this probability
    mean_noise: float = 1.0  # unrelated terms added (Poisson)
    excluded: float = 0.3  # share of patients with 1-2 excluded terms (features of other disorders)
    exome: float = 0.6  # share of patients with a candidate-gene list
    causal_in_list: float = 0.85  # ... that contains the causal gene (variant found and kept by the filters)
    list_size: tuple[int, int] = (10, 200)  # candidate genes per list, uniform in this range
    # share of a real list's genes with any known disease association: 5,178 HPO-annotated genes of
    # about 19,000 protein-coding ones; only those are kept (the others can never match a disorder)
    disease_gene_share: float = 5178 / 19000


def simulate_terms(
    annotations: list[str], other_terms: list[str], config: PhenotypeSimulation, rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    """(observed, excluded) HPO ids for one patient of a disorder annotated with `annotations`;
    `other_terms` are other disorders' annotations (what can be excluded)."""
    if rng.random() < config.no_terms:
        return [], []
    observed: set[str] = set()
    if annotations:
        k = min(len(annotations), 1 + rng.poisson(max(config.mean_terms - 1, 0)))
        for term in rng.choice(annotations, k, replace=False):
            more_general = hpo.parents(str(term))
            observed.add(str(rng.choice(more_general)) if more_general and rng.random() < config.imprecise else str(term))
    pool = hpo.phenotype_pool()
    observed |= {str(pool[i]) for i in rng.integers(0, len(pool), rng.poisson(config.mean_noise))}
    excluded: set[str] = set()
    candidates = sorted(set(other_terms) - set(annotations) - observed)
    if candidates and rng.random() < config.excluded:
        excluded = {str(t) for t in rng.choice(candidates, min(len(candidates), int(rng.integers(1, 3))), replace=False)}
    return sorted(observed), sorted(excluded)


def simulate_candidates(causal: list[str], config: PhenotypeSimulation, rng: np.random.Generator) -> list[str] | None:
    """An exome's candidate genes with a known disease association (None: no exome), holding one
    causal gene with probability `causal_in_list`."""
    if rng.random() >= config.exome:
        return None
    pool = hpo.gene_pool()
    size = int(rng.integers(config.list_size[0], config.list_size[1] + 1))
    kept = int(rng.binomial(size, config.disease_gene_share))
    genes = sorted({str(pool[i]) for i in rng.choice(len(pool), kept, replace=False)} - set(causal))
    if causal and rng.random() < config.causal_in_list:
        genes = sorted(set(genes[: max(kept - 1, 0)]) | {str(rng.choice(causal))})
    return genes


def add_phenotypes(manifest: pd.DataFrame, disorders: list[Disorder], seed: int, config: PhenotypeSimulation | None = None) -> pd.DataFrame:
    """The manifest with `hpo`, `hpo_excluded` and `candidate_genes` (';'-separated) per patient."""
    config = config or PhenotypeSimulation()
    by_id = {d.id: d for d in disorders}
    every_term = sorted({t for d in disorders for t in d.phenotypes})
    per_patient: dict[str, tuple[str, str, str]] = {}
    for patient, disorder in manifest.groupby("patient_id", sort=True)["disorder"].first().items():
        rng = np.random.default_rng([seed, int.from_bytes(str(patient).encode()[-8:].rjust(8, b"\0"), "big")])
        entry = by_id.get(str(disorder))
        annotations = entry.phenotypes if entry else []
        observed, excluded = simulate_terms(annotations, every_term, config, rng)
        genes = simulate_candidates(entry.genes if entry else [], config, rng)
        per_patient[str(patient)] = (";".join(observed), ";".join(excluded), ";".join(genes) if genes is not None else "")
    out = manifest.copy()
    for i, column in enumerate(("hpo", "hpo_excluded", "candidate_genes")):
        out[column] = [per_patient[str(p)][i] or None for p in out["patient_id"]]
    return out
