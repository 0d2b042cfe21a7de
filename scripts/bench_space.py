"""Which metric loss spreads the space (issue 15, item 5): the embedding head refitted on a frozen backbone.

    python scripts/bench_space.py features --model matcher/weights/demo_model \
        --manifest build/real/cohort/manifest.csv --limit 3000 --out build/space/train.npz
    python scripts/bench_space.py features --model matcher/weights/demo_model \
        --manifest build/eval/cohort_seed7/manifest.csv --out build/space/seed7.npz
    python scripts/bench_space.py features --model matcher/weights/demo_model \
        --manifest build/eval/cohort_seed8/manifest.csv --out build/space/seed8.npz
    python scripts/bench_space.py heads --model matcher/weights/demo_model --train build/space/train.npz \
        --select build/space/seed7.npz --report build/space/seed8.npz          -> benchmarks/space.md
    python scripts/bench_space.py unseen --model matcher/weights/demo_model --train build/space/train.npz \
        --report build/space/seed8.npz --manifest build/eval/cohort_seed8/manifest.csv   -> appended to it

`features` gates every film once and stores the model's pooled backbone features and its
embedding. `heads` refits the embedding head under each loss of `VARIANTS` on the training
films (the model's own training cohort, its held-out disorders left out), picks the loss on the
seed-7 cohort and reports every loss on the seed-8 cohort, beside the model's own head. The
backbone is the bundled model's, trained under ArcFace 28.6 deg / 64: this measures the loss's
effect on the head only. `unseen` then compares the chosen head with the model's own on unseen
syndromes added with 3 cases (`training.protocol.unseen.new_syndrome_experiment`, as
`bone2gene evaluate --suite unseen` does), the condition for installing it.
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
from matcher.checkpoint import load_model, read_card
from matcher.manifest import read_case_manifest
from training.distributed import pick_device
from training.head_refit import HeadRefitConfig, embed_features, refit_head
from training.metric_loss import LossKind, MetricLossConfig
from training.protocol.encoders import run_network
from training.protocol.inputs import prepare_inputs
from training.protocol.space import score_space

REPO = Path(__file__).resolve().parents[1]

BENCH = REPO / "benchmarks"
VARIANTS = {
    "ArcFace 28.6 deg / 64 (as trained)": MetricLossConfig(LossKind.ARCFACE, 28.6, 64.0),
    "ArcFace 28.6 deg / 32": MetricLossConfig(LossKind.ARCFACE, 28.6, 32.0),
    "ArcFace 28.6 deg / 16": MetricLossConfig(LossKind.ARCFACE, 28.6, 16.0),
    "ArcFace 45 deg / 64": MetricLossConfig(LossKind.ARCFACE, 45.0, 64.0),
    "ArcFace 10 deg / 64": MetricLossConfig(LossKind.ARCFACE, 10.0, 64.0),
    "sub-centre ArcFace x3, 28.6 deg / 64": MetricLossConfig(LossKind.SUBCENTER_ARCFACE, 28.6, 64.0, 3),
    "CosFace 0.35 / 64": MetricLossConfig(LossKind.COSFACE, 0.35, 64.0),
}


def features(args: argparse.Namespace) -> None:
    table = read_case_manifest(args.manifest)
    table = table[table["disorder"].notna()].reset_index(drop=True)
    if args.limit and len(table) > args.limit:
        table = table.sample(args.limit, random_state=0).reset_index(drop=True)
    model, card = load_model(args.model)
    model.attach_reader(None)  # the encoder's features and embedding are stored; bone age and sex are not read
    with progress_bar("reading films", unit="film") as bar:
        prepared = prepare_inputs([Path(p) for p in table["path"]], [model.config], 0, bar)
    table = table[prepared.accepted].reset_index(drop=True)
    out = run_network(model, prepared.for_config(model.config), (table["sex"] == "M").to_numpy(np.float32), pick_device("auto"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        args.out,
        features=out.features,
        embedding=out.embedding,
        case_id=table["case_id"].to_numpy(dtype=str),
        patient_id=table["patient_id"].to_numpy(dtype=str),
        disorder=table["disorder"].to_numpy(dtype=str),
        model=card.fingerprint,
    )
    print(json.dumps({"films": len(table), "refused": int((~prepared.accepted).sum()), "out": str(args.out)}))


def _load(path: Path) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    data = np.load(path)
    table = pd.DataFrame({"disorder": data["disorder"], "patient_id": data["patient_id"]})
    return data["features"], data["embedding"], table


def heads(args: argparse.Namespace) -> None:
    model, card = load_model(args.model)
    trained_on = [d for d in model.config.labels]
    held_out = set(card.provenance.get("held_out_disorders", []))
    train_x, _, train_table = _load(args.train)
    keep = ~train_table["disorder"].isin(held_out).to_numpy()
    cohorts = {"select": _load(args.select), "report": _load(args.report)}
    rows: dict[str, dict] = {}
    for cohort, (_, embedding, table) in cohorts.items():
        rows.setdefault("model's own head", {})[cohort] = score_space(embedding, table, trained_on, args.draws).to_json()
    for name, loss in VARIANTS.items():
        started = time.perf_counter()
        head = refit_head(train_x[keep], train_table["disorder"].to_numpy()[keep], HeadRefitConfig(loss=loss, epochs=args.epochs))
        rows[name] = {"fit_seconds": round(time.perf_counter() - started, 1)}
        for cohort, (x, _, table) in cohorts.items():
            rows[name][cohort] = score_space(embed_features(head, x), table, trained_on, args.draws).to_json()
        print(name, json.dumps(rows[name]), file=sys.stderr, flush=True)
    result = {"model": card.fingerprint, "train_films": int(keep.sum()), "epochs": args.epochs, "draws": args.draws, "rows": rows}
    (BENCH / "space.json").write_text(json.dumps(result, indent=1))
    (BENCH / "space.md").write_text(render(result))


def unseen(args: argparse.Namespace) -> None:
    from training.protocol.unseen import new_syndrome_experiment, summarise

    card = read_card(args.model)
    result = json.loads((BENCH / "space.json").read_text())
    chosen = _pick(result["rows"])
    train_x, _, train_table = _load(args.train)
    held_out = card.provenance.get("held_out_disorders", [])
    keep = ~train_table["disorder"].isin(held_out).to_numpy()
    head = refit_head(
        train_x[keep], train_table["disorder"].to_numpy()[keep], HeadRefitConfig(loss=VARIANTS[chosen], epochs=result["epochs"])
    )
    data = np.load(args.report)
    table = read_case_manifest(args.manifest).set_index("case_id").loc[data["case_id"]].reset_index()
    lines = ["", f"## Unseen syndromes added with 3 cases ({args.report.name}, 10 draws, density rule)", ""]
    lines += ["| head | setting | top-1 | top-5 | top-10 |", "|---|---|---|---|---|"]
    for name, vectors in (("model's own head", data["embedding"]), (chosen, embed_features(head, data["features"]))):
        summary = summarise(new_syndrome_experiment(vectors, table, held_out, n_added=(3,), draws=10, seed=8))
        lines += [f"| {name} | {r['setting']} | {r['top-1']} | {r['top-5']} | {r['top-10']} |" for _, r in summary.iterrows()]
    with (BENCH / "space.md").open("a") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def _pick(rows: dict[str, dict]) -> str:
    """The loss with the best seed-7 sum of pooled AUROC and both top-1s (refits only)."""
    refits = {k: v for k, v in rows.items() if "fit_seconds" in v}
    score = lambda r: r["select"]["auroc"] + r["select"]["frequent_top1"] + r["select"]["unseen_top1"]  # noqa: E731
    return max(refits, key=lambda k: score(refits[k]))


def render(result: dict) -> str:
    chosen = _pick(result["rows"])
    columns = [
        ("frequent_top1", "F->F+R top-1"),
        ("unseen_top1", "R->F+R top-1"),
        ("auroc", "AUROC pooled"),
        ("auroc_frequent", "AUROC F"),
        ("auroc_unseen", "AUROC R"),
        ("no_match_fires_when_absent", "no-match fires, absent"),
        ("no_match_off_when_right", "no-match off, right"),
        ("same_disorder_cosine", "cos same"),
        ("other_disorder_cosine", "cos other"),
    ]
    lines = [
        "# Spreading the space: the metric loss of the embedding head (issue 15, item 5)",
        "",
        "Commands: see `scripts/bench_space.py` (features of the training, seed-7 and seed-8 cohorts, then `heads`).",
        "",
        f"Model {result['model'][:12]}: its backbone frozen, the embedding head refitted on {result['train_films']} films of its "
        f"own training cohort (held-out disorders left out) for {result['epochs']} epochs under each loss. Chosen on the seed-7 "
        f"cohort (best sum of pooled AUROC and both top-1s): **{chosen}**. Reported on the seed-8 cohort, {result['draws']} "
        "draws; top-1 macro over disorders; AUROC of the calibrated top disorder's probability for right vs wrong answers.",
        "",
    ]
    for cohort, title in (("report", "Seed 8 (reported)"), ("select", "Seed 7 (used to choose)")):
        lines += [f"## {title}", "", "| head | " + " | ".join(c[1] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for name, row in result["rows"].items():
            values = row[cohort]
            cells = [f"{100 * values[k]:.1f}" if "top" in k or "no_match" in k else f"{values[k]:.3f}" for k, _ in columns]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", type=Path, required=True)
    refit = argparse.ArgumentParser(add_help=False, parents=[model])  # a head refitted on these training features
    refit.add_argument("--train", type=Path, required=True)
    refit.add_argument("--report", type=Path, required=True)
    f = sub.add_parser("features", parents=[model])
    f.add_argument("--manifest", type=Path, required=True)
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--limit", type=int, default=0)
    h = sub.add_parser("heads", parents=[refit])
    h.add_argument("--select", type=Path, required=True)
    h.add_argument("--epochs", type=int, default=60)
    h.add_argument("--draws", type=int, default=10)
    u = sub.add_parser("unseen", parents=[refit])
    u.add_argument("--manifest", type=Path, required=True)
    args = parser.parse_args()
    {"features": features, "heads": heads, "unseen": unseen}[args.part](args)


if __name__ == "__main__":
    main()
