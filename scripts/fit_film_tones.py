"""Fit the film renderer's site tone model (`training/synth/tones.json`) on RSNA development films.

    python scripts/fit_film_tones.py --rsna ../shared/rsna_100px [--out training/synth/tones.json]

Development films only (ids with id % 20 == 10, `training.real_data.is_dev_id`): never the films the
realism suite reports on. Each film's grey profile (`training.synth.tones.grey_profile`: the open
field's median grey, the hand's grey quantiles) is read inside the hand mask the product uses
(`matcher.mask.segment_hand`); films without an open field (the hand filling the frame) are skipped.
Only the RSNA-like films are fitted (open field darker than 0.25): the atlas-like quarter keeps the
classic processing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from matcher.io import read_radiograph
from matcher.mask import segment_hand
from training.real_data import is_dev_id, read_labels
from training.synth.tones import TONES_FILE, ToneModel, grey_profile

DARK_FIELD = 0.25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rsna", type=Path, required=True, help="the rsna_100px folder (labels.csv, images/)")
    parser.add_argument("--out", type=Path, default=TONES_FILE)
    parser.add_argument("--components", type=int, default=4)
    args = parser.parse_args()
    labels = read_labels(args.rsna)
    ids = labels.loc[is_dev_id(labels["id"].to_numpy()), "id"].tolist()
    profiles, skipped = [], 0
    for image_id in ids:
        radiograph = read_radiograph(args.rsna / "images" / f"{image_id}.png")
        pixels = radiograph.pixels.astype(np.float64) / np.iinfo(radiograph.pixels.dtype).max
        try:
            profile = grey_profile(pixels, segment_hand(radiograph.pixels).mask)
        except ValueError:
            skipped += 1
            continue
        if profile[0] < DARK_FIELD:
            profiles.append(profile)
    provenance = {
        "made_by": "python scripts/fit_film_tones.py --rsna ../shared/rsna_100px",
        "source": "rsna_100px development films (id % 20 == 10), open field darker than 0.25",
        "development_films": len(ids),
        "skipped_without_open_field": skipped,
    }
    model = ToneModel.fit(np.array(profiles), args.components, provenance)
    model.save(args.out)
    explained = model.spreads**2 / np.sum(np.var(np.array(profiles), axis=0, ddof=1))
    print(f"{len(profiles)} of {len(ids)} development films fitted ({skipped} without an open field); wrote {args.out}")
    print("mean profile:", np.round(model.mean, 3).tolist())
    print("variance explained by the components:", np.round(explained, 3).tolist())


if __name__ == "__main__":
    main()
