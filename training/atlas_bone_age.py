"""Bone age and sex on a second site: the Digital Hand Atlas's held-out films at full resolution.

Why: every bone-age figure before this came from RSNA films (one site; the reader trained on its
100-px copies). The atlas (`../shared/dha`) is another hospital, another scanner, full resolution,
and each film was read by two paediatric radiologists. The reference is their mean; how far the
two readers differ from each other is reported beside the model's error, as the floor no reader
can be held below.

The films reported are the atlas's held-out ids (every 4th in sorted order,
`training.landmark_data.dha_split`): the ids no model of this project trains or tunes on, so the
same films stay clean for bone age as for landmarks. Bone age is read with the film's sex given
(as a clinic gives it); sex is read again without it, to score the sex head on films over 10 years.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from matcher.analysis import Analyzer
from training.age_error import errors_by_age_band
from training.landmark_data import dha_split, read_dha_table

SEX_FROM_YEARS = 10.0  # sex is scored over this chronological age, as the target asks


def atlas_bone_age(analyzer: Analyzer, root: Path, ids: Sequence[str] | None = None) -> dict:
    """Figures of the atlas's held-out films (or of `ids`): MAD against the readers' mean, the
    readers' own difference, bias by band, sex accuracy over 10 years, and any refusal with its reason."""
    table = read_dha_table(root).set_index("id")
    held_out = list(ids) if ids is not None else dha_split(root)[1]
    read, male_p, refused = [], [], []
    for film_id in held_out:
        row, path = table.loc[film_id], root / "images" / f"{film_id}.jpg"
        given = analyzer.analyze(path, sex=str(row["sex"]))
        if not given.accepted:
            refused.append(f"{path.name}: {'; '.join(given.reasons)}")
            read.append(np.nan), male_p.append(np.nan)
            continue
        read.append(given.bone_age_months)
        male_p.append(analyzer.analyze(path).male_probability)
    read_months, male_probability = np.array(read, float), np.array(male_p, float)
    held = table.loc[held_out]
    readers = held[["bone_age_reader1_years", "bone_age_reader2_years"]].to_numpy(float) * 12
    truth, ok = readers.mean(axis=1), ~np.isnan(read_months)
    older = ok & (held["age_years"].to_numpy(float) > SEX_FROM_YEARS)
    right_sex = (male_probability > 0.5) == (held["sex"].to_numpy() == "M")
    return {
        "films": len(held_out),
        "accepted": int(ok.sum()),
        "ids": list(held_out),
        "bone_age_mad_months": round(float(np.mean(np.abs(read_months[ok] - truth[ok]))), 2),
        "bias_months": round(float(np.mean(read_months[ok] - truth[ok])), 2),
        "readers_mad_months": round(float(np.mean(np.abs(readers[:, 0] - readers[:, 1]))), 2),
        "sex_accuracy_over_10": round(float(right_sex[older].mean()), 4) if older.any() else None,
        "sex_films_over_10": int(older.sum()),
        "by_age_band": [asdict(band) for band in errors_by_age_band(read_months[ok], truth[ok])],
        "refused": refused,
    }
