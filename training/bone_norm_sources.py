"""Unaffected hands with measured bones, for fitting and checking norms (`training.bone_norms_fit`).

- `atlas_hands`: the Digital Hand Atlas's annotated points (9-18 years, chronological age);
- `rsna_keypoint_hands`: the RSNA keypoints at full-resolution coordinates (all ages; MC2-MC5
  are not annotated there). RSNA gives bone age, not age: it stands in for age, which the
  proportions depend on little;
- `measured_hands`: a site's own control films, measured by the landmark model.
Each row: source, id, age_years, sex and the 19 bone lengths (NaN where not measured).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from matcher.bone_profile import bone_lengths
from matcher.hand_scheme import BONE_NAMES, N_LANDMARKS, RSNA_KEYPOINTS
from training.landmark_data import dha_points, read_dha_table


def _rows(source: str, ids: Iterable[str], ages: Iterable[float], sexes: Iterable[str], points: np.ndarray) -> pd.DataFrame:
    table = pd.DataFrame(bone_lengths(points), columns=list(BONE_NAMES))
    table.insert(0, "sex", list(sexes))
    table.insert(0, "age_years", list(ages))
    table.insert(0, "id", [str(i) for i in ids])
    table.insert(0, "source", source)
    return table


def atlas_hands(root: Path, ids: Iterable[str] | None = None) -> pd.DataFrame:
    table = read_dha_table(root)
    if ids is not None:
        table = table[table["id"].isin(set(ids))]
    points = np.stack([dha_points(row) for _, row in table.iterrows()]) if len(table) else np.zeros((0, N_LANDMARKS, 2))
    return _rows("atlas", table["id"], table["age_years"], table["sex"], points)


def rsna_keypoint_hands(root: Path, ids: Iterable[str] | None = None) -> pd.DataFrame:
    keypoints = pd.read_csv(root / "keypoints.csv", dtype={"id": str})
    labels = pd.read_csv(root / "labels.csv", dtype={"id": str}).set_index("id")
    if ids is not None:
        keypoints = keypoints[keypoints["id"].isin(set(ids))]
    points = np.full((len(keypoints), N_LANDMARKS, 2), np.nan)
    for name, index in RSNA_KEYPOINTS.items():
        points[:, index] = keypoints[[f"{name}_x", f"{name}_y"]].to_numpy(float)
    label = labels.loc[keypoints["id"]]
    sexes = np.where(label["male"].astype(str).str.lower() == "true", "M", "F")
    return _rows("rsna_keypoints", keypoints["id"], label["boneage"].to_numpy(float) / 12, sexes, points)


def held_out_rsna_ids(root: Path, every: int = 5) -> list[str]:
    """Every `every`-th RSNA keypoint id in sorted order: never in the norms, checked against them."""
    ids = sorted(pd.read_csv(root / "keypoints.csv", dtype={"id": str})["id"], key=int)
    return ids[::every]


def measured_hands(manifest: Path, landmark_model: Path, progress=None) -> pd.DataFrame:
    """A site's control films (a case manifest: path, sex, age_months) measured by the landmark model.
    A film that cannot be read stays a row without lengths (the fit leaves it out), so one bad file
    does not stop a site's fit."""
    from matcher.errors import RadiographError
    from matcher.io import read_radiograph
    from matcher.landmark_files import load_landmark_model
    from matcher.landmarks import find_landmarks
    from matcher.manifest import read_case_manifest

    network, _ = load_landmark_model(landmark_model)
    table = read_case_manifest(manifest)
    points = []
    for done, path in enumerate(table["path"], start=1):
        try:
            points.append(find_landmarks(network, [read_radiograph(Path(path)).normalised()])[0].points)
        except RadiographError:
            points.append(np.full((N_LANDMARKS, 2), np.nan, np.float32))
        if progress is not None:
            progress(done, len(table))
    stacked = np.stack(points) if points else np.zeros((0, N_LANDMARKS, 2))
    return _rows("controls", table["case_id"], table["age_months"].to_numpy(float) / 12, table["sex"], stacked)


def reference_hands(
    atlas: Path | None, rsna: Path | None, reported: Path | None = None, hold_out: bool = True, atlas_every: int = 4
) -> pd.DataFrame:
    """The annotated unaffected hands: the atlas and the RSNA keypoints, leaving out (`hold_out`) the
    atlas films the landmark model is measured on, every fifth RSNA keypoint film (the norms'
    own check) and the films of `reported`."""
    from training.landmark_data import dha_split

    parts = []
    if atlas is not None:
        hands = atlas_hands(atlas)
        if hold_out:
            hands = hands[~hands["id"].isin(dha_split(atlas, atlas_every)[1])]
        parts.append(hands)
    if rsna is not None:
        hands = rsna_keypoint_hands(rsna)
        excluded = set(held_out_rsna_ids(rsna)) if hold_out else set()
        if reported is not None:
            excluded |= {p.stem for p in reported.iterdir()}
        parts.append(hands[~hands["id"].isin(excluded)])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
