#!/usr/bin/env bash
# The GPU machine's run for issue 36 (item 5): one command that carries nothing big. The cohort is
# rendered there from the same seeds (renders are deterministic by seed, whatever the worker count),
# both from-scratch encoders train on the GPU (random and ImageNet starts, equal compute), and the
# run folders (checkpoint.pt, log, best_model/, model/) go to $OUT, from where this machine resumes
# or evaluates them (`bone2gene train <yaml> --resume`: the same paths under build/procedural/).
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
    mkdir -p "$OUT/$run" && cp -r "build/procedural/$run/." "$OUT/$run/"
done
