"""Overlay montage of the hand masks on the real radiographs, for docs/.

    python scripts/make_mask_montage.py [--real ../shared/real_hands] [--out docs/hand_masks_real.png]

Each tile: the radiograph, the mask in use (red fill; network when shipped, else the
classical one), the classical mask's outline (green), Deeplasia's 1.15 square crop
(yellow) and the quality gate's verdict in the caption.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from matcher.io import read_radiograph
from matcher.mask import classical_hand_mask, segment_hand
from matcher.preprocess import binarise_mask, mask_crop
from matcher.quality import assess_quality

TILE = (300, 360)


def overlay(path: Path) -> np.ndarray:
    radiograph = read_radiograph(path)
    grey = (radiograph.normalised() * 255).astype(np.uint8)
    hand = segment_hand(radiograph.pixels)
    verdict = assess_quality(radiograph, hand)
    colour = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    filled = colour.copy()
    filled[hand.mask > 0] = (0.55 * filled[hand.mask > 0] + 0.45 * np.array([40, 40, 230])).astype(np.uint8)
    thickness = max(2, grey.shape[0] // 300)
    contours, _ = cv2.findContours((classical_hand_mask(radiograph.pixels) > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(filled, contours, -1, (60, 220, 60), thickness)
    x0, y0, side = mask_crop(binarise_mask(hand.mask))
    cv2.rectangle(filled, (x0, y0), (x0 + side, y0 + side), (0, 220, 255), thickness)
    small = cv2.resize(filled, TILE, interpolation=cv2.INTER_AREA)
    caption = f"{path.name}  {hand.method}  {'ACCEPTED' if verdict.accepted else 'REFUSED: ' + ','.join(verdict.codes)}"
    bar = np.full((24, TILE[0], 3), 255, np.uint8)
    cv2.putText(bar, caption, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([small, bar])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    repo = Path(__file__).resolve().parents[1]
    parser.add_argument("--real", type=Path, default=repo.parent / "shared" / "real_hands")
    parser.add_argument("--out", type=Path, default=repo / "docs" / "hand_masks_real.png")
    args = parser.parse_args()
    tiles = [overlay(p) for p in sorted(args.real.glob("*.png"))]
    rows = [np.hstack([np.pad(t, ((4, 4), (4, 4), (0, 0)), constant_values=255) for t in tiles[i : i + 5]]) for i in range(0, len(tiles), 5)]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    title = np.full((30, width, 3), 255, np.uint8)
    cv2.putText(title, "Real radiographs: mask in use (red), classical mask (green), Deeplasia 1.15 crop (yellow)", (8, 21),
                cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack([title, *rows]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
