"""Give a model a new embedding head refitted on its frozen backbone's features (issue 15, item 5).

    python scripts/bench_space.py features --model matcher/weights/demo_model \
        --manifest build/real/cohort/manifest.csv --limit 3000 --out build/space/train.npz
    python scripts/refit_bundled_head.py --model matcher/weights/demo_model --train build/space/train.npz \
        --kind arcface --margin 28.6 --scale 64 --epochs 60 --out build/refit/model
    bone2gene model install build/refit/model

The backbone and the bone-age and sex heads are untouched (their outputs do not change); only
the embedding head is replaced, trained under the given loss on the training films' pooled
features with the model's held-out disorders left out (`training.head_refit`). Which loss: the
one `scripts/bench_space.py heads` picks (benchmarks/space.md). The new weights are written in
float16 like the bundled model's, with the refit's settings in the provenance.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from matcher.checkpoint import load_model, save_model
from training.head_refit import HeadRefitConfig, refit_head
from training.metric_loss import LossKind, MetricLossConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True, help="features of the model's training films (bench_space.py features)")
    parser.add_argument("--kind", type=LossKind, default=LossKind.ARCFACE, choices=list(LossKind))
    parser.add_argument("--margin", type=float, default=28.6)
    parser.add_argument("--scale", type=float, default=64.0)
    parser.add_argument("--sub-centers", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    model, card = load_model(args.model)
    data = np.load(args.train)
    if str(data["model"]) != card.fingerprint:
        sys.exit(f"{args.train} holds features of model {str(data['model'])[:12]}, not of {card.fingerprint[:12]}; recompute them")
    held_out = set(card.provenance.get("held_out_disorders", []))
    keep = ~np.isin(data["disorder"], sorted(held_out))
    config = HeadRefitConfig(
        loss=MetricLossConfig(args.kind, args.margin, args.scale, args.sub_centers),
        embedding_dim=model.config.embedding_dim,
        epochs=args.epochs,
        seed=args.seed,
    )
    model.embedding = refit_head(data["features"][keep], data["disorder"][keep], config)
    provenance = {
        **card.provenance,
        "embedding_head_refit": {
            "from_model": card.fingerprint,
            "loss": config.loss.describe(),
            "config": config.to_json(),
            "train_films": int(keep.sum()),
            "command": " ".join(sys.argv),
        },
    }
    fingerprint = save_model(model.float(), args.out, provenance=provenance, storage_dtype=torch.float16)
    print(json.dumps({"model": fingerprint[:12], "from": card.fingerprint[:12], "loss": config.loss.describe(), "out": str(args.out)}))


if __name__ == "__main__":
    main()
