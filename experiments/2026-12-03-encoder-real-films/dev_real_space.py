"""Feature-space figures on development films, for choosing an encoder (`real_dev_eval.py`).

    python experiments/2026-12-03-encoder-real-films/dev_real_space.py --model DIR --shared ../shared [--limit 300] [--real-gallery 100] [--out build/dev_space.json]

Development films: RSNA ids with id % 20 == 10 (never in a fine-tuning manifest); galleries and
queries: phantom seeds 5001-5004. The report's films (benchmarks/real.md, id % 20 == 0) are not read.
`--real-gallery N` adds N training-split RSNA films to every phantom gallery as "unaffected" cases.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from real_dev_eval import dev_summary, development_space

from matcher.checkpoint import load_model
from training.real_data import reported_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--shared", type=Path, required=True, help="the folder holding rsna_100px and real_hands_labelled")
    parser.add_argument("--limit", type=int, default=None, help="the first N development films by id (default: all)")
    parser.add_argument("--real-gallery", type=int, default=0, help="training-split RSNA films that join each gallery as controls")
    parser.add_argument("--out", type=Path, default=None, help="JSON of every figure")
    args = parser.parse_args()
    model, card = load_model(args.model)
    result = {
        "model": str(args.model),
        "fingerprint": card.fingerprint[:12],
        **development_space(
            model,
            args.shared / "rsna_100px",
            reported_ids(args.shared / "real_hands_labelled"),
            args.limit,
            real_gallery_n=args.real_gallery,
        ),
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    print(f"{result['model']} ({result['fingerprint']}), {result['dev_films_accepted']} development films")
    print(dev_summary(result).to_string())


if __name__ == "__main__":
    main()
