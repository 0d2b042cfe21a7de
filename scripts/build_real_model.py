"""Build the real-film model from real films and synthetic disorders (issue 13).

    python scripts/build_real_model.py --work /tmp/build --real ../shared/rsna_100px \
        [--init matcher/weights/demo_model | --init-checkpoint CKPT] [--teacher MODEL_DIR]
        [--epochs 8] [--train-dir train] [--device auto] [--resume] [--install]

The candidate in `matcher/weights/real_candidate` was made in three CPU stages (its
MODEL_CARD.md and `config.json` provenance give each command and its log): ArcFace from the
bundled model (`--init`), ArcFace again under a new schedule (`--init-checkpoint`), then
distillation of the phantoms' embeddings from the bundled model (`--teacher`).

1. A synthetic cohort (`--n` phantoms at 512 px, seeded) unless `--work/cohort` exists.
2. Film views: the phantoms after domain randomisation (`training.domain`) and the RSNA
   100-px films, both cached under `--work`.
3. Joint training (`training.joint`): metric learning on the synthetic disorders (the
   disorders in HELD_OUT never reach training), bone age and sex on real films. A checkpoint
   per epoch; `--resume` continues an interrupted run.
4. With `--install`, the model (float16 weights) replaces `matcher/weights/real_candidate/`.

The ids of `../shared/real_hands_labelled` are never trained on (they are reported at full
resolution); the validation films are fixed by id (`training.real_data.is_validation_id`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np
import pandas as pd
import torch

from api.cli_helpers import progress_bar
from matcher.checkpoint import load_model, save_model
from training.domain import synthetic_views
from training.joint import JointConfig, train_joint
from training.joint_data import JointData
from training.real_data import load_rsna_100px
from training.synth.cohort import CohortConfig, generate_cohort
from training.teacher import teacher_embeddings

HELD_OUT = ("trps1", "ellis_van_creveld", "holt_oram", "acromesomelic_maroteaux")
BUNDLE = REPO / "matcher" / "weights" / "real_candidate"


def _synthetic(work: Path, n: int, seed: int, copies: int) -> tuple[np.ndarray, pd.DataFrame]:
    cohort = work / "cohort"
    if not (cohort / "manifest.csv").is_file():
        with progress_bar("rendering", unit="image") as progress:
            generate_cohort(CohortConfig(n=n, out=cohort, seed=seed, size=512), progress)
    cache = work / f"synthetic_views_{copies}.npz"
    if cache.is_file():
        return np.load(cache)["views"], pd.read_csv(work / f"synthetic_views_{copies}.csv")
    views, table = synthetic_views(cohort / "manifest.csv", copies=copies, seed=seed)
    np.savez(cache, views=views)
    table.to_csv(work / f"synthetic_views_{copies}.csv", index=False)
    return views, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--real", type=Path, default=REPO.parent / "shared" / "rsna_100px")
    parser.add_argument("--labelled", type=Path, default=REPO.parent / "shared" / "real_hands_labelled")
    parser.add_argument("--init", type=Path, default=None, help="a model directory to start from")
    parser.add_argument("--init-checkpoint", type=Path, default=None, help="checkpoint.pt of an earlier run: continue under a new schedule")
    parser.add_argument("--train-dir", default="train", help="subfolder of --work for checkpoints, logs and the model")
    parser.add_argument("--warmup-steps", type=int, default=150)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--arcface-weight", type=float, default=1.0, help="weight of ArcFace against the bone-age loss")
    parser.add_argument("--synthetic-batch", type=int, default=48)
    parser.add_argument("--real-batch", type=int, default=48)
    parser.add_argument(
        "--teacher",
        type=Path,
        default=None,
        help="distil the phantoms' embeddings from this model (e.g. the previous bundled model) instead of ArcFace",
    )
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--copies", type=int, default=2, help="randomised exports per phantom")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--install", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    views, table = _synthetic(args.work, args.n, args.seed, args.copies)
    real = load_rsna_100px(args.real, cache=args.work / "rsna_100px.npz")
    labelled = set(pd.read_csv(args.labelled / "labels.csv")["id"]) if (args.labelled / "labels.csv").is_file() else set()
    data = JointData.build(views, table, real, HELD_OUT, labelled, seed=args.seed)
    distil = {}
    if args.teacher is not None:
        data = data.with_teacher(
            teacher_embeddings(args.work / "cohort" / "manifest.csv", args.teacher, args.work / "teacher.npz", HELD_OUT)
        )
        distil = {"arcface_weight": 0.0, "distill_weight": 10.0, "real_prototype_weight": 3.0}
    print(
        f"synthetic {len(data.synth_train)} train / {len(data.synth_val)} val; real {len(data.real_train)} train / "
        f"{len(data.real_val)} val; prepared in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    config = JointConfig(
        out=args.work / args.train_dir,
        init=args.init,
        init_checkpoint=args.init_checkpoint,
        epochs=args.epochs,
        device=args.device,
        seed=args.seed,
        resume=args.resume,
        warmup_steps=args.warmup_steps,
        lr=args.lr,
        synthetic_batch=args.synthetic_batch,
        real_batch=args.real_batch,
        **{"arcface_weight": args.arcface_weight, **distil},
    )
    model_dir = train_joint(config, data, log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.install:
        model, card = load_model(model_dir)
        model_card = (BUNDLE / "MODEL_CARD.md").read_text() if (BUNDLE / "MODEL_CARD.md").is_file() else None
        if BUNDLE.exists():
            shutil.rmtree(BUNDLE)
        provenance = {
            **card.provenance,
            "cohort": {"n": args.n, "seed": args.seed, "image_size": 512, "copies": args.copies},
            "build_seconds": round(time.perf_counter() - started),
        }
        fingerprint = save_model(model, BUNDLE, provenance=provenance, storage_dtype=torch.float16)
        if model_card is not None:  # the card's figures describe the old weights: update them (scripts/bench_real.py)
            (BUNDLE / "MODEL_CARD.md").write_text(model_card)
        print(json.dumps({"installed": fingerprint[:12], "at": str(BUNDLE)}), file=sys.stderr)


if __name__ == "__main__":
    main()
