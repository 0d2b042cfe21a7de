"""Montages for docs/: synthetic radiographs beside the real ones, and one case per disorder.

    python scripts/make_montage.py --real ../shared/real_hands [--out docs]

The real images are read from ../shared (they are not part of the repository); the
montage shows them downscaled beside synthetic children of similar (young) ages so the
two can be judged side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from training.synth.cohort import PlannedCase, simulate
from training.synth.montage import grid, load_grey, tile
from training.synth.spec import builtin_specs

# The real examples are mostly infants and toddlers (open physes, few carpals).
_COMPARISON_AGES = (0.6, 1.2, 1.8, 2.5, 3.5, 5.0, 7.0, 9.0, 12.0, 15.0)
_DISORDER_AGE = 10.0


def synthetic_vs_real(real_dir: Path, out: Path) -> None:
    specs = {s.id: s for s in builtin_specs()}
    real = [tile(load_grey(p), f"real {p.name}") for p in sorted(real_dir.glob("*.png"))]
    synthetic = []
    for i, age in enumerate(_COMPARISON_AGES):
        sex = "F" if i % 2 else "M"
        plan = PlannedCase("m", "m", "unaffected", sex, age, 500 + i, 900 + i)
        synthetic.append(tile(simulate(plan, specs["unaffected"], 1024).radiograph.image, f"synthetic {sex} {age:.1f} y"))
    sheet = grid(
        real + synthetic, columns=5, title="Top two rows: real radiographs (../shared/real_hands). Bottom two: synthetic, unaffected."
    )
    cv2.imwrite(str(out / "synthetic_vs_real.png"), sheet)


def disorders(out: Path) -> None:
    tiles = []
    for k, spec in enumerate(builtin_specs()):
        low, high = spec.age_years
        age = min(max(_DISORDER_AGE, low), high)
        sex = "F" if spec.female_fraction >= 0.5 and k % 2 else "M"
        if spec.female_fraction == 1.0:
            sex = "F"
        plan = PlannedCase("m", "m", spec.id, sex, age, 77 + k, 177 + k)
        tiles.append(tile(simulate(plan, spec, 1024).radiograph.image, f"{spec.id[:24]} {sex} {age:.0f}y"))
    cv2.imwrite(
        str(out / "synthetic_disorders.png"), grid(tiles, columns=7, title="One synthetic case per disorder, age 10 (or nearest allowed)")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    repo = Path(__file__).resolve().parents[1]
    parser.add_argument("--real", type=Path, required=True, help="a folder of real hand films (e.g. ../shared/real_hands)")
    parser.add_argument("--out", type=Path, default=repo / "docs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.real.is_dir():
        synthetic_vs_real(args.real, args.out)
    else:
        print(f"no real hands at {args.real}: skipping the comparison montage")
    disorders(args.out)


if __name__ == "__main__":
    main()
