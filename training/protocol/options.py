"""What `bone2gene evaluate` was asked: one set of options for every suite (`suites`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matcher.rank import DEFAULT_RULE, RankingRule
from training.protocol.splits import EvaluationError


@dataclass(frozen=True)
class EvaluationConfig:
    model: Path
    manifest: Path | None = None  # the cases (protocol, unseen)
    out: Path | None = None  # where the suite writes its report
    features_model: Path | None = None  # a bone-age model (Deeplasia checkpoint or ours) for the no-metric-learning baseline
    deeplasia_parameters: Path | None = None
    trust_pickle: bool = False
    draws: int = 10
    gallery_fraction: float = 0.5
    rule: RankingRule = DEFAULT_RULE
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    real_films: Path | None = None  # a folder holding rsna_100px, real_hands_labelled and real_hands (real)
    baseline: Path | None = None  # an earlier model: a paired latency run (real), its space beside (space)
    fit_manifest: Path | None = None  # the cohort the combinations of evidence are fitted on (evidence)
    renderer: str = "classic"  # the phantom galleries' renderer (real)

    def needs_manifest(self, suite: str) -> Path:
        if self.manifest is None:
            raise EvaluationError(f"the {suite} suite needs --manifest (a case manifest CSV with diagnoses and patient ids)")
        return self.manifest
