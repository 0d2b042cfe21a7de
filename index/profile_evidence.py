"""The pattern profile as ranking evidence: each disorder's typical profile, learnt from its
gallery cases, and how much better it explains a query's measured profile than unaffected hands do.

A case's profile is its 19 bone z-scores (`matcher.bone_norms`, the gallery's norms, the case's
age and sex). A disorder's typical profile is, per bone, a mean and an SD of its cases' z,
shrunk towards the unaffected hand (mean 0, SD 1) as if `PRIOR_CASES` unaffected hands were
among them: a syndrome added with three cases gets a cautious profile at once, without
retraining, and a bone none of its cases shows stays neutral. The match of a query to a
disorder is the log-likelihood ratio of the query's z under the disorder's profile against the
unaffected one, summed over the bones measured on both. With SDs no smaller than the unaffected
one, a normal profile scores every disorder at or below zero, and a disorder whose cases look
normal scores about zero for anyone: the profile speaks for a disorder only where its cases
differ from the norm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from matcher.bone_norms import BoneNorms
from matcher.hand_scheme import BONE_NAMES

PRIOR_CASES = 2.0  # how many unaffected hands the prior weighs as
MIN_SD = 1.0  # a typical profile is never tighter than unaffected hands: the profile speaks through shifts, so a normal hand never favours a disorder
BONE_TERM_LIMIT = 3.0  # one bone's log-likelihood ratio is clipped: a misplaced landmark cannot decide alone
Z_LIMIT = 6.0  # query z beyond this is read as this


@dataclass(frozen=True)
class HandProfile:
    """One film's measured bones with what their z-scores need: the age at the film (chronological,
    else the bone age) and the sex."""

    lengths: np.ndarray  # (19,) any unit, NaN where not found
    age_months: float | None
    sex: str | None


def profile_z(films: Sequence[HandProfile], norms: BoneNorms) -> np.ndarray:
    """(19,) the z-scores of a query's films under `norms`, averaged over its films per bone (NaN: not measured)."""
    usable = [f for f in films if f.age_months is not None and f.sex in ("F", "M")]
    if not usable:
        return np.full(len(BONE_NAMES), np.nan)
    z = norms.z_table(
        np.stack([f.lengths for f in usable]), np.array([f.age_months / 12 for f in usable]), np.array([f.sex for f in usable])
    )
    with np.errstate(all="ignore"):
        measured = np.isfinite(z).sum(axis=0)
        return np.where(measured > 0, np.nansum(np.where(np.isfinite(z), z, 0.0), axis=0) / np.maximum(measured, 1), np.nan)


@dataclass(frozen=True)
class TypicalProfiles:
    """Per disorder (rows, `disorders` order) and bone: the typical z, its SD and how many cases measured it."""

    disorders: list[str]
    mean: np.ndarray  # (D, 19)
    sd: np.ndarray  # (D, 19)
    cases: np.ndarray  # (D, 19)

    @classmethod
    def fit(cls, z: np.ndarray, labels: Sequence[str]) -> TypicalProfiles:
        """From cases' z-scores (N, 19; NaN where not measured) and their disorders."""
        labels = np.asarray(labels, dtype=object)
        names = sorted(set(labels.tolist()))
        means, sds, counts = [], [], []
        for name in names:
            values = z[labels == name]
            found = np.isfinite(values)
            n = found.sum(axis=0)
            total = np.where(found, values, 0.0).sum(axis=0)
            mean = total / (n + PRIOR_CASES)  # the prior's hands add z = 0
            spread = np.where(found, (values - mean) ** 2, 0.0).sum(axis=0) + PRIOR_CASES * (1.0 + mean**2)
            means.append(mean)
            sds.append(np.maximum(np.sqrt(spread / (n + PRIOR_CASES)), MIN_SD))
            counts.append(n)
        shape = (len(names), len(BONE_NAMES))
        if not names:
            return cls([], np.zeros(shape), np.ones(shape), np.zeros(shape, int))
        return cls(names, np.stack(means), np.stack(sds), np.stack(counts))

    def typical(self, disorder: str) -> np.ndarray | None:
        """(19,) the disorder's typical z per bone (0 where none of its cases measured a bone); None: no measured case."""
        if disorder not in self.disorders:
            return None
        row = self.disorders.index(disorder)
        return self.mean[row] if self.cases[row].any() else None

    def match(self, query_z: np.ndarray, disorders: Sequence[str]) -> np.ndarray:
        """(D,) for each of `disorders`: the log-likelihood ratio of `query_z` under its typical
        profile against the unaffected one (0 for a disorder without measured cases, or a query without a profile)."""
        out = np.zeros(len(disorders))
        z = np.clip(np.asarray(query_z, float), -Z_LIMIT, Z_LIMIT)
        measured = np.isfinite(z)
        if not measured.any():
            return out
        rows = {name: i for i, name in enumerate(self.disorders)}
        for j, disorder in enumerate(disorders):
            i = rows.get(disorder)
            if i is None:
                continue
            mean, sd = self.mean[i, measured], self.sd[i, measured]
            ratio = -0.5 * ((z[measured] - mean) / sd) ** 2 - np.log(sd) + 0.5 * z[measured] ** 2
            out[j] = np.clip(ratio, -BONE_TERM_LIMIT, BONE_TERM_LIMIT).sum()
        return out


def case_z(cases: pd.DataFrame, lengths: pd.DataFrame, norms: BoneNorms) -> pd.DataFrame:
    """The z-scores (one row per measured case of `cases`, index `row`) of the gallery's cases
    (`Gallery.cases()`) from their bone lengths (`Gallery.bones.lengths()`), each for its age and sex."""
    table = cases.set_index("row").loc[lambda t: t.index.isin(lengths.index)]
    measured = lengths.loc[table.index]
    z = norms.z_table(measured.to_numpy(float), table["age_months"].to_numpy(float) / 12, table["sex"].astype(str).to_numpy())
    return pd.DataFrame(z, index=table.index, columns=list(BONE_NAMES))


def gallery_profiles(cases: pd.DataFrame, lengths: pd.DataFrame, norms: BoneNorms) -> TypicalProfiles:
    """Every diagnosed disorder's typical profile from its measured cases in a gallery."""
    z = case_z(cases, lengths, norms)
    disorders = cases.set_index("row").loc[z.index, "disorder"]
    diagnosed = disorders.notna().to_numpy()
    return TypicalProfiles.fit(z.to_numpy()[diagnosed], disorders[diagnosed].astype(str).tolist())


@dataclass(frozen=True)
class ProfileEvidence:
    """A query's measured profile against a gallery's typical profiles: what the ranking reads."""

    query_z: np.ndarray  # (19,)
    profiles: TypicalProfiles

    def usable(self) -> bool:
        return bool(np.isfinite(self.query_z).any()) and bool(self.profiles.cases.any())

    def match(self, disorders: Sequence[str]) -> np.ndarray:
        return self.profiles.match(self.query_z, disorders)

    def typical(self, disorder: str) -> list[float] | None:
        """The disorder's typical z per bone, rounded for a report (None: no measured case)."""
        mean = self.profiles.typical(disorder)
        return None if mean is None else [round(float(v), 2) for v in mean]
