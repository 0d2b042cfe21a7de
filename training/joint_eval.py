"""Validation of a jointly trained model, once per epoch.

- real films (held-out ids): bone-age MAD in months, sex accuracy overall and on films with
  a bone age over 120 months (RSNA gives no chronological age: bone age stands in for
  "children over 10 years");
- synthetic validation patients: disorder top-1/top-5 against the synthetic training gallery
  (nearest case per disorder, macro-averaged);
- real control hands against the same gallery: how often "unaffected" ranks first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from matcher.batch import Reading, read_batch
from matcher.model import Bone2GeneModel
from training.evaluate import disorder_ranks, topk_report
from training.film_augment import views_to_input
from training.joint_data import JointData

OLDER_BONE_AGE_MONTHS = 120


@torch.inference_mode()
def embed_views(model: Bone2GeneModel, views: torch.Tensor, male: torch.Tensor, size: int, batch_size: int = 256) -> Reading:
    """Run the network over uint8 film views (no augmentation), given sex as 1.0/0.0: bone age and sex
    from its own heads, the ones a trainer trains."""
    model.eval()
    parts = []
    for start in range(0, len(views), batch_size):
        x = views_to_input(views[start : start + batch_size], size).contiguous(memory_format=torch.channels_last)
        parts.append(read_batch(model, x, male[start : start + batch_size, None].float(), own_heads=True))
    return Reading.concatenate(parts, model.config.embedding_dim)


@dataclass(frozen=True)
class RealFigures:
    bone_age_mad_months: float
    sex_accuracy: float
    sex_accuracy_older: float
    older: int


def real_figures(predicted_months: np.ndarray, male_probability: np.ndarray, bone_age: np.ndarray, male: np.ndarray) -> RealFigures:
    older = bone_age > OLDER_BONE_AGE_MONTHS
    right = (male_probability > 0.5) == (male > 0.5)
    return RealFigures(
        round(float(np.mean(np.abs(predicted_months - bone_age))), 2),
        round(float(right.mean()), 4),
        round(float(right[older].mean()) if older.any() else float("nan"), 4),
        int(older.sum()),
    )


def evaluate_joint(model: Bone2GeneModel, data: JointData, size: int) -> dict:
    real_index = torch.from_numpy(data.real_val).to(data.device)
    real = embed_views(model, data.real_views[real_index], data.real_male[real_index], size)
    figures = real_figures(
        real.bone_age_months, real.male_probability, data.real.bone_age_months[data.real_val], data.real.male[data.real_val]
    )
    real_report = {
        "real_val_bone_age_mad": figures.bone_age_mad_months,
        "real_val_sex_accuracy": figures.sex_accuracy,
        "real_val_sex_accuracy_ba_over_120": figures.sex_accuracy_older,
    }
    if not data.has_synthetic:
        return real_report
    s_index = np.concatenate([data.synth_train, data.synth_val])
    synth = embed_views(
        model, data.synth_views[torch.from_numpy(s_index).to(data.device)], data.synth_male[torch.from_numpy(s_index).to(data.device)], size
    )
    n_train = len(data.synth_train)
    disorder = data.synth_table["disorder"].fillna("").astype(str).to_numpy()[s_index]
    patients = data.synth_table["patient_id"].astype(str).to_numpy()[s_index]
    ranks, codes, _ = disorder_ranks(
        synth.embedding[n_train:],
        disorder[n_train:],
        patients[n_train:],
        synth.embedding[:n_train],
        disorder[:n_train],
        patients[:n_train],
    )
    controls = np.full(len(data.real_val), "unaffected")
    control_ranks, _, _ = disorder_ranks(
        real.embedding,
        controls,
        np.array([f"real-{i}" for i in data.real_val]),
        synth.embedding[:n_train],
        disorder[:n_train],
        patients[:n_train],
    )
    return {
        **real_report,
        "real_controls_unaffected_first": round(float(np.mean(control_ranks == 1)), 4),
        **{f"synthetic_val_{k}": v for k, v in topk_report(ranks, codes, (1, 5)).items()},
    }
