"""Reference norms for the metacarpophalangeal pattern profile: each bone's log proportion
(`matcher.bone_profile`) by age and sex, and the z-scores of a hand against them.

A norm is a mean and an SD per bone, sex and age, tabulated on an age grid from a smooth fit
(`training.bone_norms_fit`) and read by linear interpolation. It covers only the ages its
population had for that bone: outside them a z-score is not given (None), never extrapolated.
The bundled norms are `matcher/references/bone_norms.json`; a site fits its own with `bone2gene norms fit`
and a gallery can carry them.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from matcher.bone_profile import log_profiles
from matcher.errors import Bone2GeneError
from matcher.hand_scheme import BONE_NAMES

BUNDLED_NORMS = Path(__file__).resolve().parent / "references" / "bone_norms.json"
NORMS_FORMAT = 1
SEXES = ("F", "M")


class NormsError(Bone2GeneError, ValueError):
    """Norms that cannot be read or used."""


@dataclass(frozen=True)
class BoneNorms:
    population: str  # who the norms describe: sources, films, ages
    ages: np.ndarray  # (G,) the grid, years
    mean: dict[str, np.ndarray]  # sex -> (19, G) mean log proportion
    sd: dict[str, np.ndarray]  # sex -> (19, G)
    age_range: np.ndarray  # (19, 2) years each bone's norm covers
    offsets: np.ndarray  # (19,) typical log proportions (`matcher.bone_profile.reference_offsets`)
    counts: dict[str, int] = field(default_factory=dict)  # hands per source

    def z_scores(self, lengths: np.ndarray, age_years: float | None, sex: str | None) -> np.ndarray:
        """(19,) z of a hand's bone lengths (any unit) for its age and sex; NaN where a bone is
        missing, the hand's size cannot be told, or the age is outside a bone's norm."""
        if age_years is None or sex not in SEXES:
            return np.full(len(BONE_NAMES), np.nan)
        return self.z_table(np.asarray(lengths, float)[None], np.array([age_years]), np.array([sex]))[0]

    def z_table(self, lengths: np.ndarray, age_years: np.ndarray, sexes: np.ndarray) -> np.ndarray:
        """(N, 19) z of many hands at once (`z_scores` of each row; NaN for a sex the norms lack)."""
        profiles = log_profiles(np.asarray(lengths, float), self.offsets)
        ages = np.asarray(age_years, float)
        z = np.full(profiles.shape, np.nan)
        for sex in SEXES:
            rows = np.asarray(sexes) == sex
            if not rows.any():
                continue
            mean = np.stack([np.interp(ages[rows], self.ages, row) for row in self.mean[sex]], axis=1)
            sd = np.stack([np.interp(ages[rows], self.ages, row) for row in self.sd[sex]], axis=1)
            z[rows] = (profiles[rows] - mean) / sd
        inside = (self.age_range[:, 0] <= ages[:, None]) & (ages[:, None] <= self.age_range[:, 1])
        return np.where(inside, z, np.nan)

    def to_json(self) -> dict:
        return {
            "format": NORMS_FORMAT,
            "population": self.population,
            "bones": list(BONE_NAMES),
            "ages": np.round(self.ages, 3).tolist(),
            "mean": {s: np.round(v, 5).tolist() for s, v in self.mean.items()},
            "sd": {s: np.round(v, 5).tolist() for s, v in self.sd.items()},
            "age_range": np.round(self.age_range, 2).tolist(),
            "offsets": np.round(self.offsets, 5).tolist(),
            "counts": self.counts,
        }

    @classmethod
    def from_json(cls, data: dict) -> BoneNorms:
        if data.get("format") != NORMS_FORMAT or data.get("bones") != list(BONE_NAMES):
            raise NormsError(f"not bone norms of format {NORMS_FORMAT} for the 19 bones {', '.join(BONE_NAMES)}; fit them again")
        return cls(
            population=data["population"],
            ages=np.array(data["ages"]),
            mean={s: np.array(v) for s, v in data["mean"].items()},
            sd={s: np.array(v) for s, v in data["sd"].items()},
            age_range=np.array(data["age_range"]),
            offsets=np.array(data["offsets"]),
            counts=dict(data.get("counts", {})),
        )

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        tmp.replace(path)


@functools.cache
def bundled_norms() -> BoneNorms:
    """The bundled norms, read once per process (every gallery without its own reads them)."""
    return load_norms()


def load_norms(path: Path = BUNDLED_NORMS) -> BoneNorms:
    try:
        return BoneNorms.from_json(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise NormsError(f"cannot read bone norms from {path}: {error}") from error
