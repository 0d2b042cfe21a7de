"""Clustered embeddings with known disorders and patients: the one factory of the tests that
need a feature space without a network (ranking, calibration, evaluation, unseen syndromes,
head refits). `conftest.clustered` hands it to a test."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Clusters:
    vectors: np.ndarray  # (N, dim) float32: unit length, or raw with `unit=False`
    table: pd.DataFrame  # disorder, patient_id, sex, age_months; row i is vectors[i]
    centres: np.ndarray  # (disorders, dim)

    @property
    def names(self) -> np.ndarray:
        return self.table["disorder"].to_numpy()


def clusters(
    rng: np.random.Generator,
    disorders: int = 6,
    patients: int = 8,
    visits: int = 1,
    dim: int = 24,
    spread: float = 0.4,
    unit: bool = True,
    shared: float = 0.0,
    centres: Mapping[str, np.ndarray] | None = None,
    sizes: Mapping[str, int] | None = None,
) -> Clusters:
    """Disorders d0, d1, ... (or the names of `centres`) around random centres, each with `patients`
    patients of `visits` films, `spread` around its centre; `sizes` gives a disorder that many films
    of as many patients instead. `shared` adds a common component (pooled features carry one).
    Random draws happen in a fixed order, so a seed always gives the same cohort."""
    if centres is not None:
        dim = len(next(iter(centres.values())))
    common = shared * rng.normal(size=dim) if shared else np.zeros(dim)
    if centres is None:
        drawn = rng.normal(size=(disorders, dim))
        centres = {f"d{d}": drawn[d] for d in range(disorders)}
    names = list(sizes or centres)
    rows, vectors = [], []
    for name in names:
        films = [(p, 0) for p in range(sizes[name])] if sizes else [(p, v) for p in range(patients) for v in range(visits)]
        for p, v in films:
            x = common + centres[name] + spread * rng.normal(size=dim)
            vectors.append(x / np.linalg.norm(x) if unit else x)
            rows.append({"disorder": name, "patient_id": f"{name}-p{p}", "sex": "MF"[p % 2], "age_months": 20.0 + 30 * ((p + v) % 6)})
    return Clusters(np.array(vectors, np.float32), pd.DataFrame(rows), np.stack([centres[n] for n in names]))
