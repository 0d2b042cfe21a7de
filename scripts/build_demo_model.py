"""Build the bundled demo model from nothing: a synthetic cohort, then training.

    python scripts/build_demo_model.py --work /tmp/demo-build [--n 8000] [--epochs 40]
        [--device auto]
    bone2gene model install /tmp/demo-build/model

1. Generate `--n` synthetic radiographs (seeded; `training.synth`).
2. Train `tf_efficientnet_b0` at 256 px from random weights (no pretrained weights can be
   downloaded here) with metric learning + bone age + sex (`training.train`). The disorders
   in HELD_OUT never reach training: they are the "rare" disorders used to show that a new
   syndrome is ranked after being added to a gallery, without retraining.
3. `bone2gene model install WORK/model` makes it the bundled model (float16 weights in
   `matcher/weights/demo_model/`), where `bone2gene analyze`/`demo` find it without `--model`.

On a GPU the default settings take minutes; on this 2-core CPU use e.g. `--n 3000
--epochs 4` (DESIGN.md section 6 budgets 45 minutes for a CPU build).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from api.cli_helpers import progress_bar
from matcher.checkpoint import load_model, save_model
from training.synth.cohort import CohortConfig, generate_cohort
from training.train import TrainConfig, train

HELD_OUT = ("trps1", "ellis_van_creveld", "holt_oram", "acromesomelic_maroteaux")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="folder for the cohort, checkpoints and logs")
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--image-size", type=int, default=512, help="synthetic radiograph size (px)")
    parser.add_argument("--input-size", type=int, default=256, help="model input size (px)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--m-per-class", type=int, default=6, help="cases per disorder in each batch")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    cohort = args.work / "cohort"
    started = time.perf_counter()
    if not (cohort / "manifest.csv").is_file():
        print(f"generating {args.n} synthetic radiographs in {cohort}", file=sys.stderr)
        with progress_bar("rendering", unit="image") as progress:
            generate_cohort(CohortConfig(n=args.n, out=cohort, seed=args.seed, size=args.image_size, workers=args.workers), progress)
    generated = time.perf_counter()
    config = TrainConfig(
        manifest=cohort / "manifest.csv",
        out=args.work / "train",
        input_size=args.input_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        m_per_class=args.m_per_class,
        held_out=HELD_OUT,
        device=args.device,
        prepare_workers=args.workers,
        seed=args.seed,
        resume=args.resume,
    )
    model_dir = train(config)
    finished = time.perf_counter()
    timing = {"generate_s": round(generated - started, 1), "train_s": round(finished - generated, 1)}
    print(json.dumps(timing), file=sys.stderr)
    model, card = load_model(model_dir)
    provenance = {**card.provenance, "cohort": {"n": args.n, "seed": args.seed, "image_size": args.image_size}, "build": timing}
    final = args.work / "model"
    save_model(model, final, provenance=provenance)
    print(f"model: {final}; make it the bundled one with `bone2gene model install {final}`", file=sys.stderr)


if __name__ == "__main__":
    main()
