#!/usr/bin/env bash
# The GPU machine's run for issue 36 (item 5): one command that carries nothing big. The cohort is
# rendered there from the same seeds (renders are deterministic by seed, whatever the worker count),
# both from-scratch encoders train on the GPU (random and ImageNet starts, equal compute, to the end),
# and each run's model comes back through $OUT in float16 (config.json with its history, weights,
# training_disorders.yaml: 3 files a run, within the tool's 8 files of 16 MiB), to be evaluated here.
#   run: experiments/2026-12-07-procedural-disorders/device_run.sh   (with the device tool; $OUT set there)
# That machine reaches no package index: its own Python must hold torch and timm (its KINDS.md lists
# them); the project's other dependencies and the ImageNet wheels travel as wheels (the device README's
# note on missing packages). Untried: no GPU was lent to this task when it was written.
set -euo pipefail
here=experiments/2026-12-07-procedural-disorders
b2g="python3 -m api.cli"
specs=build/procedural/specs_seed36.yaml
[ -f "$specs" ] || $b2g synth-specs --n 200 --seed 36 --out "$specs"
ids=$(python3 -c "
from training.synth.spec import builtin_specs, load_specs
from training.synth.disorder_sampler import CATALOGUE_HELD_OUT
print(','.join([s.id for s in builtin_specs() if s.id not in CATALOGUE_HELD_OUT] + [s.id for s in load_specs('$specs')]))")
[ -f build/procedural/cohort_p200/manifest.csv ] || $b2g synth --n 8000 --out build/procedural/cohort_p200 \
    --spec "$specs" --disorders "$ids" --size 512 --seed 3601 --workers 0
for run in scratch_lite0_imagenet scratch_lite0_random; do
    $b2g train "$here/$run.yaml" --device cuda --resume
    python3 -c "from pathlib import Path; from matcher.checkpoint import install_model; install_model(Path('build/procedural/$run/model'), Path('$OUT/$run'))"
done
