"""Films with known hand landmarks, for training and measuring the landmark model.

Three sources, each in the atlas scheme (`matcher.hand_scheme`, NaN where a point is unknown):
- the Digital Hand Atlas (`dha/`): 37 points on full-resolution films of 9-18 year olds;
- the RSNA keypoints (`rsna_100px/keypoints.csv`): 20 of the points on films of all ages, whose
  images we hold at 100 x 100 only; they are stretched back to the original's aspect ratio. Their
  annotators placed the finger joints by another definition (`matcher.hand_scheme.FOREIGN_SCHEMES`),
  so these films carry their scheme's name;
- phantoms (`bone2gene synth`): the ends of every tubular bone are known exactly, so the 24 ray
  points are; the wrist and carpal points are not (the generator does not place them).
Atlas films are held out by id (`dha_split`); films reported elsewhere (`real_hands_labelled`)
are never trained on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from matcher.hand_scheme import ATLAS_SCHEME, MC_BASES, N_LANDMARKS, RAYS, RSNA_KEYPOINTS
from training.protocol.splits import EvaluationError

RSNA_HEIGHT = 400  # the 100-px RSNA copies are stretched to this height at their original aspect ratio


@dataclass(frozen=True)
class LandmarkFilm:
    key: str  # "<source>:<id>"
    image: np.ndarray  # uint8 (H, W), bone bright
    points: np.ndarray  # float32 (37, 2): x, y in the image's pixels; NaN where unknown
    scheme: str = ATLAS_SCHEME  # whose definition of each point the annotation follows

    @property
    def source(self) -> str:
        return self.key.split(":", 1)[0]


def _grey(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise EvaluationError(f"cannot read {path} as an image")
    return image


def read_dha_table(root: Path) -> pd.DataFrame:
    table = pd.read_csv(root / "labels.csv", dtype={"id": str})
    missing = [c for c in ("id", "x0", f"y{N_LANDMARKS - 1}") if c not in table]
    if missing:
        raise EvaluationError(f"{root / 'labels.csv'} lacks {', '.join(missing)}: not the atlas's landmark table")
    return table


def dha_points(row: pd.Series) -> np.ndarray:
    return np.array([[row[f"x{i}"], row[f"y{i}"]] for i in range(N_LANDMARKS)], np.float32)


def dha_films(root: Path, ids: Iterable[str] | None = None) -> list[LandmarkFilm]:
    """The atlas's films (all, or those of `ids`) with their 37 points."""
    table = read_dha_table(root)
    if ids is not None:
        table = table[table["id"].isin(set(ids))]
    return [LandmarkFilm(f"dha:{row.id}", _grey(root / "images" / f"{row.id}.jpg"), dha_points(row)) for _, row in table.iterrows()]


def dha_split(root: Path, every: int = 4) -> tuple[list[str], list[str]]:
    """(training ids, held-out ids): every `every`-th atlas id in sorted order is held out."""
    ids = sorted(read_dha_table(root)["id"], key=int)
    held = set(ids[::every])
    return [i for i in ids if i not in held], [i for i in ids if i in held]


def rsna_keypoint_films(root: Path, exclude: Iterable[str] = ()) -> list[LandmarkFilm]:
    """The RSNA films with keypoints (leaving out `exclude`'s ids), restored to their aspect ratio."""
    table = pd.read_csv(root / "keypoints.csv", dtype={"id": str})
    table = table[~table["id"].isin(set(exclude))]
    films = []
    for _, row in table.iterrows():
        width = max(1, round(RSNA_HEIGHT * row.original_width / row.original_height))
        image = cv2.resize(_grey(root / "images" / f"{row.id}.png"), (width, RSNA_HEIGHT), interpolation=cv2.INTER_CUBIC)
        points = np.full((N_LANDMARKS, 2), np.nan, np.float32)
        for name, index in RSNA_KEYPOINTS.items():
            points[index] = (row[f"{name}_x"] * width / row.original_width, row[f"{name}_y"] * RSNA_HEIGHT / row.original_height)
        films.append(LandmarkFilm(f"rsna:{row.id}", image, points, "rsna"))
    return films


def phantom_points(bones: pd.DataFrame) -> np.ndarray:
    """The ray points of one phantom from its bone table (`bones.csv` rows: bone, x0, y0 at the
    proximal end, x1, y1 at the distal end): joints halfway between the bones they separate."""
    ends = {row.bone: (np.array([row.x0, row.y0]), np.array([row.x1, row.y1])) for row in bones.itertuples()}
    points = np.full((N_LANDMARKS, 2), np.nan, np.float32)
    for ray, indices in RAYS.items():
        names = [f"{row}{ray}" for row in (("MC", "PP", "DP") if ray == 1 else ("MC", "PP", "MP", "DP"))]
        if not all(n in ends for n in names):
            continue  # an absent or extra ray: its points stay unknown
        points[MC_BASES[ray]] = ends[names[0]][0]
        for joint, (before, after) in zip(indices[1:-1], zip(names, names[1:], strict=False), strict=True):
            points[joint] = (ends[before][1] + ends[after][0]) / 2
        points[indices[-1]] = ends[names[-1]][1]
    return points


def phantom_films(cohort: Path, limit: int = 0, seed: int = 0) -> list[LandmarkFilm]:
    """Phantoms of a rendered cohort (PNG) with their ray points (a random `limit` of them when set)."""
    manifest = pd.read_csv(cohort / "manifest.csv", dtype={"case_id": str})
    if limit and len(manifest) > limit:
        manifest = manifest.sample(limit, random_state=seed)
    bones = pd.read_csv(cohort / "bones.csv", dtype={"case_id": str})
    by_case = dict(tuple(bones.groupby("case_id")))
    films = []
    for row in manifest.itertuples():
        image = cv2.imread(str(cohort / row.image), cv2.IMREAD_UNCHANGED)
        if image is None or row.case_id not in by_case:
            continue
        if image.dtype != np.uint8:
            image = (image / 257).astype(np.uint8)
        films.append(LandmarkFilm(f"phantom:{row.case_id}", image, phantom_points(by_case[row.case_id])))
    return films


def known_fraction(films: Sequence[LandmarkFilm]) -> float:
    return float(np.mean([np.isfinite(f.points[:, 0]).mean() for f in films])) if films else 0.0
