"""Decide on the development films whether a model's age and sex reader reads each film and its
mirror image, averaged, and record the decision in the reader's config (weights untouched).

    python experiments/2026-12-03-reader-mirror-average/choose_reader_mirror.py --model DIR \
        [--real ../shared/rsna_100px] [--labelled ../shared/real_hands_labelled] [--cache FILE.npz] [--dry-run]

The question, the decision and its numbers: README.md beside this file. The development films
are `rsna_100px`'s ids 10 (mod 20) less the reported ones; the validation films and
`real_hands_labelled` are reported and never read here.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Set
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from matcher.checkpoint import AGE_SEX_READER_DIR, amend_config, load_model
from matcher.model import Bone2GeneModel
from training.joint_eval import OLDER_BONE_AGE_MONTHS, embed_views
from training.real_data import RealSet, is_dev_id, load_rsna_100px, reported_ids


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
    reader = copy.deepcopy(reader)
    reader.config = replace(reader.config, mirror_average=False)  # each view read alone: the choice is made here
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a model directory with an age and sex reader")
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--labelled", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=None, help="the .npz cache of the films (build_real_model.py's)")
    parser.add_argument("--dry-run", action="store_true", help="measure and print; change nothing")
    args = parser.parse_args()
    model, _ = load_model(args.model)
    if model.age_sex_reader is None:
        sys.exit(f"{args.model} has no age and sex reader ({AGE_SEX_READER_DIR}/); attach one with `bone2gene model attach-reader` first")
    choice = measure_mirror(
        model.age_sex_reader, development_films(load_rsna_100px(args.real, cache=args.cache), reported_ids(args.labelled))
    )
    print(json.dumps({**asdict(choice), "use_average": choice.use_average}, indent=1))
    if args.dry_run:
        return
    why = (
        f"development films of rsna_100px ({choice.films}): bone-age MAD {choice.plain_mad} months as read, "
        f"{choice.mirrored_mad} mirrored, {choice.average_mad} averaged (experiments/2026-12-03-reader-mirror-average)"
    )
    amend_config(args.model / AGE_SEX_READER_DIR, {"mirror_average": choice.use_average}, why)
    print(f"{args.model / AGE_SEX_READER_DIR}: mirror_average = {choice.use_average}")


if __name__ == "__main__":
    main()
