"""How far apart disorders lie: the catalogue's, the sampler's and the hand-written unseen syndromes'.

    python scripts/bench_disorder_spread.py --specs build/procedural/specs_seed36.yaml \
        [--model matcher/weights/demo_model --manifest build/eval/unseen_cohort_seed9/manifest.csv] \
        [--out benchmarks/procedural_disorders.md]

In spec space (`training.synth.spec_space`) for every set; with `--model` and `--manifest`, also in
the model's space: each disorder's centre (the normalised mean of its films' embeddings) and the
cosine distances between centres, for the catalogue's trained disorders and for the cohort's other
disorders (those the model never trained on).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from training.synth.disorder_sampler import CATALOGUE_HELD_OUT
from training.synth.spec import builtin_specs, load_specs, unseen_syndrome_specs
from training.synth.spec_space import diversity_rows, nearest_distances, signatures


def _table(rows: list[dict]) -> list[str]:
    header = list(rows[0])
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows),
    ]


def _space_rows(model_dir: Path, manifest: Path) -> list[dict]:
    from matcher.checkpoint import load_model
    from matcher.manifest import read_case_manifest
    from training.protocol.encoders import embed_films

    model, card = load_model(model_dir)
    table = read_case_manifest(manifest)
    table = table[table["disorder"].notna() & (table["disorder"] != "unaffected")].reset_index(drop=True)
    vectors, accepted = embed_films(model, table["path"], table["sex"], "cpu", 1)
    kept = table[accepted].reset_index(drop=True)
    trained = set(card.config.labels)
    rows = []
    for name, chosen in (
        ("trained disorders", sorted(d for d in set(kept["disorder"]) if d in trained)),
        ("disorders never trained on", sorted(d for d in set(kept["disorder"]) if d not in trained)),
    ):
        centres = np.stack([vectors[kept["disorder"] == d].mean(axis=0) for d in chosen])
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        cosine = 1 - centres @ centres.T
        pairs = cosine[np.triu_indices(len(chosen), k=1)]
        np.fill_diagonal(cosine, np.inf)
        rows.append(
            {
                "model": card.fingerprint[:12],
                "set": name,
                "disorders": len(chosen),
                "centre distance q10": round(float(np.quantile(pairs, 0.1)), 3),
                "median": round(float(np.median(pairs)), 3),
                "q90": round(float(np.quantile(pairs, 0.9)), 3),
                "nearest other centre, median": round(float(np.median(cosine.min(axis=1))), 3),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specs", type=Path, required=True, help="the sampler's YAML (bone2gene synth-specs)")
    parser.add_argument("--model", type=Path, action="append", default=[], help="a model directory (repeatable)")
    parser.add_argument("--manifest", type=Path, help="a cohort to read each model's space from")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/procedural_disorders.md"))
    args = parser.parse_args()
    catalogue = [s for s in builtin_specs() if s.category != "control"]
    trained = [s for s in catalogue if s.id not in CATALOGUE_HELD_OUT]
    drawn, unseen = load_specs(args.specs), unseen_syndrome_specs()
    sets = {
        "catalogue, trained (20)": trained,
        "catalogue, all": catalogue,
        f"drawn ({args.specs.name})": drawn,
        "unseen syndromes": unseen,
    }
    points = {name: signatures(specs) for name, specs in sets.items()}
    nearest = [
        {
            "unseen syndrome": spec.id,
            "nearest catalogue disorder": round(float(a), 3),
            "nearest drawn disorder": round(float(b), 3),
            "nearest other unseen syndrome": round(float(c), 3),
        }
        for spec, a, b, c in zip(
            unseen,
            nearest_distances(points["unseen syndromes"], points["catalogue, all"]),
            nearest_distances(points["unseen syndromes"], points[f"drawn ({args.specs.name})"]),
            nearest_distances(points["unseen syndromes"]),
            strict=True,
        )
    ]
    command = f"python scripts/bench_disorder_spread.py --specs {args.specs}" + "".join(f" --model {m}" for m in args.model)
    command += f" --manifest {args.manifest}" if args.manifest else ""
    lines = [
        "# How far apart disorders lie: the catalogue's, the sampler's, the unseen syndromes'",
        "",
        f"Command: `{command}`",
        "",
        "Spec space (`training.synth.spec_space`): each disorder's expected effect on a patient (log length and width "
        "factors of every bone, the phenotype parameters in their units, bone age in years, thumb forms), "
        "penetrance-weighted, averaged over ages 3, 8 and 13; Euclidean distances. The sampler's disorders should lie "
        "about as far apart as the catalogue's. A set of 200 is denser than one of 20, so its nearest neighbours "
        "lie closer: compare the pairwise columns.",
        "",
        *_table(diversity_rows(sets)),
        "",
        "Each hand-written unseen syndrome (`training/synth/specs/unseen_syndromes.yaml`) and its nearest neighbours: "
        "a small distance to a drawn disorder means the training set held a look-alike.",
        "",
        *_table(nearest),
        "",
    ]
    if args.model and args.manifest:
        rows = [row for model in args.model for row in _space_rows(model, args.manifest)]
        lines += [
            "## In the models' spaces",
            "",
            f"Disorder centres of `{args.manifest}` (cosine distance between centres; unaffected left out).",
            "",
            *_table(rows),
            "",
        ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
