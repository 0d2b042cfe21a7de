"""What a model keeps of the synthetic cohort it was trained on: the generator's settings and seed,
and the specs of its disorders.

Why: a space trained on procedurally drawn disorders can only be rebuilt, audited or extended
when the drawn specs travel with it; a cohort's `cohort.json` (written by `bone2gene synth`
beside its manifest) holds both, and the trainer copies them into the model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import yaml


def _cohort_file(manifest: Path) -> dict | None:
    path = manifest.parent / "cohort.json"
    return json.loads(path.read_text()) if path.is_file() else None


def cohort_record(manifest: Path) -> dict | None:
    """The generator, its version, seed and settings of the cohort beside `manifest`; None where
    the manifest has no `cohort.json` (real films, a combined manifest)."""
    cohort = _cohort_file(manifest)
    return None if cohort is None else {k: v for k, v in cohort.items() if k != "disorders"}


def write_training_specs(directory: Path, manifest: Path, trained: Sequence[str]) -> bool:
    """Write the specs of the `trained` disorders from the cohort beside `manifest` into
    `directory` (`matcher.checkpoint.TRAINING_SPECS_FILE`, YAML that `bone2gene synth --spec`
    reads); False where the cohort records none."""
    from matcher.checkpoint import TRAINING_SPECS_FILE

    cohort = _cohort_file(manifest)
    if cohort is None or not cohort.get("disorders"):
        return False
    specs = [cohort["disorders"][name] for name in trained if name in cohort["disorders"]]
    header = f"# The disorders this model was trained on, as the cohort {manifest.parent.name} rendered them (seed {cohort.get('seed')}).\n"
    (directory / TRAINING_SPECS_FILE).write_text(header + yaml.safe_dump(specs, sort_keys=False, allow_unicode=True))
    return True
