"""A model's pooled backbone features of a cohort's films, stored with the model they came from.

Why: refitting an embedding head (`training.head_refit`) trains one linear layer on the frozen
backbone's pooled features. Reading the films through the backbone is the slow part, so the
features are read once, through the same gate and crops as the product, and stored beside the
run; a stored set names its model's fingerprint so that it is never used with another model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from matcher.checkpoint import load_model
from matcher.manifest import read_case_manifest
from training.distributed import pick_device
from training.protocol.encoders import run_network
from training.protocol.inputs import prepare_inputs
from training.protocol.splits import EvaluationError

Progress = Callable[[int, int], None] | None  # (films done, films in all)
CASE_COLUMNS = ("case_id", "patient_id", "disorder", "sex", "age_months")  # what a feature set keeps of its manifest


@dataclass(frozen=True)
class FeatureSet:
    """Pooled features (N, F) and the model's embeddings (N, D) of the accepted films of a cohort."""

    model: str  # the fingerprint of the model that read them
    features: np.ndarray
    embedding: np.ndarray
    cases: pd.DataFrame  # CASE_COLUMNS, aligned with the rows

    def save(self, path: Path) -> FeatureSet:
        """Store the set at `path` (an .npz) and return it, so that reading and storing is one expression."""
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = {c: self.cases[c].to_numpy(dtype=float if c == "age_months" else str) for c in CASE_COLUMNS if c in self.cases}
        np.savez(path, model=self.model, features=self.features, embedding=self.embedding, **columns)
        return self

    @classmethod
    def load(cls, path: Path, model: str) -> FeatureSet:
        """The set stored at `path`; an error unless `model` (a fingerprint) read it."""
        try:
            data = np.load(path, allow_pickle=False)
            stored = str(data["model"])
            cases = pd.DataFrame({c: data[c] for c in CASE_COLUMNS if c in data.files})
            features = data["features"]
            embedding = data["embedding"] if "embedding" in data.files else np.zeros((len(features), 0), np.float32)
        except (OSError, ValueError, KeyError) as error:
            raise EvaluationError(f"{path} is not a stored feature set ({error}); read the films again from their manifest") from error
        if stored != model:
            raise EvaluationError(f"{path} holds features of model {stored[:12]}, not of {model[:12]}; read the films again")
        if "disorder" not in cases:
            raise EvaluationError(f"{path} has no disorder per film; read the films again from their manifest")
        return cls(stored, features, embedding, cases)


def read_features(
    model_dir: Path, manifest: Path, limit: int = 0, device: str = "auto", workers: int = 0, progress: Progress = None, seed: int = 0
) -> FeatureSet:
    """The features of `manifest`'s films with a diagnosis (a random `limit` of them when it is set),
    read by `model_dir`'s encoder; films the gate refuses are left out."""
    table = read_case_manifest(manifest)
    table = table[table["disorder"].notna()].reset_index(drop=True)
    if not len(table):
        raise EvaluationError(f"{manifest} has no film with a diagnosis; the features are read to learn disorders")
    if limit and len(table) > limit:
        table = table.sample(limit, random_state=seed).reset_index(drop=True)
    model, card = load_model(model_dir)
    model.attach_reader(None)  # features and embeddings are kept; bone age and sex are not needed
    prepared = prepare_inputs([Path(p) for p in table["path"]], [model.config], workers, progress)
    table = table[prepared.accepted].reset_index(drop=True)
    male = (table["sex"] == "M").to_numpy(np.float32)
    reading = run_network(model, prepared.for_config(model.config), male, pick_device(device))
    return FeatureSet(card.fingerprint, reading.features, reading.embedding, table[list(CASE_COLUMNS)])
