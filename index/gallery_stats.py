"""What a gallery holds, counted: cases, patients, disorders, sexes, sources, age bands."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from matcher.age_bands import AGE_BANDS, in_band


@dataclass
class GalleryStats:
    cases: int
    patients: int
    disorders_with_cases: int
    catalogue_disorders: int
    genes: int
    by_disorder: dict[str, int]
    by_sex: dict[str, int]
    by_source: dict[str, int]
    by_age_band: dict[str, int]
    model_fingerprint: str
    embedding_dim: int
    index_factory: str
    index_vectors: int
    generation: int
    image_bytes: int
    extras: dict = field(default_factory=dict)


def count_cases(table: pd.DataFrame) -> dict:
    """The GalleryStats fields that come from the case table (`Gallery.cases()`)."""
    return {
        "cases": len(table),
        "patients": int(table["patient_id"].nunique()),
        "disorders_with_cases": int(table["disorder"].dropna().nunique()),
        "by_disorder": {str(k): int(v) for k, v in table["disorder"].fillna("(undiagnosed)").value_counts().items()},
        "by_sex": {str(k): int(v) for k, v in table["sex"].value_counts().items()},
        "by_source": {str(k or "(none)"): int(v) for k, v in table["source"].value_counts().items()},
        "by_age_band": {band.name: int(in_band(table["age_months"], band).sum()) for band in AGE_BANDS},
    }
