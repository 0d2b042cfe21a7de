"""The unseen suite's "model, density rule" rows alone (the same films, draws, seed and function as
`bone2gene evaluate --suite unseen`, without its untrained baseline and nearest-case rows): a quarter of
the suite's time on 2 CPU cores, for comparing fine-tunes against the suite's run of the bundled model.

    python experiments/2026-12-07-procedural-disorders/unseen_density.py --model build/procedural/run_p200/model \
        --manifest build/eval/unseen_cohort_seed9/manifest.csv --seed 9 --draws 10 --out build/eval/unseen_specs_p200.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matcher.checkpoint import BUNDLED_MODEL_DIR, load_model, read_card
from matcher.manifest import read_case_manifest
from matcher.rank import RankingRule
from training.protocol.encoders import embed_films
from training.protocol.unseen import new_syndrome_experiment, per_disorder, summarise, unseen_disorders


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model, card = load_model(args.model)
    table = read_case_manifest(args.manifest)
    table = table[table["disorder"].notna()].reset_index(drop=True)
    # unseen: what the bundled model never trained on, so that both models are asked about the same disorders
    bundled_labels = set(read_card(BUNDLED_MODEL_DIR).config.labels)
    held_out = unseen_disorders(set(table["disorder"]), card.provenance.get("held_out_disorders") or [], bundled_labels)
    vectors, accepted = embed_films(model, table["path"], table["sex"], "auto", 1)
    kept = table[accepted].reset_index(drop=True)
    results = new_syndrome_experiment(vectors, kept, held_out, draws=args.draws, seed=args.seed, rule=RankingRule.DENSITY)
    report = {
        "model": card.fingerprint[:12],
        "held_out": held_out,
        "summary": summarise(results).to_dict(orient="records"),
        "per_disorder_3": per_disorder(results, 3).to_dict(orient="records"),
    }
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report["summary"], indent=1))


if __name__ == "__main__":
    main()
