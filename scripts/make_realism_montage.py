"""Real films, warped real hands and phantoms of each renderer side by side, for docs/.

    python scripts/make_realism_montage.py --shared ../shared --phantoms build/eval/cohort_seed8/manifest.csv \
        --film build/film300d/manifest.csv --warped build/warped900s2/manifest.csv [--out docs/realism_montage.png]

Each row is one warped film of the atlas: the real film it came from, the warped film (its
disorder named), and a phantom of the same disorder and sex nearest in age from each rendered
cohort (classic, and film with `--film`). Warped films come only from atlas training ids.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from training.synth.warped_cohort import real_film_path

TILE = (260, 340)  # width, height


def tile(image: np.ndarray, label: str) -> np.ndarray:
    scale = min(TILE[0] / image.shape[1], TILE[1] / image.shape[0])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.zeros((TILE[1], TILE[0]), np.uint8)
    canvas[: small.shape[0], : small.shape[1]] = small
    canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
    cv2.putText(canvas, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 0), 1, cv2.LINE_AA)
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, required=True)
    parser.add_argument("--phantoms", type=Path, required=True, help="a rendered cohort's manifest")
    parser.add_argument("--film", type=Path, help="a cohort of `bone2gene synth --renderer film`: a fourth column")
    parser.add_argument("--warped", type=Path, required=True, help="a `bone2gene synth-warped` manifest")
    parser.add_argument("--rows", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("docs/realism_montage.png"))
    args = parser.parse_args()
    warped = pd.read_csv(args.warped)
    cohorts = [("phantom", args.phantoms, pd.read_csv(args.phantoms))]
    if args.film is not None:
        cohorts.append(("film phantom", args.film, pd.read_csv(args.film)))
    chosen = warped[warped["derived_from"].str.startswith("dha:") & (warped["disorder"] != "unaffected")]
    chosen = chosen.drop_duplicates("disorder").head(args.rows)
    rows = []
    for row in chosen.itertuples():
        real = cv2.imread(str(real_film_path(args.shared, row.derived_from)), cv2.IMREAD_GRAYSCALE)
        film = cv2.imread(str(args.warped.parent / row.image), cv2.IMREAD_GRAYSCALE)
        tiles = [tile(real, f"real {row.derived_from}, {row.sex} {row.age_months / 12:.0f} y"), tile(film, f"warped: {row.disorder}")]
        for name, manifest, table in cohorts:
            same = table[(table["disorder"] == row.disorder) & (table["sex"] == row.sex)]
            phantom = same.iloc[(same["age_months"] - row.age_months).abs().argsort()[:1]]
            if len(phantom):
                p = phantom.iloc[0]
                image = cv2.imread(str(manifest.parent / p["image"]), cv2.IMREAD_GRAYSCALE)
                tiles.append(tile(image, f"{name}: {p['disorder']}, {p['sex']} {p['age_months'] / 12:.0f} y"))
            else:
                tiles.append(np.zeros((TILE[1], TILE[0], 3), np.uint8))
        rows.append(np.hstack(tiles))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack(rows))
    print(f"{len(rows)} rows: {args.out}")


if __name__ == "__main__":
    main()
