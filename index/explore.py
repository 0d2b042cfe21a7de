"""UMAP maps of a gallery's feature space, fitted once and kept with the gallery.

A map is fitted on a gallery (or a filtered subset) with umap-learn (cosine metric) and
stored under `<gallery>/maps/` together with the model fingerprint and the gallery
generation it was fitted at; asking again returns the stored map until the gallery
changes. New queries are placed on a map with UMAP's `transform` (no refit). umap-learn
imports numba and JIT-compiles on first use (seconds), so it is imported only here, only
when a map is needed, never at service start-up.

The stored reducer is a pickle written by this module into the gallery directory; it is
read back only from there (a gallery directory is trusted like the database beside it).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from index.filters import Filters
from index.store import Gallery
from matcher.errors import Bone2GeneError

MIN_CASES = 10


class MapError(Bone2GeneError, ValueError):
    """A map that cannot be made; the message says why."""

    title = "No map yet"


@dataclass(frozen=True)
class MapSettings:
    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 42


@dataclass
class CohortMap:
    key: str
    model_fingerprint: str
    generation: int
    filters: dict
    settings: MapSettings
    case_ids: list[str]
    coords: np.ndarray
    reducer: object
    placed_by_transform: int = 0  # cases added since the fit, placed with `place` (see extend_map)
    fitted_generation: int | None = None  # the generation the layout was fitted at (default: `generation`)

    def __post_init__(self) -> None:
        if self.fitted_generation is None:
            self.fitted_generation = self.generation

    def place(self, embeddings: np.ndarray) -> np.ndarray:
        """2-D positions of new embeddings on this map (no refit)."""
        vectors = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        return np.asarray(self.reducer.transform(vectors), dtype=np.float64)


def map_key(fingerprint: str, filters: Filters | None, settings: MapSettings) -> str:
    text = json.dumps(
        {"model": fingerprint, "filters": ({} if filters is None else filters.to_dict()), "settings": asdict(settings)}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fit_umap(vectors: np.ndarray, settings: MapSettings) -> tuple[object, np.ndarray]:
    import umap  # slow import (numba): only when a map is fitted

    reducer = umap.UMAP(
        n_neighbors=min(settings.n_neighbors, len(vectors) - 1),
        min_dist=settings.min_dist,
        metric="cosine",
        random_state=settings.seed,
        n_jobs=1,
    )
    coords = reducer.fit_transform(vectors)
    return reducer, np.asarray(coords, dtype=np.float64)


def cohort_map(gallery: Gallery, filters: Filters | None = None, settings: MapSettings | None = None, refit: bool = False) -> CohortMap:
    """The stored map for this gallery state and subset, fitted when missing or stale."""
    settings = settings or MapSettings()
    fingerprint = gallery.model_fingerprint
    key = map_key(fingerprint, filters, settings)
    directory = gallery.path / "maps"
    meta_path, model_path = directory / f"{key}.json", directory / f"{key}.pkl"
    generation = gallery.generation
    if not refit and meta_path.is_file() and model_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta["generation"] == generation and meta["model_fingerprint"] == fingerprint:
            with model_path.open("rb") as handle:
                reducer = pickle.load(handle)
            return CohortMap(key, fingerprint, generation, meta["filters"], settings, meta["case_ids"], np.array(meta["coords"]), reducer)
    table = gallery.cases(filters)
    if len(table) < MIN_CASES:
        raise MapError(f"a map needs at least {MIN_CASES} cases; this selection has {len(table)}")
    vectors = gallery.vectors_of(table["row"].tolist())
    reducer, coords = fit_umap(vectors, settings)
    coords = coords.round(5)  # what is stored is what every caller sees
    directory.mkdir(exist_ok=True)
    tmp_model, tmp_meta = model_path.with_suffix(".pkl.tmp"), meta_path.with_suffix(".json.tmp")
    with tmp_model.open("wb") as handle:
        pickle.dump(reducer, handle)
    tmp_meta.write_text(
        json.dumps(
            {
                "generation": generation,
                "model_fingerprint": fingerprint,
                "filters": ({} if filters is None else filters.to_dict()),
                "settings": asdict(settings),
                "case_ids": table["case_id"].tolist(),
                "coords": coords.tolist(),
            }
        )
    )
    os.replace(tmp_model, model_path)
    os.replace(tmp_meta, meta_path)
    return CohortMap(
        key, fingerprint, generation, ({} if filters is None else filters.to_dict()), settings, table["case_id"].tolist(), coords, reducer
    )


def extend_map(fitted: CohortMap, gallery: Gallery) -> CohortMap:
    """A fitted map brought up to the gallery's current state without refitting.

    Cases still in the gallery keep their fitted positions, cases added since are placed
    with `transform` (as queries are), removed ones are left out. A service answers with
    this at once while the refit that reflects the new cases' influence on the layout
    runs in the background.
    """
    generation = gallery.generation
    table = gallery.cases(Filters.from_dict(fitted.filters))
    position = {case_id: i for i, case_id in enumerate(fitted.case_ids)}
    known = table["case_id"].isin(position.keys()).to_numpy()
    kept, added = table[known], table[~known]
    coords = [fitted.coords[[position[c] for c in kept["case_id"]]].reshape(-1, 2)]
    if len(added):
        coords.append(fitted.place(gallery.vectors_of(added["row"].tolist())).round(5))
    return CohortMap(
        fitted.key,
        fitted.model_fingerprint,
        generation,
        fitted.filters,
        fitted.settings,
        kept["case_id"].tolist() + added["case_id"].tolist(),
        np.vstack(coords),
        fitted.reducer,
        placed_by_transform=len(added),
        fitted_generation=fitted.fitted_generation,
    )


def map_table(gallery: Gallery, cohort: CohortMap) -> pd.DataFrame:
    """Map coordinates with the case metadata needed to colour and facet them."""
    cases = gallery.cases().set_index("case_id")
    table = cases.loc[cohort.case_ids].reset_index()
    table["x"], table["y"] = cohort.coords[:, 0], cohort.coords[:, 1]
    table["bone_age_deviation_months"] = table["bone_age_months"] - table["age_months"]
    table["disorder"] = table["disorder"].fillna("(undiagnosed)")
    table["gene"] = table["gene"].fillna("(none)")
    table["source"] = table["source"].replace("", "(none)")
    return table.drop(columns=["row", "image_sha256", "added"])
