"""Do a landmark model's bone proportions follow the hand's own, or lean to the typical? Phantoms know theirs exactly.

    python experiments/2026-12-08-landmark-annotation-schemes/phantom_shrinkage.py --cohort build/eval/cohort_seed8 [--n 300] MODEL_DIR [MODEL_DIR ...]

For each bone: the slope of the measured log proportion on the true one across phantoms (many
disorders, so a wide range). 1 follows the hand; below 1 pulls it towards the typical. Errors in the
true lengths cannot dilute the slope here, unlike on annotated real films.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from matcher.bone_profile import bone_lengths, log_profiles
from matcher.hand_scheme import BONE_NAMES
from matcher.landmark_files import load_landmark_model
from matcher.landmarks import find_landmarks
from training.landmark_data import phantom_films


def slopes(true: np.ndarray, measured: np.ndarray) -> np.ndarray:
    out = []
    for b in range(true.shape[1]):
        ok = np.isfinite(true[:, b]) & np.isfinite(measured[:, b])
        x, y = true[ok, b] - true[ok, b].mean(), measured[ok, b] - measured[ok, b].mean()
        out.append(float((x * y).sum() / (x * x).sum()) if ok.sum() > 10 else np.nan)
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cohort", type=Path, required=True)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("models", type=Path, nargs="+")
    args = parser.parse_args()
    films = phantom_films(args.cohort, limit=args.n, seed=0)
    true = log_profiles(bone_lengths(np.stack([f.points for f in films]).astype(float)))
    for model in args.models:
        network, card = load_landmark_model(model)
        measured = log_profiles(bone_lengths(np.stack([h.points for h in find_landmarks(network, [f.image for f in films])]).astype(float)))
        per_bone = slopes(true, measured)
        print(f"{card.fingerprint[:12]}: {len(films)} phantoms, slope median {np.nanmedian(per_bone):.3f}")
        print("  " + ", ".join(f"{name} {s:.2f}" for name, s in zip(BONE_NAMES, per_bone, strict=True)))


if __name__ == "__main__":
    main()
