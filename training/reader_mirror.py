"""Whether an age and sex reader should read each film and its mirror image, averaged
(`ModelConfig.mirror_average`), decided on the development films of `rsna_100px`.

The reader is trained with mirroring (left and right hands), so a mirrored film is as much in
its input distribution as the film itself, and the two reads err partly independently. Whether
their mean reads closer is measured, not assumed: on the development films (`is_dev_id`), never on
the validation films or `real_hands_labelled`, which are reported. The development films are in
the reader's training split, so their errors are smaller than held-out ones; only the comparison
between the three ways of reading is used.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

import numpy as np
import torch

from matcher.model import Bone2GeneModel
from training.joint_eval import OLDER_BONE_AGE_MONTHS, embed_views
from training.real_data import RealSet, is_dev_id


@dataclass(frozen=True)
class MirrorChoice:
    """Bone-age MAD (months) of three ways of reading the same films, and sex accuracy over 10 years."""

    films: int
    plain_mad: float
    mirrored_mad: float
    average_mad: float
    plain_sex_older: float
    average_sex_older: float

    @property
    def use_average(self) -> bool:
        """Average only where it reads closer than the film alone."""
        return self.average_mad < self.plain_mad


def development_films(real: RealSet, reported: Set[int]) -> RealSet:
    """The development films of `real`, less any film reported on its own (`reported_ids`)."""
    return real.subset(is_dev_id(real.ids) & ~np.isin(real.ids, list(reported)))


def measure_mirror(reader: Bone2GeneModel, films: RealSet) -> MirrorChoice:
    """Read `films` as they are and mirrored (each with its given sex), and their mean."""
    if len(films) == 0:
        raise ValueError("no films to decide on; point to rsna_100px, whose ids ending in 10 (mod 20) are the development films")
    views, male = torch.from_numpy(films.views), torch.from_numpy(films.male)
    size = reader.config.input_size
    plain = embed_views(reader, views, male, size)
    mirrored = embed_views(reader, torch.flip(views, dims=[-1]), male, size)
    truth = films.bone_age_months
    average = (plain.bone_age_months + mirrored.bone_age_months) / 2
    older = truth > OLDER_BONE_AGE_MONTHS

    def sex_older(probability: np.ndarray) -> float:
        return round(float(((probability > 0.5) == (films.male > 0.5))[older].mean()), 4) if older.any() else float("nan")

    return MirrorChoice(
        films=len(films),
        plain_mad=round(float(np.abs(plain.bone_age_months - truth).mean()), 3),
        mirrored_mad=round(float(np.abs(mirrored.bone_age_months - truth).mean()), 3),
        average_mad=round(float(np.abs(average - truth).mean()), 3),
        plain_sex_older=sex_older(plain.male_probability),
        average_sex_older=sex_older((plain.male_probability + mirrored.male_probability) / 2),
    )
