"""Request and response models of the HTTP API (they make the OpenAPI document)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from index.query import QueryResult

DISCLAIMER = (
    "Similarity ranking to support a clinical geneticist's differential diagnosis. It is not a diagnosis: "
    "scores say how closely the radiograph resembles confirmed cases in this gallery, which may be small or synthetic."
)


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class Me(BaseModel):
    key_id: str
    role: Literal["reader", "curator", "admin"]
    label: str


class ModelInfo(BaseModel):
    fingerprint: str
    backbone: str
    input_size: int
    embedding_dim: int
    sex_head_trained: bool
    embedding_trained: bool
    training_disorders: list[str]
    note: str


class RankedEntry(BaseModel):
    label: str
    name: str | None
    rank: int
    score: float | None = Field(description="cosine similarity of the nearest gallery case (1 = identical)")
    evidence: list[str] = Field(description="case ids of the nearest cases, best first")
    cases_in_gallery: int
    probability: float | None = Field(description="calibrated probability that this is the right label, if calibrated")
    interval: list[float] | None = Field(description="90% interval of the probability")
    sources: dict | None = Field(
        None,
        description=(
            "with HPO terms, candidate genes or a measured hand: combined_probability, each source's contribution (logit),"
            " phenotype_similarity, gene_hits, profile_match (log-likelihood ratio of the measured profile, disorder against"
            " unaffected) and typical_profile (the disorder's typical z per bone, MC1-MC5, PP1-PP5, MP2-MP5, DP1-DP5)"
        ),
    )


class SimilarCase(BaseModel):
    case_id: str
    similarity: float
    disorder: str | None
    disorder_name: str | None
    gene: str | None
    sex: str
    age_months: float
    source: str


class Ranking(BaseModel):
    disorders: list[RankedEntry]
    genes: list[RankedEntry]
    cases: list[SimilarCase]
    no_close_match: bool
    calibration: str
    searched_cases: int
    gallery_cases: int
    in_gallery_probability: float | None = Field(
        None,
        description="calibrated probability that the query's disorder is one of the gallery's (from the nearest diagnosed "
        "case's distance relative to how close the first-ranked disorder's cases lie to each other); every disorder's probability includes it. None: the gallery is not calibrated",
    )
    profile_z: list[float | None] | None = Field(
        None,
        description="the query's pattern profile (z per bone, MC1-MC5, PP1-PP5, MP2-MP5, DP1-DP5) against the gallery's norms, "
        "as the ranking read it; null without a measured hand",
    )
    disclaimer: str = DISCLAIMER

    @classmethod
    def of(cls, result: QueryResult) -> Ranking:
        """A gallery query's result (`api.use_cases.rank_gallery`) in the API's shape."""
        return cls.model_validate(
            {**result.to_json(), "disorders": [d.to_json() for d in result.disorders], "genes": [g.to_json() for g in result.genes]}
        )


class Quality(BaseModel):
    codes: list[str]
    measurements: dict[str, float | int | str | bool | None]
    warnings: list[str] = []  # usable, but worth knowing (e.g. a rotated hand)


class Links(BaseModel):
    thumbnail: str
    overlay: str | None


class MapPoint(BaseModel):
    case_id: str
    x: float
    y: float
    disorder: str
    disorder_name: str | None
    sex: str
    age_months: float


class CohortMapOut(BaseModel):
    key: str
    generation: int  # the gallery state the points show
    fitted_generation: int = Field(description="the gallery state the layout was fitted at; older while a refit runs")
    placed_by_transform: int = Field(description="cases added since the fit, placed on it without refitting")
    model_fingerprint: str
    points: list[MapPoint]
    query_position: list[float] | None = Field(None, description="where the analysis given as analysis_id lands on this map")


class LandmarkOut(BaseModel):
    index: int = Field(description="0-36, the Digital Hand Atlas order")
    name: str
    x: float | None = Field(description="in the uploaded image's pixels; null where the point was not found")
    y: float | None
    confidence: float


class BoneOut(BaseModel):
    bone: str = Field(description="MC1-MC5, PP1-PP5, MP2-MP5, DP1-DP5")
    length_px: float | None = Field(description="joint to joint, in the image's pixels (its spacing is rarely known)")
    proportion: float | None = Field(description="the length over the hand's size (geometric mean of MC1 and the phalanges)")
    z: float | None = Field(description="pattern-profile z-score for age and sex; null where not measurable or outside the norms' ages")
    proximal: int = Field(description="the landmark (index) the bone's length starts at")
    distal: int = Field(description="the landmark (index) it ends at")


class AnalysisResult(BaseModel):
    analysis_id: str
    accepted: Literal[True]
    sex: str
    sex_source: str
    age_months: float | None
    bone_age_months: float
    bone_age_deviation_months: float | None
    bone_age_z: float | None
    bone_age_z_note: str | None
    male_probability: float
    sex_warning: str | None
    quality: Quality
    ranking: Ranking
    links: Links
    map_position: list[float] | None = Field(None, description="the query on the gallery's cohort map (x, y), once a map was drawn")
    landmarks: list[LandmarkOut] | None = Field(None, description="37 hand landmarks; null where no landmark model is installed")
    image_size: list[int] = Field(description="the radiograph's width and height in pixels (the landmarks' frame)")
    bones: list[BoneOut] | None = Field(None, description="the 19 tubular bones and their pattern profile")
    indices: dict | None = Field(
        None,
        description="classical derived indices: metacarpal_sign (offset_of_mc3, positive) and metacarpal_index "
        "(not measurable from landmarks: says why)",
    )
    timings_ms: dict[str, float]


Vector = list[Annotated[float, Field(ge=-1.0, le=1.0)]]


class EmbeddingQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    embedding: Vector | None = Field(
        None, min_length=1, max_length=4096, description="unit-length embedding from this gallery's model (each number in [-1, 1])"
    )
    embeddings: list[Annotated[Vector, Field(min_length=1, max_length=4096)]] | None = Field(
        None,
        min_length=1,
        max_length=20,
        description="instead of `embedding`: the embeddings of several films of ONE patient (visits, both hands), combined into one query",
    )
    top: int = Field(10, ge=1, le=100)
    sex: Literal["M", "F"] | None = None
    age_min_months: float | None = Field(None, ge=0, le=1200)
    age_max_months: float | None = Field(None, ge=0, le=1200)
    source: str | None = Field(None, max_length=200)
    hpo: list[Annotated[str, Field(max_length=20)]] = Field(default_factory=list, max_length=200, description="HPO ids seen in the patient")
    hpo_excluded: list[Annotated[str, Field(max_length=20)]] = Field(default_factory=list, max_length=200, description="HPO ids excluded")
    candidate_genes: list[Annotated[str, Field(max_length=20)]] | None = Field(
        None, max_length=20000, description="an exome's candidate genes (omit without an exome)"
    )

    @model_validator(mode="after")
    def _one_query(self) -> EmbeddingQuery:
        if (self.embedding is None) == (self.embeddings is None):
            raise ValueError("send either `embedding` (one film) or `embeddings` (several films of one patient), not both or neither")
        return self

    def vectors(self) -> list[list[float]]:
        return [self.embedding] if self.embedding is not None else list(self.embeddings or [])


class Case(BaseModel):
    case_id: str
    patient_id: str
    sex: str
    age_months: float
    disorder: str | None
    disorder_name: str | None
    gene: str | None
    bone_age_months: float | None
    source: str
    added: str
    hpo: list[str] = []  # HPO ids observed in the patient
    hpo_excluded: list[str] = []  # HPO ids looked for and absent


class CaseList(BaseModel):
    total: int
    cases: list[Case]


class NewCaseFromAnalysis(BaseModel):
    model_config = ConfigDict(extra="forbid")
    analysis_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    disorder: str = Field(min_length=1, max_length=300, description="catalogue id or name of the confirmed diagnosis")
    gene: str | None = Field(None, max_length=20, pattern=r"^[A-Za-z0-9.-]*$")
    patient_id: str | None = Field(None, max_length=100, pattern=r"^[A-Za-z0-9_.:-]*$", description="a pseudonym, never a real identifier")
    source: str = Field("", max_length=200)
    hpo: list[Annotated[str, Field(max_length=20)]] = Field(default_factory=list, max_length=200, description="HPO ids observed")
    hpo_excluded: list[Annotated[str, Field(max_length=20)]] = Field(default_factory=list, max_length=200, description="HPO ids excluded")


class Relabel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disorder: str | None = Field(None, max_length=300)
    gene: str | None = Field(None, max_length=20, pattern=r"^[A-Za-z0-9.-]*$")


class DisorderOut(BaseModel):
    id: str
    name: str
    category: str
    genes: list[str]
    omim: str | None
    orpha: str | None
    mondo: str | None
    nosology_group: int | None
    nosology_revision: int | None
    phenotypes: list[str] = []  # HPO ids
    cases: int


class GalleryStatsOut(BaseModel):
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


class Deleted(BaseModel):
    deleted: str
