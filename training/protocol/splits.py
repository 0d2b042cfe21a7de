"""GestaltMatcher-Arc's four settings over random gallery/test draws, split by patient.

Frequent disorders (F) are the ones the model was trained on; rare disorders (R) are the
rest, which reach the gallery without retraining. In every draw, half the patients of each
frequent disorder and of each rare disorder form the gallery (at least one patient, and
at least one left to query), the others are queried:

    F->F    frequent queries, frequent gallery        R->R    rare queries, rare gallery
    F->F+R  frequent queries, both galleries          R->F+R  rare queries, both galleries

No patient is ever on both sides, so a patient's other films are never evidence for it.
Disorders with a single patient cannot be split and are listed as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from matcher.errors import Bone2GeneError

SETTINGS = ("F->F", "R->R", "F->F+R", "R->F+R")


class EvaluationError(Bone2GeneError, ValueError):
    """A manifest or model that cannot be evaluated (no patients to split, no held-out disorder);
    the message says why and what to give."""


@dataclass(frozen=True)
class Draw:
    """Row indices (into the evaluated table) on each side of one random split."""

    number: int
    frequent_gallery: np.ndarray
    frequent_test: np.ndarray
    rare_gallery: np.ndarray
    rare_test: np.ndarray

    def setting(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(gallery rows, query rows) of one of `SETTINGS`."""
        both = np.concatenate([self.frequent_gallery, self.rare_gallery])
        return {
            "F->F": (self.frequent_gallery, self.frequent_test),
            "R->R": (self.rare_gallery, self.rare_test),
            "F->F+R": (both, self.frequent_test),
            "R->F+R": (both, self.rare_test),
        }[name]


@dataclass(frozen=True)
class DisorderGroups:
    frequent: tuple[str, ...]
    rare: tuple[str, ...]
    unsplittable: tuple[str, ...]  # one patient only: neither gallery nor query


def disorder_groups(table: pd.DataFrame, trained_on: Sequence[str]) -> DisorderGroups:
    """Frequent = diagnosed disorders the model was trained on; rare = the others; each needs two patients."""
    diagnosed = table[table["disorder"].notna()]
    patients = diagnosed.groupby("disorder")["patient_id"].nunique()
    splittable = {str(d) for d, n in patients.items() if n >= 2}
    trained = set(trained_on)
    return DisorderGroups(
        tuple(sorted(d for d in splittable if d in trained)),
        tuple(sorted(d for d in splittable if d not in trained)),
        tuple(sorted(str(d) for d, n in patients.items() if n < 2)),
    )


def patient_split(patients: np.ndarray, fraction: float, rng: np.random.Generator, keep_both_sides: bool = False) -> np.ndarray:
    """The one patient splitter: a bool mask over `patients` (one entry per film) that is True for
    every film of about `fraction` of the distinct patients, drawn at random. `keep_both_sides`
    leaves at least one patient on each side (when there are two). A patient's films never part."""
    patients = np.asarray(patients).astype(str)
    distinct = np.unique(patients)
    count = round(fraction * len(distinct))
    if keep_both_sides:
        count = min(len(distinct) - 1, max(1, count))
    chosen = rng.choice(distinct, count, replace=False) if count > 0 else np.zeros(0, dtype=distinct.dtype)
    return np.isin(patients, chosen)


def _split_disorders(
    table: pd.DataFrame, disorders: Sequence[str], rng: np.random.Generator, fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    gallery, test = [], []
    for disorder in disorders:
        rows = table.index[table["disorder"] == disorder]
        in_gallery = patient_split(table.loc[rows, "patient_id"].to_numpy(), fraction, rng, keep_both_sides=True)
        gallery.append(rows[in_gallery])
        test.append(rows[~in_gallery])
    as_array = lambda parts: np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)  # noqa: E731
    return as_array(gallery), as_array(test)


def random_draws(table: pd.DataFrame, groups: DisorderGroups, draws: int, seed: int, gallery_fraction: float = 0.5) -> list[Draw]:
    """`draws` independent splits; `table` must have a 0..N-1 index."""
    rng = np.random.default_rng(seed)
    result = []
    for number in range(draws):
        frequent_gallery, frequent_test = _split_disorders(table, groups.frequent, rng, gallery_fraction)
        rare_gallery, rare_test = _split_disorders(table, groups.rare, rng, gallery_fraction)
        result.append(Draw(number, frequent_gallery, frequent_test, rare_gallery, rare_test))
    return result
