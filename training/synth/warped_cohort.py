"""A cohort of real unaffected hands carrying disorders' bone lengths (`real_warp`), for training.

The real films come only from what no real-film test reads: the Digital Hand Atlas's training
ids (its 37 annotated landmarks) and RSNA training films (not validation, not development, not
the full-resolution ones; landmarks found by the bundled landmark model, at their 100-px
resolution, every ray point required). Each case is a real hand and a disorder whose spec
changes bone lengths, drawn at the hand's age; the controls are the real films unchanged. Every
row says it is derived (`source` "derived:warped-real", `derived_from` the real film, `carried`
what the warp could carry), and its `patient_id` is the real hand's, so patient-level splits keep
every version of one hand on one side. Never report these as patients; never test on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from training.synth.real_warp import CARRIED, WarpError, relative_factors, warp_hand
from training.synth.spec import DisorderSpec, PatientPhenotype, builtin_specs

SOURCE = "derived:warped-real"
MIN_CHANGE = 0.02  # log units: a draw whose proportions change less carries no disorder a film could show
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class WarpedCohortConfig:
    shared: Path  # the folder holding dha/ and rsna_100px/
    out: Path
    n: int = 400
    seed: int = 0
    control_fraction: float = 0.2
    rsna_share: float = 0.5  # of the cases drawn from RSNA films (the rest from the atlas)


@dataclass(frozen=True)
class RealHand:
    key: str  # "dha:3143", "rsna:1234"
    image: np.ndarray
    points: np.ndarray  # (37, 2)
    sex: str
    age_months: float  # the atlas: chronological; RSNA: bone age, the only age it gives
    bone_age_months: float  # the atlas: its two readers' mean; RSNA: its label


def real_film_path(shared: Path, key: str) -> Path:
    """Where a real film named by its key ("dha:ID", "rsna:ID", as `derived_from` names them) lies under `shared`."""
    source, film = key.split(":", 1)
    return shared / "dha" / "images" / f"{film}.jpg" if source == "dha" else shared / "rsna_100px" / "images" / f"{film}.png"


def real_film_sexes(shared: Path, keys: list[str]) -> list[str]:
    """Each keyed real film's sex, from its source's labels (each table read once)."""
    from training.landmark_data import read_dha_table
    from training.real_data import read_labels

    atlas = read_dha_table(shared / "dha").set_index("id")["sex"].astype(str) if any(k.startswith("dha:") for k in keys) else None
    rsna = read_labels(shared / "rsna_100px").set_index("id")["male"] if any(k.startswith("rsna:") for k in keys) else None
    sexes = []
    for key in keys:
        source, film = key.split(":", 1)
        sexes.append(atlas[film] if source == "dha" else ("M" if str(rsna[int(film)]).lower() == "true" else "F"))
    return sexes


def atlas_hands(root: Path) -> list[RealHand]:
    from training.landmark_data import dha_films, dha_split, read_dha_table

    labels = read_dha_table(root).set_index("id")
    films = dha_films(root, dha_split(root)[0])
    hands = []
    for film in films:
        row = labels.loc[film.key.split(":")[1]]
        bone_age = 6 * (float(row["bone_age_reader1_years"]) + float(row["bone_age_reader2_years"]))
        hands.append(RealHand(film.key, film.image, film.points, str(row["sex"]), 12 * float(row["age_years"]), bone_age))
    return hands


def rsna_hands(root: Path, count: int, rng: np.random.Generator) -> list[RealHand]:
    """`count` RSNA training films (validation, development and full-resolution ids left out) whose every ray point is found."""
    from matcher.hand_measure import bundled_measurer
    from training.real_data import training_labels

    measurer = bundled_measurer()
    if measurer is None:
        raise WarpError("no landmark model installed: RSNA films carry no annotated metacarpal bases to warp along")
    pool = training_labels(root)
    hands: list[RealHand] = []
    for row in pool.sample(frac=1.0, random_state=int(rng.integers(2**31))).itertuples():
        if len(hands) >= count:
            break
        image = cv2.imread(str(root / "images" / f"{row.id}.png"), cv2.IMREAD_GRAYSCALE)
        points = measurer.landmarks_of(image).points.astype(float)
        sex = "M" if str(row.male).lower() == "true" else "F"
        hands.append(RealHand(f"rsna:{row.id}", image, points, sex, float(row.boneage), float(row.boneage)))
    return hands


def _carrying(specs: list[DisorderSpec]) -> list[DisorderSpec]:
    """The disorders whose specs change bone lengths: what a warp can carry."""
    return [s for s in specs if s.length and s.id != "unaffected"]


def generate_warped_cohort(config: WarpedCohortConfig, progress: Progress | None = None) -> pd.DataFrame:
    """Write `out/images/*.png` and `out/manifest.csv`; returns the manifest."""
    rng = np.random.default_rng(config.seed)
    n_rsna = round(config.n * config.rsna_share)
    hands = atlas_hands(config.shared / "dha")
    if n_rsna:
        hands += rsna_hands(config.shared / "rsna_100px", max(n_rsna // 3, 1), rng)  # each RSNA hand carries about three cases
    diseases = _carrying(builtin_specs())
    (config.out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    while len(rows) < config.n:
        hand = hands[int(rng.integers(len(hands)))]
        control = rng.random() < config.control_fraction
        spec = None if control else diseases[int(rng.integers(len(diseases)))]
        image, gene = hand.image, None
        if spec is not None:
            phenotype = PatientPhenotype.sample(spec, rng)
            lengths = phenotype.at_age(hand.age_months / 12).length_factor
            if max(abs(np.log(f)) for f in relative_factors(lengths).values()) < MIN_CHANGE:
                continue  # this draw changes no proportion (none shows, or all bones alike): nothing to carry
            try:
                image = warp_hand(hand.image, hand.points, lengths).image
            except WarpError:
                continue  # a film whose landmarks miss a ray point: draw another
            gene = phenotype.gene or None
        case_id = f"warp-{len(rows):06d}"
        cv2.imwrite(str(config.out / "images" / f"{case_id}.png"), image)
        rows.append(
            {
                "image": f"images/{case_id}.png",
                "case_id": case_id,
                "patient_id": f"real-{hand.key}",
                "sex": hand.sex,
                "age_months": round(hand.age_months, 2),
                "bone_age_months": round(hand.bone_age_months, 2),  # the real film's (a length warp leaves maturation as it was)
                "disorder": "unaffected" if spec is None else spec.id,
                "gene": gene,
                "source": SOURCE,
                "derived_from": hand.key,
                "carried": "" if spec is None else ",".join(CARRIED),
                "width": image.shape[1],
                "height": image.shape[0],
            }
        )
        if progress:
            progress(len(rows), config.n)
    manifest = pd.DataFrame(rows)
    manifest.to_csv(config.out / "manifest.csv", index=False)
    return manifest
