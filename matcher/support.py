"""Does a query lie where the gallery's cases lie? The gallery's leading directions, and how far
off them its own cases fall.

"No close match" was read from the nearest diagnosed case's similarity alone. A film unlike
every case in the gallery can still lie near one case: real RSNA control films against the
phantom gallery of the demo were ranked first to a phantom disorder, above the threshold, on
12% of films (benchmarks/real.md). What gives them away is the direction: they lie off the few
directions along which the gallery's cases spread (a classifier tells real from phantom
controls at AUC 1.0). So the gallery's principal subspace is kept (`SUPPORT_COMPONENTS`
directions), and a query whose residual off it is larger than `SUPPORT_QUANTILE` of the
gallery's own cases' residuals, each measured with its patient's fold left out of the fit, is
"outside the gallery": its nearest cases are no evidence, and "no close match" is said.

The figures were chosen on development data only (phantom galleries of seeds 5001 and 5002,
400 RSNA films of the training split; never the reported seeds or validation films): 10
directions at the 99th percentile flagged 16-18% of real films outright, took real controls
"unaffected first or flagged" from 90.0/88.7% to 97.2/96.5%, and flagged no held-out phantom
whose disorder is in the gallery (5, 20 and 40 directions, the 95th percentile and a
Ledoit-Wolf Mahalanobis distance were tried beside it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.decomposition import PCA

SUPPORT_COMPONENTS = 10
SUPPORT_QUANTILE = 0.99
SUPPORT_FOLDS = 5
MIN_SUPPORT_CASES = 50  # below this a gallery has no leading directions worth the name: no support check


@dataclass(frozen=True)
class GallerySupport:
    """The gallery's principal subspace and the residual beyond which a query is outside it."""

    mean: list[float]
    components: list[list[float]]  # (SUPPORT_COMPONENTS, D) orthonormal rows
    threshold: float  # on `residual`
    held_out_outside: float  # share of the gallery's own cases outside, each with its patient's fold left out of the fit

    def residual(self, embeddings: np.ndarray) -> np.ndarray:
        """(Q,) Euclidean length of each embedding's part off the subspace."""
        return _residual(np.asarray(self.mean), np.asarray(self.components), np.atleast_2d(np.asarray(embeddings, dtype=np.float64)))

    def outside(self, embeddings: np.ndarray) -> np.ndarray:
        """(Q,) bool: the embedding lies further off the gallery's subspace than its own cases do."""
        return self.residual(embeddings) > self.threshold

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> GallerySupport:
        return cls([float(v) for v in data["mean"]], [[float(v) for v in row] for row in data["components"]], **_scalars(data))


def _scalars(data: dict) -> dict:
    return {"threshold": float(data["threshold"]), "held_out_outside": float(data["held_out_outside"])}


def _fit_subspace(embeddings: np.ndarray, components: int) -> PCA:
    return PCA(n_components=components, svd_solver="full").fit(embeddings)


def _residual(mean: np.ndarray, basis: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    centred = embeddings - mean
    return np.linalg.norm(centred - (centred @ basis.T) @ basis, axis=1)


def fit_support(
    embeddings: np.ndarray,
    patients: list[str],
    components: int = SUPPORT_COMPONENTS,
    quantile: float = SUPPORT_QUANTILE,
    folds: int = SUPPORT_FOLDS,
    seed: int = 0,
) -> GallerySupport | None:
    """The support of a gallery's cases (unit rows); None for a gallery under `MIN_SUPPORT_CASES`
    cases or with fewer patients than folds (no held-out residuals to set the threshold by)."""
    x = np.asarray(embeddings, dtype=np.float64)
    patient_ids = np.asarray(patients, dtype=str)
    unique = np.unique(patient_ids)
    if len(x) < max(MIN_SUPPORT_CASES, 2 * components) or len(unique) < folds:
        return None
    fold_of_patient = dict(zip(unique, np.random.default_rng(seed).permutation(len(unique)) % folds, strict=True))
    fold = np.array([fold_of_patient[p] for p in patient_ids])
    held_out = np.empty(len(x))
    for f in range(folds):
        inside = fold == f
        pca = _fit_subspace(x[~inside], components)
        held_out[inside] = _residual(pca.mean_, pca.components_, x[inside])
    threshold = float(np.quantile(held_out, quantile))
    pca = _fit_subspace(x, components)
    return GallerySupport(pca.mean_.tolist(), pca.components_.tolist(), threshold, float(np.mean(held_out > threshold)))
