"""Which metric loss spreads the space: the bundled model's embedding head refitted on its frozen backbone.

    python experiments/2026-12-02-embedding-head-loss/compare_losses.py --model matcher/weights/demo_model \
        --train build/demo/cohort/manifest.csv --select build/eval/cohort_seed7/manifest.csv \
        --report build/eval/cohort_seed8/manifest.csv --work build/space

Each cohort's films are read once (`training.pooled_features`, stored in --work). The head is
refitted under each loss of `VARIANTS` on 3000 training films (held-out disorders left out),
the loss is chosen on the select cohort (best sum of pooled AUROC and both top-1s) and every
loss is reported on the report cohort beside the model's own head; then the chosen head and the
model's own are compared on unseen syndromes added with 3 cases. Writes results.json here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from matcher.checkpoint import read_card
from matcher.progress import progress_bar
from training.head_refit import HeadRefitConfig, embed_features, refit_head
from training.metric_loss import LossKind, MetricLossConfig
from training.pooled_features import FeatureSet, read_features
from training.protocol.space import score_space
from training.protocol.unseen import new_syndrome_experiment, summarise

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "ArcFace 28.6 deg / 64 (as trained)": MetricLossConfig(LossKind.ARCFACE, 28.6, 64.0),
    "ArcFace 28.6 deg / 32": MetricLossConfig(LossKind.ARCFACE, 28.6, 32.0),
    "ArcFace 28.6 deg / 16": MetricLossConfig(LossKind.ARCFACE, 28.6, 16.0),
    "ArcFace 45 deg / 64": MetricLossConfig(LossKind.ARCFACE, 45.0, 64.0),
    "ArcFace 10 deg / 64": MetricLossConfig(LossKind.ARCFACE, 10.0, 64.0),
    "sub-centre ArcFace x3, 28.6 deg / 64": MetricLossConfig(LossKind.SUBCENTER_ARCFACE, 28.6, 64.0, 3),
    "CosFace 0.35 / 64": MetricLossConfig(LossKind.COSFACE, 0.35, 64.0),
}


def _features(model: Path, fingerprint: str, manifest: Path, out: Path, limit: int = 0) -> FeatureSet:
    if out.is_file():
        return FeatureSet.load(out, fingerprint)
    with progress_bar(f"reading {manifest.parent.name}", unit="film") as bar:
        return read_features(model, manifest, limit, progress=bar).save(out)


def _pick(rows: dict[str, dict]) -> str:
    refits = {k: v for k, v in rows.items() if "fit_seconds" in v}
    return max(refits, key=lambda k: sum(refits[k]["select"][m] for m in ("auroc", "frequent_top1", "unseen_top1")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("model", "train", "select", "report", "work"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--draws", type=int, default=10)
    args = parser.parse_args()
    card = read_card(args.model)
    held_out = card.provenance.get("held_out_disorders", [])
    train = _features(args.model, card.fingerprint, args.train, args.work / "train.npz", limit=3000)
    cohorts = {c: _features(args.model, card.fingerprint, getattr(args, c), args.work / f"{c}.npz") for c in ("select", "report")}
    keep = ~train.cases["disorder"].isin(held_out).to_numpy()
    x, y = train.features[keep], train.cases["disorder"].to_numpy(dtype=str)[keep]
    trained_on = list(card.config.labels)
    rows = {"model's own head": {c: score_space(s.embedding, s.cases, trained_on, args.draws).to_json() for c, s in cohorts.items()}}
    heads = {}
    for name, loss in VARIANTS.items():
        started = time.perf_counter()
        heads[name] = refit_head(x, y, HeadRefitConfig(loss=loss, epochs=args.epochs))
        rows[name] = {"fit_seconds": round(time.perf_counter() - started, 1)}
        for c, s in cohorts.items():
            rows[name][c] = score_space(embed_features(heads[name], s.features), s.cases, trained_on, args.draws).to_json()
        print(name, json.dumps(rows[name]), flush=True)
    chosen, report = _pick(rows), cohorts["report"]
    unseen = {
        name: summarise(new_syndrome_experiment(vectors, report.cases, held_out, n_added=(3,), draws=10, seed=8)).to_dict("records")
        for name, vectors in (("model's own head", report.embedding), (chosen, embed_features(heads[chosen], report.features)))
    }
    result = {"model": card.fingerprint, "train_films": int(keep.sum()), "epochs": args.epochs, "draws": args.draws}
    (HERE / "results.json").write_text(json.dumps({**result, "chosen": chosen, "rows": rows, "unseen_3_cases": unseen}, indent=1))


if __name__ == "__main__":
    main()
