"""Train on real films: the bundled model's age and sex reader, or a joint real + synthetic model (issue 13).

    python scripts/build_real_model.py --work build/real --init matcher/weights/demo_model/age_sex_reader \
        --real-only --train-dir reader20 --epochs 20 --warmup-steps 100 --lr 1e-3 --sex-weight 1.0 [--resume]
    python scripts/build_real_model.py --work /tmp/build [--init DIR | --init-checkpoint CKPT]
        [--epochs 8] [--train-dir train] [--device auto] [--resume]

`--real-only` trains bone age and sex on the RSNA 100-px films alone (Deeplasia's task: sex as
input, z-scored age, its head; plus the sex logit), on the film view (`matcher.film_view`),
so that a full-resolution film and its 100-px copy give the same answer. At the end the
BatchNorm statistics are re-estimated (`training.reader_finish`) and the model is saved as
`--work/<train-dir>/finished`; `bone2gene model attach-reader matcher/weights/demo_model DIR --half`
makes it the bundled model's age and sex reader. The bundled reader was made so
from the earlier real-film candidate (the command above with `--init` that candidate; its
MODEL_CARD.md, `matcher/weights/demo_model/MODEL_CARD.md`, gives the history).

Without `--real-only`, one network learns both (`training.joint`):
1. A synthetic cohort (`--n` phantoms at 512 px, seeded) unless `--work/cohort` exists.
2. Film views: the phantoms after domain randomisation (`training.domain`) and the RSNA
   100-px films, both cached under `--work`.
3. Joint training: metric learning on the synthetic disorders (the disorders in HELD_OUT
   never reach training), bone age and sex on real films. Such a model stays in
   `--work/<train-dir>/model`: at 100 px its disorder space has stayed far below the bundled
   encoder's (benchmarks/real.md history).

A checkpoint per epoch; `--resume` continues an interrupted run. The ids of
`../shared/real_hands_labelled` are never trained on (they are reported at full resolution);
the validation films are fixed by id (`training.real_data.is_validation_id`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from api.cli_helpers import progress_bar
from matcher.checkpoint import BUNDLED_MODEL_DIR, load_model, save_model
from training.domain import synthetic_views
from training.film_augment import FilmAugmentConfig
from training.joint import JointConfig, train_joint
from training.joint_data import JointData
from training.reader_finish import finish_reader
from training.real_data import load_rsna_100px, reported_ids
from training.synth.cohort import CohortConfig, generate_cohort

REPO = Path(__file__).resolve().parents[1]

HELD_OUT = ("trps1", "ellis_van_creveld", "holt_oram", "acromesomelic_maroteaux")


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


def _range_option(parser: argparse.ArgumentParser, flag: str, default: tuple[float, float], help_text: str) -> None:
    """A LOW HIGH pair of floats (an augmentation range of `FilmAugmentConfig`)."""
    parser.add_argument(flag, type=float, nargs=2, metavar=("LOW", "HIGH"), default=default, help=help_text)


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
        "--real-only",
        action="store_true",
        help="bone age and sex on the real films alone, no synthetic batch (needs --init: its labels are kept)",
    )
    parser.add_argument("--sex-weight", type=float, default=0.5)
    parser.add_argument("--real-batch-only", type=int, default=64, help="the real batch with --real-only")
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--copies", type=int, default=2, help="randomised exports per phantom")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument(
        "--input-size",
        type=int,
        default=100,
        help="the network's input side: the 100-px film view is resampled to it (128 gives the b0's stem more pixels per bone)",
    )
    _range_option(
        parser,
        "--augment-scale",
        FilmAugmentConfig.scale,
        "zoom range of the film view (below 1: the film smaller in its frame, as photographed or scanned films come)",
    )
    _range_option(
        parser, "--augment-contrast", FilmAugmentConfig.contrast, "contrast range (below 1: a fainter film, as washed-out exports come)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    real = load_rsna_100px(args.real, cache=args.work / "rsna_100px.npz")
    labelled = reported_ids(args.labelled)
    if args.real_only:
        if args.init is None:
            parser.error("--real-only needs --init MODEL_DIR (the model whose labels and weights it starts from)")
        data = JointData.real_only(real, load_model(args.init)[0].config.labels, labelled)
    else:
        views, table = _synthetic(args.work, args.n, args.seed, args.copies)
        data = JointData.build(views, table, real, HELD_OUT, labelled, seed=args.seed)
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
        input_size=args.input_size,
        device=args.device,
        seed=args.seed,
        resume=args.resume,
        warmup_steps=args.warmup_steps,
        lr=args.lr,
        synthetic_batch=0 if args.real_only else args.synthetic_batch,
        real_batch=args.real_batch_only if args.real_only else args.real_batch,
        sex_weight=args.sex_weight,
        augment=FilmAugmentConfig(scale=tuple(args.augment_scale), contrast=tuple(args.augment_contrast)),
        arcface_weight=args.arcface_weight,
    )
    model_dir = train_joint(config, data, log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.real_only:  # an age and sex reader: BatchNorm statistics re-estimated, then saved beside the run's model
        model, card = load_model(model_dir)
        report = finish_reader(model, data)
        print(json.dumps({"finished": report.recalibrated, "as_trained": report.as_trained}), file=sys.stderr)
        model_dir = model_dir.with_name("finished")
        save_model(model, model_dir, provenance={**card.provenance, **report.provenance()})
    if args.real_only:
        print(
            f"install it as the bundled model's reader: bone2gene model attach-reader {BUNDLED_MODEL_DIR} {model_dir} --half",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
