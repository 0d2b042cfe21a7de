"""Overlay montage of the hand masks on the real radiographs, for docs/.

    python scripts/make_mask_montage.py --shared ../shared [--rsna 26] [--refused 16] [--out docs/hand_masks_real.png]

Films from all three real folders: every film of `real_hands` and `real_hands_labelled`,
and `--rsna` films of `rsna_100px` spread evenly over its ids, plus `--refused` of the films
the gate refused in `benchmarks/real_gate.json` (spread evenly over that list; -1: all of
them, a 6-MB picture for the 97 of today) when that file exists. Each tile: the radiograph,
the mask in use (red fill; network when shipped, classical where the network's outline was
not hand-shaped), the classical mask's outline (green), Deeplasia's 1.15 square crop
(yellow), the agreement of the two masks (IoU) and the quality gate's verdict. The
median agreement is printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from matcher.errors import MaskError
from matcher.io import read_radiograph
from matcher.mask import film_aware_classical_mask, segment_hand
from matcher.preprocess import binarise_mask, mask_crop
from matcher.quality import assess_quality

TILE = (200, 240)


def overlay(path: Path) -> tuple[np.ndarray, float]:
    radiograph = read_radiograph(path)
    grey = (radiograph.normalised() * 255).astype(np.uint8)
    hand = segment_hand(radiograph.pixels)
    verdict = assess_quality(radiograph, hand)
    colour = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    filled = colour.copy()
    filled[hand.mask > 0] = (0.55 * filled[hand.mask > 0] + 0.45 * np.array([40, 40, 230])).astype(np.uint8)
    thickness = max(2, grey.shape[0] // 300)
    classical = film_aware_classical_mask(radiograph.pixels) > 0
    iou = float((classical & (hand.mask > 0)).sum() / max(1, (classical | (hand.mask > 0)).sum()))
    contours, _ = cv2.findContours(classical.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(filled, contours, -1, (60, 220, 60), thickness)
    try:
        x0, y0, side = mask_crop(binarise_mask(hand.mask))
        cv2.rectangle(filled, (x0, y0), (x0 + side, y0 + side), (0, 220, 255), thickness)
    except MaskError:
        pass  # an empty mask (a film the gate refuses as no hand): no crop to draw, the tile says why
    small = cv2.resize(filled, TILE, interpolation=cv2.INTER_AREA)
    lines = [
        f"{path.parent.name if path.parent.name != 'images' else 'rsna'}/{path.name} {hand.method[:9]} IoU {iou:.2f}",
        "accepted" if verdict.accepted else "REFUSED: " + ",".join(verdict.codes),
    ]
    bar = np.full((34, TILE[0], 3), 255, np.uint8)
    for row, line in enumerate(lines):
        cv2.putText(
            bar, line, (3, 13 + 15 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0) if verdict.accepted else (0, 0, 200), 1, cv2.LINE_AA
        )
    return np.vstack([small, bar]), iou


def spread(items: list, n: int) -> list:
    """`n` of `items` evenly spaced over the list (all of them for n < 0 or n >= len)."""
    if n < 0 or n >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).astype(int)] if n else []


def chosen_films(shared: Path, rsna: int, refused_films: int) -> list[Path]:
    ids = sorted(int(p.stem) for p in (shared / "rsna_100px" / "images").glob("*.png"))
    picks = [shared / "rsna_100px" / "images" / f"{i}.png" for i in spread(ids, rsna)]
    gate = Path(__file__).resolve().parents[1] / "benchmarks" / "real_gate.json"
    if gate.is_file():
        refused = [r["image"] for f in json.loads(gate.read_text())["folders"].values() for r in f["refused"]]
        picks += [shared / r for r in spread(refused, refused_films) if (shared / r) not in picks]
    return sorted((shared / "real_hands").glob("*.png")) + sorted((shared / "real_hands_labelled").glob("*.png")) + picks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    repo = Path(__file__).resolve().parents[1]
    parser.add_argument("--shared", type=Path, required=True, help="the folder holding real_hands_labelled and real_hands")
    parser.add_argument("--rsna", type=int, default=26, help="films of rsna_100px spread over its ids")
    parser.add_argument("--refused", type=int, default=16, help="films the gate refused (benchmarks/real_gate.json); -1 for all")
    parser.add_argument("--out", type=Path, default=repo / "docs" / "hand_masks_real.png")
    args = parser.parse_args()
    made = [overlay(p) for p in chosen_films(args.shared, args.rsna, args.refused)]
    tiles, agreement = [t for t, _ in made], [a for _, a in made]
    print(
        f"{len(tiles)} films; mask agreement with the classical mask (IoU): median {np.median(agreement):.3f}, "
        f"below 0.8 on {sum(a < 0.8 for a in agreement)}"
    )
    rows = [
        np.hstack([np.pad(t, ((3, 3), (3, 3), (0, 0)), constant_values=255) for t in tiles[i : i + 8]]) for i in range(0, len(tiles), 8)
    ]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    title = np.full((30, width, 3), 255, np.uint8)
    cv2.putText(
        title,
        "Real films from ../shared: mask in use (red), classical mask (green), Deeplasia 1.15 crop (yellow)",
        (8, 21),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.55,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack([title, *rows]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
