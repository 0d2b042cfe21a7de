"""A gallery query answered in the API's shape (`schemas.Ranking`): used by analyses and queries."""

from __future__ import annotations

import numpy as np

from api.schemas import Ranking
from index.evidence import QueryEvidence
from index.filters import Filters
from index.query import calibration_for, query
from index.store import Gallery
from matcher.rank import DEFAULT_RULE, RankingRule


def rank(
    gallery: Gallery,
    embedding: np.ndarray,
    top: int,
    filters: Filters | None = None,
    rule: RankingRule = DEFAULT_RULE,
    evidence: QueryEvidence | None = None,
) -> Ranking:
    calibration = calibration_for(gallery, rule=rule)
    result = query(gallery, embedding, top_k=top, filters=filters, calibration=calibration, rule=rule, evidence=evidence)
    return Ranking.model_validate(
        {**result.to_json(), "disorders": [d.to_json() for d in result.disorders], "genes": [g.to_json() for g in result.genes]}
    )
