"""Make the all-sources combination of an evidence report the service's default evidence model.

    bone2gene synth --n 1500 --out build/eval/cohort_seed7 --size 512 --seed 7
    bone2gene synth --n 1500 --out build/eval/cohort_seed8 --size 512 --seed 8
    bone2gene evaluate --suite evidence --model matcher/weights/demo_model --fit-manifest build/eval/cohort_seed7/manifest.csv \
        --manifest build/eval/cohort_seed8/manifest.csv --out benchmarks/evidence.md
    python scripts/install_evidence_model.py benchmarks/evidence.json     -> index/evidence_model.json

The combination was fitted on the fit cohort only (`training.protocol.evidence_eval`); the
report beside it says how it ranks on the other cohort.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from index.evidence import DEFAULT_MODEL_PATH, EvidenceModel
from training.protocol.evidence_eval import ALL_SOURCES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="the JSON of an evidence suite's report")
    args = parser.parse_args()
    models = json.loads(args.report.read_text())["models"]
    model = EvidenceModel(**models[ALL_SOURCES])  # refuses what is not an evidence model
    DEFAULT_MODEL_PATH.write_text(json.dumps(model.to_json(), indent=1) + "\n")
    print(f"{DEFAULT_MODEL_PATH}: the {ALL_SOURCES} model of {args.report}")


if __name__ == "__main__":
    main()
