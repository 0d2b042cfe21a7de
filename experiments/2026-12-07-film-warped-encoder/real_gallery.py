"""Real validation controls against a gallery of real hands carrying disorders (warped training films).

    python experiments/2026-12-07-film-warped-encoder/real_gallery.py --model DIR --gallery build/mix/warped2400/manifest.csv \
        --queries build/warped900s2/manifest.csv --shared ../shared [--real 300]

A phantom gallery holds nothing that looks like a real film, so a real control can only land
near some phantom. Here every gallery case is a real training film: the warped cohort's controls
(the films unchanged, "unaffected") and its warped films (a disorder's bone lengths carried). Real
controls (RSNA validation films, never in any warped cohort) should then rank "unaffected" first if
the space reads proportions; warped films of other hands (the queries' cohort, hands the gallery does
not hold) should rank their own disorder first. Figures as `training.real_eval.space_figures` gives them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from matcher.checkpoint import load_model
from matcher.model import Bone2GeneModel
from training.real_data import is_validation_id, read_labels, reported_ids
from training.real_eval import embed_images, space_figures

KEPT = (
    "gallery_cases",
    "real_controls",
    "real_unaffected_first",
    "real_flagged_no_close_match",
    "real_confident_disorder",
    "real_top_probability_max",
    "real_top_disorders",
    "synthetic_queries_in_gallery",
    "synthetic_top1",
    "real_vs_synthetic_controls",
)


def embedded(model: Bone2GeneModel, manifest: Path) -> pd.DataFrame:
    table = pd.read_csv(manifest, keep_default_na=False)
    embeddings = embed_images(model, manifest.parent, list(table["image"]), list(table["sex"]))
    table = table.assign(embedding=embeddings)
    return table[[e is not None for e in embeddings]].reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--gallery", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--shared", type=Path, required=True)
    parser.add_argument("--real", type=int, default=300)
    args = parser.parse_args()
    model, card = load_model(args.model)
    gallery = embedded(model, args.gallery)
    queries = embedded(model, args.queries)
    queries = queries[~queries["derived_from"].isin(set(gallery["derived_from"]))].reset_index(drop=True)
    root = args.shared / "rsna_100px"
    labels = read_labels(root)
    held = labels[is_validation_id(labels["id"].to_numpy()) & ~labels["id"].isin(reported_ids(args.shared / "real_hands_labelled"))]
    held = held.head(args.real)
    sexes = ["M" if str(m).lower() == "true" else "F" for m in held["male"]]
    real = embed_images(model, root / "images", [f"{i}.png" for i in held["id"]], sexes)
    figures = space_figures(gallery, queries, [e for e in real if e is not None])
    print(json.dumps({"model": card.fingerprint[:12], **{k: figures[k] for k in KEPT}}, indent=1))


if __name__ == "__main__":
    main()
