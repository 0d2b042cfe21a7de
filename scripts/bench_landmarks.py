"""What measuring the hand costs `analyze`: paired runs with and without the landmark model.

    python scripts/bench_landmarks.py --shared ../shared [--repeats 3] [--out benchmarks/landmark_timing.md]

On every film of `real_hands` and `real_hands_labelled`, each analysis with the bundled landmark
model (the default) is paired with one without (`AnalysisOptions(hand=None)`) run just before it,
so that drifts of a shared machine cancel; the ratio's median is the figure. Budget: 1.5x.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from matcher.analysis import AnalysisOptions, Analyzer
from matcher.checkpoint import BUNDLED_MODEL_DIR, load_model
from matcher.hand_measure import bundled_measurer
from matcher.io import read_radiograph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, required=True, help="the folder holding real_hands and real_hands_labelled")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/landmark_timing.md"))
    args = parser.parse_args()
    measurer = bundled_measurer()
    if measurer is None:
        raise SystemExit("no landmark model is installed (bone2gene model install --landmarks DIR)")
    model, card = load_model(BUNDLED_MODEL_DIR)
    with_hand, without = Analyzer(model, AnalysisOptions(hand=measurer)), Analyzer(model, AnalysisOptions(hand=None))
    films = [read_radiograph(p) for folder in ("real_hands", "real_hands_labelled") for p in sorted((args.shared / folder).glob("*.png"))]
    ratios, plain, measured, stage = [], [], [], []
    for film in films:
        with_hand.analyze(film, sex="F")  # warm both paths on this film size
        for _ in range(args.repeats):
            start = time.perf_counter()
            without.analyze(film, sex="F")
            middle = time.perf_counter()
            result = with_hand.analyze(film, sex="F")
            end = time.perf_counter()
            plain.append(1e3 * (middle - start))
            measured.append(1e3 * (end - middle))
            ratios.append((end - middle) / (middle - start))
            stage.append(result.timings_ms["landmarks"])
    lines = [
        "# What measuring the hand costs `analyze`",
        "",
        f"Command: `python scripts/bench_landmarks.py --shared {args.shared} --repeats {args.repeats}`",
        "",
        f"{len(films)} real films (real_hands, real_hands_labelled), {args.repeats} pairs each, model {card.fingerprint[:12]}, "
        f"landmark network (frozen for the CPU) reading {measurer.network.config.view_size}-px views, "
        f"{torch.get_num_threads()} torch threads on this machine's CPU. "
        "Each analysis with the landmark model is paired with one without it, run just before.",
        "",
        "| analyze without landmarks (ms, median) | with landmarks (ms, median) | landmark stage (ms, median) | paired ratio (median) | budget |",
        "|---|---|---|---|---|",
        f"| {statistics.median(plain):.0f} | {statistics.median(measured):.0f} | {statistics.median(stage):.0f} | "
        f"{statistics.median(ratios):.2f}x | 1.5x |",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
