"""The two training sets of `training.joint`, as tensors with their splits.

Synthetic: film views of a domain-randomised cohort, split by patient (held-out disorders
never reach training; they play the "rare" disorders added later without retraining).
Real: the RSNA films, split by id (`training.real_data.is_validation_id`).
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from matcher.deeplasia import DEEPLASIA_AGE_SCALE
from training.real_data import RealSet, split_real
from training.train import split_by_patient


def _z_age(months: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(
        ((np.asarray(months, np.float64) - DEEPLASIA_AGE_SCALE.age_mean) / DEEPLASIA_AGE_SCALE.age_sd).astype(np.float32)
    )


def _real_fields(real: RealSet, exclude_real_ids: Set[int]) -> dict:
    """The real films' part of `JointData`, split by id."""
    real_train, real_val = split_real(real, exclude_real_ids)
    return {
        "real": real,
        "real_views": torch.from_numpy(real.views),
        "real_age": _z_age(real.bone_age_months),
        "real_male": torch.from_numpy(real.male),
        "real_train": np.flatnonzero(real_train),
        "real_val": np.flatnonzero(real_val),
    }


@dataclass
class JointData:
    labels: dict[str, int]
    synth_table: pd.DataFrame
    synth_views: torch.Tensor  # uint8 (N, 100, 100)
    synth_label: torch.Tensor  # long, -1 outside training
    synth_age: torch.Tensor  # z-scored
    synth_male: torch.Tensor
    synth_train: np.ndarray  # indices
    synth_val: np.ndarray
    synth_held_out: np.ndarray
    real: RealSet
    real_views: torch.Tensor
    real_age: torch.Tensor
    real_male: torch.Tensor
    real_train: np.ndarray
    real_val: np.ndarray
    held_out: tuple[str, ...]
    device: torch.device = torch.device("cpu")

    @property
    def synth_train_labels(self) -> np.ndarray:
        return self.synth_label[torch.from_numpy(self.synth_train)].cpu().numpy()

    @classmethod
    def build(
        cls,
        views: np.ndarray,
        table: pd.DataFrame,
        real: RealSet,
        held_out: tuple[str, ...],
        exclude_real_ids: Set[int],
        val_fraction: float = 0.15,
        seed: int = 0,
    ) -> JointData:
        """Splits and labels; `views`/`table` from `training.domain.synthetic_views`."""
        table = table.reset_index(drop=True)
        train, val, rare = split_by_patient(table, held_out, val_fraction, seed)
        names = sorted(table.loc[train, "disorder"].fillna("").astype(str).unique())
        if "unaffected" not in names:
            raise ValueError("the synthetic cohort has no unaffected training cases; real films need that class")
        labels = {name: i for i, name in enumerate(names)}
        label = np.array([labels.get(str(d), -1) for d in table["disorder"].fillna("")], dtype=np.int64)
        return cls(
            labels=labels,
            synth_table=table,
            synth_views=torch.from_numpy(views),
            synth_label=torch.from_numpy(label),
            synth_age=_z_age(table["bone_age_months"]),
            synth_male=torch.from_numpy((table["sex"] == "M").to_numpy(np.float32)),
            synth_train=np.flatnonzero(train),
            synth_val=np.flatnonzero(val),
            synth_held_out=np.flatnonzero(rare),
            held_out=tuple(held_out),
            **_real_fields(real, exclude_real_ids),
        )

    @classmethod
    def real_only(cls, real: RealSet, labels: dict[str, int], exclude_real_ids: Set[int]) -> JointData:
        """Real films alone (bone age and sex; no synthetic batch): `labels` are the starting
        model's, kept so that its embedding head keeps its shape."""
        empty = np.zeros(0, dtype=np.int64)
        return cls(
            labels=dict(labels),
            synth_table=pd.DataFrame({"case_id": [], "patient_id": [], "disorder": [], "sex": [], "bone_age_months": []}),
            synth_views=torch.zeros((0, *real.views.shape[1:]), dtype=torch.uint8),
            synth_label=torch.zeros(0, dtype=torch.long),
            synth_age=torch.zeros(0),
            synth_male=torch.zeros(0),
            synth_train=empty,
            synth_val=empty,
            synth_held_out=empty,
            held_out=(),
            **_real_fields(real, exclude_real_ids),
        )

    @property
    def has_synthetic(self) -> bool:
        return len(self.synth_train) > 0

    def to(self, device: torch.device) -> JointData:
        names = ["synth_views", "synth_label", "synth_age", "synth_male", "real_views", "real_age", "real_male"]
        move = {name: getattr(self, name).to(device) for name in names}
        return replace(self, device=device, **move)

    def provenance(self) -> dict:
        return {
            "training_disorders": sorted(self.labels),
            "held_out_disorders": list(self.held_out),
            "data_sources": {
                "synthetic": {"cases": len(self.synth_table), "training": len(self.synth_train)},
                "rsna_100px": {
                    "films": len(self.real),
                    "training": len(self.real_train),
                    "validation": len(self.real_val),
                    "validation_rule": "id % 20 == 0; ids of ../shared/real_hands_labelled never trained on",
                },
            },
        }
