"""The last step of an age and sex reader's training (`training.age_sex_reader`).

The run's network predicts in eval mode from BatchNorm running statistics that trail the
weights (Deeplasia's momentum 0.01). One pass over training films at inference preprocessing
re-estimates them (`training.batchnorm`). The step is applied unconditionally, decided before
any validation figure was read; both sets of held-out figures are returned so that the gain
is on record (the model card gives them for the bundled reader).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from matcher.model import Bone2GeneModel
from training.batchnorm import film_views_input, recalibrate_batchnorm
from training.joint_data import JointData
from training.joint_eval import evaluate_joint


@dataclass(frozen=True)
class FinishReport:
    as_trained: dict
    recalibrated: dict
    films: int

    def provenance(self) -> dict:
        return {
            "batchnorm_recalibrated_on": f"{self.films} training films (RSNA 100 px, seeded choice)",
            "validation_as_trained": self.as_trained,
            "validation": self.recalibrated,
        }


def finish_age_sex_reader(model: Bone2GeneModel, data: JointData, films: int = 4000, seed: int = 0) -> FinishReport:
    """Re-estimate `model`'s BatchNorm statistics in place from `films` of `data`'s real training films."""
    size = model.config.input_size
    before = evaluate_joint(model, data, size)
    chosen = np.random.default_rng(seed).choice(data.real_train, min(films, len(data.real_train)), replace=False)
    recalibrate_batchnorm(model, data.real.views[np.sort(chosen)], batch_size=64, to_input=film_views_input(size))
    return FinishReport(before, evaluate_joint(model, data, size), len(chosen))
