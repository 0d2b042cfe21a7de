"""Finish an age and sex reader trained on real films, and report it on the held-out films.

    python scripts/finish_age_sex_reader.py --model build/real/reader20/model --out build/real/reader20/finished \
        [--real ../shared/rsna_100px] [--recalibration-films 4000]

`scripts/build_real_model.py --real-only` does this itself at the end of a run; this script
finishes a model saved without it (`training.reader_finish`: BatchNorm statistics re-estimated
on training films). Both sets of held-out figures are printed (the fixed validation split,
`training.real_data.is_validation_id`); the finished model is saved.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matcher.checkpoint import load_model, save_model
from training.joint_data import JointData
from training.reader_finish import finish_reader
from training.real_data import load_rsna_100px, reported_ids

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--real", type=Path, default=REPO.parent / "shared" / "rsna_100px")
    parser.add_argument("--labelled", type=Path, default=REPO.parent / "shared" / "real_hands_labelled")
    parser.add_argument("--cache", type=Path, default=None, help="the .npz cache of the films (build_real_model.py's)")
    parser.add_argument("--recalibration-films", type=int, default=4000)
    args = parser.parse_args()
    model, card = load_model(args.model)
    real = load_rsna_100px(args.real, cache=args.cache)
    labelled = reported_ids(args.labelled)
    data = JointData.real_only(real, model.config.labels, labelled)
    report = finish_reader(model, data, args.recalibration_films)
    print(json.dumps({"as_trained": report.as_trained, "batchnorm_recalibrated": report.recalibrated}, indent=1))
    provenance = {**card.provenance, **report.provenance()}
    print(save_model(model, args.out, provenance=provenance))


if __name__ == "__main__":
    main()
