"""Write the encoder fine-tuning manifest that adds real films (`finetune_manifest.py`).

    python experiments/2026-12-03-encoder-real-films/make_finetune_manifest.py --cohort build/ft/cohort --out build/ft/data \
        --rsna ../shared/rsna_100px --labelled ../shared/real_hands_labelled [--copies 1] [--real-films 2000]
    bone2gene train experiments/2026-12-03-encoder-real-films/encoder_real_films.yaml

The cohort comes from `bone2gene synth` (or `training.synth.cohort.generate_cohort`) with masks.
Validation (id % 20 == 0) and development (id % 20 == 10) RSNA films, and the ids of
real_hands_labelled, never enter the manifest.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from finetune_manifest import FineTuneManifestConfig, write_finetune_manifest

from training.real_data import reported_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", type=Path, required=True, help="a synthetic cohort folder (manifest.csv with masks)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rsna", type=Path, required=True)
    parser.add_argument("--labelled", type=Path, required=True)
    parser.add_argument("--copies", type=int, default=1, help="film copies per phantom")
    parser.add_argument("--real-films", type=int, default=2000, help="training-split RSNA films as unaffected controls")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    config = FineTuneManifestConfig(
        cohort=args.cohort,
        rsna=args.rsna,
        out=args.out,
        copies=args.copies,
        real_films=args.real_films,
        exclude_ids=reported_ids(args.labelled),
        seed=args.seed,
        workers=args.workers,
    )
    print(write_finetune_manifest(config))


if __name__ == "__main__":
    main()
