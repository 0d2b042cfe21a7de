"""Benchmark: the encoder against its budgets (DESIGN.md section 6), one interleaved run.

    python scripts/bench_model.py [--model DIR] [--repeats 15] [--out benchmarks/model.md]

Measures at 512 px on this machine: the bare backbone forward (batch 1 and 8), with and
without channels-last (kept only where outputs stay within 1e-4), the full `analyze` per
image on ../shared/real_hands (read, mask, gate, preprocess, model), and batch embedding
throughput against the bare batched forward. Without --model the Deeplasia fixture
checkpoint is imported (random weights: speed is the same as for real ones).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from matcher.analysis import Analyzer
from matcher.batch import BatchItem, embed_many
from matcher.checkpoint import import_deeplasia, load_model
from matcher.model import Bone2GeneModel

REPO = Path(__file__).resolve().parents[1]


def timed(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls after one warm-up."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--real", type=Path, default=REPO.parent / "shared" / "real_hands")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "model.md")
    args = parser.parse_args()
    model_dir = args.model
    if model_dir is None:
        model_dir = Path(tempfile.mkdtemp()) / "fixture-model"
        import_deeplasia(REPO.parent / "shared" / "fixtures" / "deeplasia" / "new_b0_512_sexhead.ckpt", model_dir)
    model, card = load_model(model_dir)
    size = card.config.input_size
    threads = torch.get_num_threads()
    images = sorted(args.real.glob("*.png"))

    x1, x8 = torch.randn(1, 1, size, size), torch.randn(8, 1, size, size)
    with torch.inference_mode():
        reference = model.backbone(x8)
    backbone_cl = Bone2GeneModel(card.config).eval()
    backbone_cl.load_state_dict(model.state_dict())
    backbone_cl = backbone_cl.backbone.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        channels_last_ok = torch.allclose(backbone_cl(x8.to(memory_format=torch.channels_last)), reference, atol=1e-4, rtol=1e-5)

    # torch.compile (first call is slow, then reused) and bf16 autocast: kept only within tolerance
    compiled = torch.compile(model.backbone)
    start = time.perf_counter()
    with torch.inference_mode():
        compiled_out = compiled(x8)
    compile_seconds = time.perf_counter() - start
    compile_ok = torch.allclose(compiled_out, reference, atol=1e-4, rtol=1e-5)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_out = model.backbone(x8).float()
    bf16_error = float(((bf16_out - reference).abs().max() / reference.abs().max()))

    analyzer = Analyzer(model)
    xc1, xc8 = x1.to(memory_format=torch.channels_last), x8.to(memory_format=torch.channels_last)
    rows: dict[str, float] = {}
    for _ in range(2):  # interleave the measurements twice; keep the better of each
        with torch.inference_mode():
            rows["bare1"] = min(rows.get("bare1", 1e9), timed(lambda: model.backbone(x1), args.repeats))
            rows["bare8"] = min(rows.get("bare8", 1e9), timed(lambda: model.backbone(x8), max(3, args.repeats // 3)) / 8)
            if channels_last_ok:
                rows["cl1"] = min(rows.get("cl1", 1e9), timed(lambda: backbone_cl(xc1), args.repeats))
                rows["cl8"] = min(rows.get("cl8", 1e9), timed(lambda: backbone_cl(xc8), max(3, args.repeats // 3)) / 8)
            rows["compiled1"] = min(rows.get("compiled1", 1e9), timed(lambda: compiled(x1), args.repeats))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                rows["bf16_1"] = min(rows.get("bf16_1", 1e9), timed(lambda: model.backbone(x1), args.repeats))
        per_image = [timed(lambda p=p: analyzer.analyze(p, sex="F"), 2) for p in images]
        rows["analyze"] = min(rows.get("analyze", 1e9), statistics.median(per_image))
        items = [BatchItem(p, "F") for p in images] * 2
        start = time.perf_counter()
        embed_many(model, items, batch_size=8, workers=1)
        rows["batch"] = min(rows.get("batch", 1e9), (time.perf_counter() - start) / len(items))

    def ms(seconds: float) -> str:
        return f"{seconds * 1e3:.1f}"

    lines = [
        "# Encoder speed against its budgets",
        "",
        f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}, {threads} threads; "
        f"{card.config.backbone_name} at {size} px; images: {len(images)} real radiographs (../shared/real_hands). "
        "Medians, best of two interleaved passes.",
        "",
        "| what | ms per image | ratio to bare forward (batch 1) |",
        "| --- | ---: | ---: |",
        f"| bare backbone forward, batch 1 (baseline) | {ms(rows['bare1'])} | 1.00 |",
        f"| bare backbone forward, batch 8 | {ms(rows['bare8'])} | {rows['bare8'] / rows['bare1']:.2f} |",
    ]
    if channels_last_ok:
        lines += [
            f"| channels-last forward, batch 1 | {ms(rows['cl1'])} | {rows['cl1'] / rows['bare1']:.2f} |",
            f"| channels-last forward, batch 8 | {ms(rows['cl8'])} | {rows['cl8'] / rows['bare1']:.2f} |",
        ]
    else:
        lines.append("| channels-last | outputs differ by more than 1e-4: not used | |")
    lines += [
        f"| torch.compile forward, batch 1 (first call {compile_seconds:.0f} s; "
        f"{'within 1e-4' if compile_ok else 'outputs differ: not used'}) | {ms(rows['compiled1'])} | {rows['compiled1'] / rows['bare1']:.2f} |",
        f"| bf16 autocast forward, batch 1 (relative error {bf16_error:.1e}: "
        f"{'within tolerance' if bf16_error <= 1e-5 else 'beyond tolerance, not used'}) | "
        f"{ms(rows['bf16_1'])} | {rows['bf16_1'] / rows['bare1']:.2f} |",
    ]
    analyze_ratio = rows["analyze"] / rows["bare1"]
    batch_ratio = rows["bare8"] / rows["batch"]
    lines += [
        f"| full `analyze` (read, mask, gate, preprocess, model) | {ms(rows['analyze'])} | {analyze_ratio:.2f} |",
        f"| batch embedding (`embed_many`, batch 8, 1 decode worker) | {ms(rows['batch'])} | {rows['batch'] / rows['bare1']:.2f} |",
        "",
        f"Budget: full analysis <= 1.25x bare forward: **{'met' if analyze_ratio <= 1.25 else 'not met'}** ({analyze_ratio:.2f}x).",
        f"Budget: batch throughput >= 0.9x bare batched forward: **{'met' if batch_ratio >= 0.9 else 'not met'}** ({batch_ratio:.2f}x).",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
