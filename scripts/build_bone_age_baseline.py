"""The "bone-age features" baseline of `bone2gene evaluate` when no Deeplasia checkpoint is at hand.

    bone2gene synth --n 3000 --out build/bone_age_only/cohort --size 512 --seed 1
    python scripts/build_bone_age_baseline.py --config scripts/bone_age_baseline.yaml --out build/bone_age_only/model_bn \
        [--recalibration-images 2000] [--skip-training]

Trains the bundled model's architecture on the same synthetic cohort for bone age and sex only
(the YAML sets `metric_weight: 0`, so no metric learning shapes the features; `bone2gene train`
does the work and resumes), then re-estimates the BatchNorm statistics for the final weights
(`training.batchnorm`) and saves the model. Its pooled features stand in for Deeplasia's: a
real Deeplasia checkpoint (`--features-model` of `bone2gene evaluate`) is the better baseline.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from matcher.checkpoint import load_model, save_model
from training.batchnorm import recalibrate_batchnorm
from training.config_file import load_train_config
from training.dataset import prepare
from training.train import split_by_patient, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--recalibration-images", type=int, default=2000)
    parser.add_argument("--skip-training", action="store_true", help="use the run's best_model as it is")
    args = parser.parse_args()
    config = load_train_config(args.config)
    if config.metric_weight != 0:
        raise SystemExit(f"{args.config}: metric_weight must be 0 for a bone-age-only baseline")
    if not args.skip_training:
        config.resume = True
        train(config, progress=True)
    model, card = load_model(config.out / "best_model")
    data = prepare(config.manifest, config.input_size)
    train_mask, _, _ = split_by_patient(data.table, config.held_out, config.val_fraction, config.seed)
    rows = np.flatnonzero(train_mask)
    rows = np.random.default_rng(0).choice(rows, min(args.recalibration_images, len(rows)), replace=False)
    recalibrate_batchnorm(model, data.crops[np.sort(rows)])
    provenance = {
        **card.provenance,
        "batchnorm_recalibrated_on": f"{len(rows)} training crops",
        "baseline_of": "bone2gene evaluate --features-model",
    }
    print(save_model(model, args.out, provenance=provenance))


if __name__ == "__main__":
    main()
