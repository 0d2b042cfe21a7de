"""Benchmark: rendering speed of each render style against the classic one, in the same run.

    python scripts/bench_renderers.py [--n 30] [--size 512] [--passes 3]

The same planned cases are rendered in memory (nothing written) by every style, the styles
interleaved pass by pass so that load from other work falls on all of them alike; each style's
figure is its median pass. The ratio to classic is the claim; images/s depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from training.synth.cohort import CohortConfig, plan_cohort, simulate
from training.synth.spec import builtin_specs
from training.synth.xray import RENDERERS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    specs = {s.id: s for s in builtin_specs()}
    plans = plan_cohort(CohortConfig(n=args.n, out=Path("unused"), seed=9))
    seconds: dict[str, list[float]] = {name: [] for name in RENDERERS}
    for _ in range(args.passes):
        for name in RENDERERS:
            started = time.perf_counter()
            for plan in plans:
                simulate(plan, specs[plan.disorder], args.size, name)
            seconds[name].append(time.perf_counter() - started)
    classic = statistics.median(seconds["classic"])
    print(f"{args.n} phantoms at {args.size} px, {args.passes} interleaved passes, median pass:")
    for name, runs in seconds.items():
        median = statistics.median(runs)
        print(f"  {name:8s} {args.n / median:6.1f} images/s   {classic / median:.2f}x classic's speed")


if __name__ == "__main__":
    main()
