"""Landmarks found on real films never trained on, for docs/.

    python scripts/make_landmark_montage.py --shared ../shared --model build/landmarks/model [--out docs/landmarks_real.png]

Every film of `real_hands` and `real_hands_labelled` and the atlas films the model held out
(its provenance lists them): each tile shows the film, the 19 bones as lines between their
landmarks (one colour per ray), the wrist and carpal points, and how many points were reported
missing. Points reported missing are not drawn.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from matcher.hand_scheme import BONES
from matcher.io import read_radiograph
from matcher.landmark_files import load_landmark_model
from matcher.landmarks import HandLandmarks, find_landmarks

TILE = (240, 300)  # width, height: each film fitted into it
RAY_COLOURS = {1: (60, 60, 230), 2: (60, 200, 60), 3: (230, 160, 40), 4: (40, 200, 230), 5: (200, 60, 200)}


def draw(pixels: np.ndarray, hand: HandLandmarks, label: str) -> np.ndarray:
    scale = min(TILE[0] / pixels.shape[1], TILE[1] / pixels.shape[0])
    grey = cv2.resize((pixels * 255).astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    tile = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    points = hand.points * scale
    for bone in BONES:
        a, b = points[bone.proximal], points[bone.distal]
        if np.isfinite(a).all() and np.isfinite(b).all():
            cv2.line(tile, tuple(np.round(a).astype(int)), tuple(np.round(b).astype(int)), RAY_COLOURS[bone.ray], 1, cv2.LINE_AA)
    for point in points[np.isfinite(points).all(axis=1)]:
        cv2.circle(tile, tuple(np.round(point).astype(int)), 2, (0, 255, 255), -1, cv2.LINE_AA)
    missing = int(np.isnan(hand.points).any(axis=1).sum())
    cv2.putText(tile, f"{label} missing {missing}", (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 255, 0), 1, cv2.LINE_AA)
    return tile


def montage(tiles: list[np.ndarray], columns: int = 8) -> np.ndarray:
    padded = [cv2.copyMakeBorder(t, 0, TILE[1] - t.shape[0], 0, TILE[0] - t.shape[1], cv2.BORDER_CONSTANT, value=0) for t in tiles]
    padded += [np.zeros_like(padded[0])] * (-len(padded) % columns)
    rows = [np.hstack(padded[i : i + columns]) for i in range(0, len(padded), columns)]
    return np.vstack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, required=True, help="the folder holding real_hands, real_hands_labelled and dha")
    parser.add_argument("--model", type=Path, required=True, help="a landmark model directory")
    parser.add_argument("--out", type=Path, default=Path("docs/landmarks_real.png"))
    args = parser.parse_args()
    network, card = load_landmark_model(args.model)
    atlas = [args.shared / "dha" / "images" / f"{i}.jpg" for i in card.provenance.get("held_out_atlas_ids", [])]
    paths = sorted((args.shared / "real_hands").glob("*.png")) + sorted((args.shared / "real_hands_labelled").glob("*.png")) + atlas
    tiles = []
    for path in paths:
        pixels = read_radiograph(path).normalised()
        tiles.append(draw(pixels, find_landmarks(network, [pixels])[0], f"{path.parent.name[:12]}/{path.stem}"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), montage(tiles))
    print(f"{len(tiles)} films: {args.out}")


if __name__ == "__main__":
    main()
