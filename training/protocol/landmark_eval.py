"""How well the landmark model finds the hand's points on real films it never trained on.

- Held-out atlas films (the ids its provenance lists): radial error per landmark, in pixels at
  1024 px film height and as % of hand length, median and 95th percentile; how many points were
  reported missing; and the error of the 19 bone lengths (`matcher.hand_scheme.BONES`).
- The full-resolution RSNA films (`real_hands_labelled`, their 20 keypoints at full resolution):
  the median error as % of hand length, from the atlas channels and, where the model has them,
  from the channels of the RSNA annotators' scheme.
Hand length is the distance from the distal radius to the middle fingertip: the midpoint of atlas
points 3 and 4, or the RSNA `wrist` point.
- The same films' pattern profiles against the bundled norms (which left them out): how many bone
  z-scores fall beyond +-2, from the model's landmarks and from the annotations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from matcher.bone_norms import BoneNorms, load_norms
from matcher.bone_profile import bone_lengths
from matcher.hand_scheme import BONES, LANDMARK_NAMES, RAYS, RSNA_KEYPOINTS
from matcher.landmark_files import load_landmark_model
from matcher.landmarks import HandLandmarks, find_landmarks
from training.landmark_data import dha_films, read_dha_table
from training.protocol import markdown
from training.protocol.atlas_gate import atlas_gate, atlas_gate_lines
from training.protocol.splits import EvaluationError

MIDDLE_TIP = RAYS[3][-1]


@dataclass(frozen=True)
class FilmTruth:
    key: str
    image: np.ndarray
    points: np.ndarray  # (37, 2), NaN where not annotated
    hand_length: float  # film pixels
    age_years: float  # the atlas: chronological age; RSNA: bone age (the only age it gives)
    sex: str


def _radial(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.linalg.norm(found - truth, axis=-1)


def atlas_truths(root: Path, ids: list[str]) -> list[FilmTruth]:
    labels = read_dha_table(root).set_index("id")
    truths = []
    for film in dha_films(root, ids):
        radius = film.points[[3, 4]].mean(axis=0)
        label = labels.loc[film.key.split(":", 1)[1]]
        length = float(_radial(radius, film.points[MIDDLE_TIP]))
        truths.append(FilmTruth(film.key, film.image, film.points, length, float(label["age_years"]), str(label["sex"])))
    return truths


def rsna_full_truths(rsna: Path, films: Path) -> list[FilmTruth]:
    """The full-resolution films of `films` (e.g. real_hands_labelled) that have RSNA keypoints."""
    table = pd.read_csv(rsna / "keypoints.csv", dtype={"id": str}).set_index("id")
    labels = pd.read_csv(rsna / "labels.csv", dtype={"id": str}).set_index("id")
    truths = []
    for path in sorted(films.glob("*.png")):
        if path.stem not in table.index:
            continue
        row, image = table.loc[path.stem], cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        points = np.full((len(LANDMARK_NAMES), 2), np.nan, np.float32)
        for name, index in RSNA_KEYPOINTS.items():
            points[index] = (row[f"{name}_x"], row[f"{name}_y"])
        wrist = np.array([row["wrist_x"], row["wrist_y"]])
        label = labels.loc[path.stem]
        sex = "M" if str(label["male"]).lower() == "true" else "F"
        length = float(_radial(wrist, points[MIDDLE_TIP]))
        truths.append(FilmTruth(f"rsna:{path.stem}", image, points, length, float(label["boneage"]) / 12, sex))
    return truths


def measure(network, truths: list[FilmTruth], found: list[HandLandmarks] | None = None) -> pd.DataFrame:
    """One row per annotated point: film, landmark, error (film px, px at 1024 height, % hand length), missing,
    confidence; of `found` (the network's landmarks of `truths`, found here when not given)."""
    found = found if found is not None else find_landmarks(network, [t.image for t in truths])
    rows = []
    for truth, hand in zip(truths, found, strict=True):
        at_1024 = 1024 / truth.image.shape[0]
        for index in np.flatnonzero(np.isfinite(truth.points[:, 0])):
            error = float(_radial(hand.points[index], truth.points[index]))
            rows.append(
                {
                    "film": truth.key,
                    "landmark": int(index),
                    "error_px_1024": error * at_1024,
                    "error_pct_hand": 100 * error / truth.hand_length,
                    "missing": bool(np.isnan(hand.points[index]).any()),
                    "confidence": float(hand.confidence[index]),
                }
            )
    return pd.DataFrame(rows)


def bone_errors(truths: list[FilmTruth], found: list[HandLandmarks]) -> pd.DataFrame:
    """Each film's 19 bone lengths from `found` against the annotated ones, % error."""
    true_lengths = bone_lengths(np.stack([t.points for t in truths]))
    measured = bone_lengths(np.stack([h.points for h in found]))
    frame = pd.DataFrame(100 * np.abs(measured - true_lengths) / true_lengths, columns=[b.name for b in BONES])
    frame.insert(0, "film", [t.key for t in truths])
    return frame


def _median(values: np.ndarray) -> float | None:
    """The median of the finite values, rounded; None when there are none (every point missing)."""
    finite = np.asarray(values, float)[np.isfinite(values)]
    return round(float(np.median(finite)), 2) if finite.size else None


def beyond_two(norms: BoneNorms, truths: list[FilmTruth], points: list[np.ndarray]) -> dict:
    """The share of scored bone z-scores beyond +-2 (unaffected hands: 4.6% if the norms are right)."""
    z = np.stack([norms.z_scores(bone_lengths(p.astype(float)), t.age_years, t.sex) for t, p in zip(truths, points, strict=True)])
    scored = z[np.isfinite(z)]
    return {"scored": int(scored.size), "beyond_2_pct": round(100 * float(np.mean(np.abs(scored) > 2)), 1) if scored.size else None}


def _summary(errors: pd.DataFrame) -> dict:
    found = errors[~errors["missing"]]
    return {
        "points": len(errors),
        "missing": int(errors["missing"].sum()),
        "median_px_1024": round(float(found["error_px_1024"].median()), 2),
        "p95_px_1024": round(float(found["error_px_1024"].quantile(0.95)), 2),
        "median_pct_hand": round(float(found["error_pct_hand"].median()), 3),
        "p95_pct_hand": round(float(found["error_pct_hand"].quantile(0.95)), 3),
    }


def landmark_report(model_dir: Path, shared: Path, phantoms: Path | None = None) -> tuple[str, dict]:
    """The report on real films; with `phantoms` (a rendered cohort's manifest), also the phantoms
    against their own specs (`phantom_profiles`)."""
    network, card = load_landmark_model(model_dir)
    held_out = card.provenance.get("held_out_atlas_ids")
    if not held_out:
        raise EvaluationError(f"{model_dir}'s provenance names no held-out atlas films; nothing to report on")
    atlas = atlas_truths(shared / "dha", held_out)
    full = rsna_full_truths(shared / "rsna_100px", shared / "real_hands_labelled")
    found = find_landmarks(network, [t.image for t in atlas + full])  # once per film, for every table below
    errors, bones = measure(network, atlas, found[: len(atlas)]), bone_errors(atlas, found[: len(atlas)])
    full_errors = measure(network, full, found[len(atlas) :]) if full else pd.DataFrame()
    own_scheme = _own_scheme_errors(network, full)
    norms = load_norms()
    measured = [h.points for h in found]
    profile_check = {
        "norms": norms.population,
        "measured": beyond_two(norms, atlas + full, measured),
        "annotated": beyond_two(norms, atlas + full, [t.points for t in atlas + full]),
    }
    data = {
        "model": card.fingerprint[:12],
        "atlas_held_out": {
            **_summary(errors),
            "films": len(atlas),
            "bone_length_median_pct": _median(bones.iloc[:, 1:].to_numpy()),
        },
        "real_hands_labelled": {**_summary(full_errors), "films": len(full)} if len(full_errors) else None,
        "real_hands_labelled_own_scheme": {**_summary(own_scheme), "films": len(full)} if len(own_scheme) else None,
        "per_landmark": _per_landmark(errors).to_dict(orient="records"),
        "per_bone_median_pct": {c: _median(bones[c].to_numpy()) for c in bones.columns[1:]},
        "profile_check": profile_check,
    }
    data["atlas_gate"] = atlas_gate(shared / "dha")
    text = "\n".join([_markdown(data), "", *atlas_gate_lines(data["atlas_gate"])])
    if phantoms is not None:
        from training.protocol.phantom_profiles import phantom_profile_report

        lines, data["phantom_profiles"] = phantom_profile_report(network, norms, phantoms)
        text = "\n".join([text, "", *lines])
    return text, data


def _own_scheme_errors(network, full: list[FilmTruth]) -> pd.DataFrame:
    """The RSNA films' errors read from the model's channels for their annotators' scheme (empty
    when it has none): the atlas's points are defined otherwise, so the atlas channels carry that
    difference (`matcher.hand_scheme.FOREIGN_SCHEMES`) besides their error."""
    if not full or "rsna" not in network.config.foreign_schemes:
        return pd.DataFrame()
    return measure(network, full, find_landmarks(network, [t.image for t in full], scheme="rsna"))


def _per_landmark(errors: pd.DataFrame) -> pd.DataFrame:
    found = errors[~errors["missing"]]
    grouped = found.groupby("landmark")
    table = pd.DataFrame(
        {
            "median px": grouped["error_px_1024"].median(),
            "p95 px": grouped["error_px_1024"].quantile(0.95),
            "median % hand": grouped["error_pct_hand"].median(),
        }
    ).round(2)
    table["missing"] = errors.groupby("landmark")["missing"].sum()
    table.insert(0, "name", [LANDMARK_NAMES[i] for i in table.index])
    return table.reset_index()


def _row(title: str, summary: dict, bones: object) -> list[object]:
    keys = ("points", "missing", "median_px_1024", "p95_px_1024", "median_pct_hand", "p95_pct_hand")
    return [title, *(summary[k] for k in keys), bones]


def _markdown(data: dict) -> str:
    atlas, full, check = data["atlas_held_out"], data["real_hands_labelled"], data["profile_check"]
    rows = [_row(f"{atlas['films']} held-out atlas films (37 points)", atlas, atlas["bone_length_median_pct"])]
    if full:
        rows.append(_row(f"{full['films']} full-resolution RSNA films (20 points), atlas channels", full, "-"))
    if data.get("real_hands_labelled_own_scheme"):
        own = data["real_hands_labelled_own_scheme"]
        rows.append(_row(f"{own['films']} full-resolution RSNA films (20 points), RSNA-scheme channels", own, "-"))
    header = ["films", "points", "missing", "median px", "p95 px", "median % hand", "p95 % hand", "bone length, median error %"]
    lines = [
        "# Hand landmarks on real films never trained on",
        "",
        f"Landmark model {data['model']}. Radial errors of the points found (missing ones counted apart); pixels at 1024 px "
        "film height; % of hand length (distal radius to middle fingertip). The RSNA films' annotators mark the finger joints "
        "by another definition than the atlas's; a model with channels for their scheme is also read in it "
        "(`matcher.hand_scheme.FOREIGN_SCHEMES`).",
        "",
        *markdown.table(header, rows),
        "",
        "## Per landmark (held-out atlas films)",
        "",
        *markdown.frame_table(pd.DataFrame(data["per_landmark"])),
        "",
        "## Bone lengths (held-out atlas films): median error %",
        "",
        *markdown.table(list(data["per_bone_median_pct"]), [list(data["per_bone_median_pct"].values())]),
        "",
        "## Pattern profiles of these unaffected hands against the bundled norms",
        "",
        f"Norms: {check['norms']} (these films left out). Share of the bone z-scores beyond +-2 (4.6% expected; RSNA films "
        "scored at their bone age, the only age they carry; MC2-MC5 only from 9 years):",
        "",
        *markdown.table(
            ["lengths from", "z-scores", "beyond +-2 (%)"],
            [
                [name, check[key]["scored"], check[key]["beyond_2_pct"]]
                for key, name in (("measured", "the landmark model"), ("annotated", "the annotations"))
            ],
        ),
    ]
    return "\n".join(lines)
