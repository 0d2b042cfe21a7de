"""The spread of bone z-scores on the landmarks suite's unaffected films, per landmark model and per site.

    python experiments/2026-12-08-landmark-annotation-schemes/z_spread.py --shared ../shared [--norms N.json] MODEL_DIR [MODEL_DIR ...]

For each model: the held-out atlas films and the 14 full-resolution RSNA films, their bone z-scores
against the bundled norms (or --norms) from the model's landmarks and from the annotations: how many there are,
how many lie beyond +-2, their mean and SD (1.0 for norms that fit the measurement).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from matcher.bone_norms import load_norms
from matcher.bone_profile import bone_lengths
from matcher.landmark_files import load_landmark_model
from matcher.landmarks import find_landmarks
from training.protocol.landmark_eval import FilmTruth, atlas_truths, rsna_full_truths


def spread(z: np.ndarray) -> str:
    z = z[np.isfinite(z)]
    return f"n {z.size}, beyond +-2 {int((abs(z) > 2).sum())} ({100 * np.mean(abs(z) > 2):.1f}%), mean {z.mean():.2f}, SD {z.std():.2f}"


def z_scores(norms, truths: list[FilmTruth], points: list[np.ndarray]) -> np.ndarray:
    return np.stack([norms.z_scores(bone_lengths(p.astype(float)), t.age_years, t.sex) for t, p in zip(truths, points, strict=True)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--norms", type=Path, default=None, help="norms to score against (default: the bundled ones)")
    parser.add_argument("models", type=Path, nargs="+")
    args = parser.parse_args()
    norms = load_norms(args.norms) if args.norms else load_norms()
    full = rsna_full_truths(args.shared / "rsna_100px", args.shared / "real_hands_labelled")
    for model in args.models:
        network, card = load_landmark_model(model)
        atlas = atlas_truths(args.shared / "dha", card.provenance["held_out_atlas_ids"])
        for site, truths in (("held-out atlas", atlas), ("full-resolution RSNA", full)):
            found = [h.points for h in find_landmarks(network, [t.image for t in truths])]
            print(f"{card.fingerprint[:12]} {site}: model {spread(z_scores(norms, truths, found))}")
            print(f"{card.fingerprint[:12]} {site}: annotations {spread(z_scores(norms, truths, [t.points for t in truths]))}")


if __name__ == "__main__":
    main()
