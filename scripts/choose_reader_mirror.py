"""Decide on the development films whether a model's age and sex reader reads each film and its
mirror image, averaged, and record the decision in the reader's config (weights untouched).

    python scripts/choose_reader_mirror.py [--model matcher/weights/demo_model] [--real ../shared/rsna_100px] \
        [--cache build/real/rsna_100px.npz] [--dry-run]

`training.reader_mirror` measures the three ways of reading on the development films only
(`training.real_data.is_dev_id`); `matcher.checkpoint.amend_config` sets `mirror_average` in
`<model>/age_sex_reader/config.json` with the figures as the reason. The reported films
(validation split, real_hands_labelled) are read afterwards by `scripts/bench_real.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from matcher.checkpoint import BUNDLED_MODEL_DIR, READER_DIR, amend_config, load_model
from training.reader_mirror import development_films, measure_mirror
from training.real_data import load_rsna_100px, reported_ids

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL_DIR, help="a model directory with an age and sex reader")
    parser.add_argument("--real", type=Path, default=REPO.parent / "shared" / "rsna_100px")
    parser.add_argument("--labelled", type=Path, default=REPO.parent / "shared" / "real_hands_labelled")
    parser.add_argument("--cache", type=Path, default=None, help="the .npz cache of the films (build_real_model.py's)")
    parser.add_argument("--dry-run", action="store_true", help="measure and print; change nothing")
    args = parser.parse_args()
    model, _ = load_model(args.model)
    if model.age_sex_reader is None:
        sys.exit(f"{args.model} has no age and sex reader ({READER_DIR}/); attach one with `bone2gene model attach-reader` first")
    choice = measure_mirror(
        model.age_sex_reader, development_films(load_rsna_100px(args.real, cache=args.cache), reported_ids(args.labelled))
    )
    print(json.dumps({**asdict(choice), "use_average": choice.use_average}, indent=1))
    if args.dry_run:
        return
    why = (
        f"development films of rsna_100px ({choice.films}): bone-age MAD {choice.plain_mad} months as read, "
        f"{choice.mirrored_mad} mirrored, {choice.average_mad} averaged (scripts/choose_reader_mirror.py)"
    )
    amend_config(args.model / READER_DIR, {"mirror_average": choice.use_average}, why)
    print(f"{args.model / READER_DIR}: mirror_average = {choice.use_average}")


if __name__ == "__main__":
    main()
