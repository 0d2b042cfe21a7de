"""Benchmark: the encoder against its budgets (DESIGN.md section 6), one interleaved run.

    python scripts/bench_model.py --shared ../shared [--model DIR] [--repeats 15] [--device cpu|cuda] [--workers 1]
                                  [--out benchmarks/model.md]

Measures at 512 px on this machine: the bare backbone forward (batch 1 and 8), with and
without channels-last (kept only where outputs stay within 1e-4), the full `analyze` per
image on ../shared/real_hands (read, mask, gate, preprocess, model), and batch embedding
throughput against the bare batched forward. Without --model the Deeplasia fixture
checkpoint is imported (random weights: speed is the same as for real ones).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from matcher.analysis import AnalysisOptions, Analyzer
from matcher.batch import BatchItem, embed_many
from matcher.checkpoint import import_deeplasia, load_model
from matcher.model import Bone2GeneModel, ModelConfig

REPO = Path(__file__).resolve().parents[1]


def timed(fn, repeats: int, sync=lambda: None) -> float:
    """Median seconds of `repeats` calls after one warm-up (`sync` waits for the GPU)."""
    fn()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def load_benchmark_model(model_dir: Path | None, shared: Path) -> tuple[Bone2GeneModel, str]:
    """The given model, else Deeplasia's fixture checkpoint, else random b0 weights at 512 (same speed)."""
    if model_dir is not None:
        model, _ = load_model(model_dir)
        return model, str(model_dir)
    fixture = shared / "fixtures" / "deeplasia" / "new_b0_512_sexhead.ckpt"
    if fixture.is_file():
        target = Path(tempfile.mkdtemp()) / "fixture-model"
        import_deeplasia(fixture, target)
        return load_model(target)[0], "Deeplasia fixture new_b0_512_sexhead (random weights)"
    return Bone2GeneModel(ModelConfig(input_size=512)).eval(), "random tf_efficientnet_b0 weights at 512"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--workers", type=int, default=1, help="decode workers for batch embedding")
    parser.add_argument("--shared", type=Path, required=True, help="the folder holding real_hands and fixtures/deeplasia")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "model.md")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    model, model_name = load_benchmark_model(args.model, args.shared)
    model = model.to(device)
    size = model.config.input_size
    threads = torch.get_num_threads()
    real = args.shared / "real_hands"
    images = sorted(real.glob("*.png"))
    if not images:
        raise SystemExit(f"no PNG radiographs in {real}")

    x1, x8 = torch.randn(1, 1, size, size, device=device), torch.randn(8, 1, size, size, device=device)
    with torch.inference_mode():
        reference = model.backbone(x8)
    backbone_cl = Bone2GeneModel(model.config).eval()
    backbone_cl.load_state_dict(model.encoder_state_dict())
    backbone_cl = backbone_cl.backbone.to(device, memory_format=torch.channels_last)
    with torch.inference_mode():
        channels_last_ok = torch.allclose(backbone_cl(x8.to(memory_format=torch.channels_last)), reference, atol=1e-4, rtol=1e-5)

    # torch.compile (first call is slow, then reused) and bf16 autocast: kept only within tolerance
    compiled = torch.compile(model.backbone)
    start = time.perf_counter()
    with torch.inference_mode():
        compiled_out = compiled(x8)
    sync()
    compile_seconds = time.perf_counter() - start
    compile_ok = torch.allclose(compiled_out, reference, atol=1e-4, rtol=1e-5)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
        bf16_out = model.backbone(x8).float()
    bf16_error = float((bf16_out - reference).abs().max() / reference.abs().max())

    def copy_of(source: Bone2GeneModel) -> Bone2GeneModel:
        """Analyzers convert their model's layout in place: each gets its own copy."""
        return copy.deepcopy(source).eval().to(device)  # the age and sex reader, when attached, with it

    bare = AnalysisOptions(hand=None)  # the encoder's pipeline; measuring the hand is scripts/bench_landmarks.py's question
    analyzers = {
        "analyze": Analyzer(copy_of(model), bare, device=device),
        "analyze_contiguous": Analyzer(copy_of(model), bare, device=device, channels_last=False),
    }
    stages: dict[str, list[float]] = {}
    paired: dict[str, list[float]] = {}
    xc1, xc8 = x1.to(memory_format=torch.channels_last), x8.to(memory_format=torch.channels_last)
    rows: dict[str, float] = {}
    for _ in range(2):  # interleave the measurements twice; keep the better of each
        with torch.inference_mode():
            rows["bare1"] = min(rows.get("bare1", 1e9), timed(lambda: model.backbone(x1), args.repeats, sync))
            rows["bare8"] = min(rows.get("bare8", 1e9), timed(lambda: model.backbone(x8), max(3, args.repeats // 3), sync) / 8)
            if channels_last_ok:
                rows["cl1"] = min(rows.get("cl1", 1e9), timed(lambda: backbone_cl(xc1), args.repeats, sync))
                rows["cl8"] = min(rows.get("cl8", 1e9), timed(lambda: backbone_cl(xc8), max(3, args.repeats // 3), sync) / 8)
            rows["compiled1"] = min(rows.get("compiled1", 1e9), timed(lambda: compiled(x1), args.repeats, sync))
            with torch.autocast(device.type, dtype=torch.bfloat16):
                rows["bf16_1"] = min(rows.get("bf16_1", 1e9), timed(lambda: model.backbone(x1), args.repeats, sync))
        for key, analyzer in analyzers.items():
            per_image = [timed(lambda p=p, a=analyzer: a.analyze(p, sex="F"), 2, sync) for p in images]
            rows[key] = min(rows.get(key, 1e9), statistics.median(per_image))
        for p in images:
            for stage, value in analyzers["analyze"].analyze(p, sex="F").timings_ms.items():
                stages.setdefault(stage, []).append(value)
            # paired: each analysis right after the bare forward of the analyzer's own model
            # (same weights, same layout), so slow drifts of a shared machine cancel out
            for key, analyzer in analyzers.items():
                for _ in range(3):
                    with torch.inference_mode():
                        bare = timed(lambda a=analyzer: a.model.backbone(x1), 1, sync)
                    full = timed(lambda p=p, a=analyzer: a.analyze(p, sex="F"), 1, sync)
                    paired.setdefault(key, []).append(full / bare)
        items = [BatchItem(p, "F") for p in images] * (8 if cuda else 4)
        for key, channels_last in (("batch", True), ("batch_contiguous", False)):
            layout = torch.channels_last if channels_last else torch.contiguous_format
            model.to(memory_format=layout)  # Module.to converts in place; embed_many does the same
            with torch.inference_mode():  # paired baseline: the bare batched forward of this very model and layout
                bare8 = timed(lambda m=layout: model.backbone(x8.contiguous(memory_format=m)), 3, sync) / 8
            start = time.perf_counter()
            embed_many(model, items, batch_size=8, workers=args.workers, device=device, channels_last=channels_last)
            sync()
            per_image = (time.perf_counter() - start) / len(items)
            rows[key] = min(rows.get(key, 1e9), per_image)
            paired.setdefault(key, []).append(bare8 / per_image)
        model.to(memory_format=torch.contiguous_format)

    def ms(seconds: float) -> str:
        return f"{seconds * 1e3:.1f}"

    machine = (
        f"{torch.cuda.get_device_name(device)} + {os.cpu_count()} CPU cores"
        if cuda
        else f"{os.cpu_count()} CPU cores ({platform.machine()})"
    )
    lines = [
        "# Encoder speed against its budgets",
        "",
        f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        "",
        (
            f"Machine: {machine}, torch {torch.__version__}, {threads} CPU threads; "
            f"{model.config.backbone_name} at {size} px ({model_name}); images: {len(images)} real radiographs "
            f"(../shared/real_hands), decoded by {args.workers} worker(s) for batch embedding. Medians, best of two interleaved passes."
        ),
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
    same_layout = {
        "channels-last (the default)": statistics.median(paired["analyze"]),
        "contiguous": statistics.median(paired["analyze_contiguous"]),
    }
    stage_ms = {stage: statistics.median(values) for stage, values in stages.items()}
    batch_ratio = rows["bare8"] / rows["batch"]
    batch_ratio_same_layout = rows.get("cl8", rows["bare8"]) / rows["batch"]
    batch_paired = max(paired["batch"])
    lines += [
        f"| full `analyze` (read, mask, gate, preprocess, model), channels-last: the default | {ms(rows['analyze'])} | {analyze_ratio:.2f} |",
        f"| full `analyze`, contiguous | {ms(rows['analyze_contiguous'])} | {rows['analyze_contiguous'] / rows['bare1']:.2f} |",
        f"| batch embedding (`embed_many`, batch 8, channels-last: the default) | {ms(rows['batch'])} | {rows['batch'] / rows['bare1']:.2f} |",
        f"| batch embedding (`embed_many`, batch 8, contiguous) | {ms(rows['batch_contiguous'])} | {rows['batch_contiguous'] / rows['bare1']:.2f} |",
        "",
        (
            f"Budget: full analysis <= 1.25x bare forward: **{'met' if same_layout['channels-last (the default)'] <= 1.25 else 'not met'}**. "
            f"Each analysis is paired with the bare batch-1 forward of the analyzer's own model and layout, measured just before it "
            f"(median of {len(paired['analyze'])} pairs), so that drifts of this shared machine cancel: "
            + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in same_layout.items())
            + f". Against the baseline row, measured minutes apart: {analyze_ratio:.2f}x."
        ),
        "",
        (
            f"Budget: batch throughput >= 0.9x bare batched forward: **{'met' if batch_paired >= 0.9 else 'not met'}**. "
            f"Paired the same way (bare batch-8 forward of the same model and layout just before each run of `embed_many` "
            f"over {len(items)} images; best pass): channels-last (the default) {batch_paired:.2f}x, contiguous "
            f"{max(paired['batch_contiguous']):.2f}x. Against the table's rows: {batch_ratio:.2f}x the contiguous and "
            f"{batch_ratio_same_layout:.2f}x the channels-last batched forward."
        ),
    ]
    lines += [
        "",
        "Where the default `analyze` spends its time (median ms per real radiograph, from its own timings):",
        "",
        "| " + " | ".join(stage_ms) + " |",
        "| " + " | ".join("---:" for _ in stage_ms) + " |",
        "| " + " | ".join(f"{v:.1f}" for v in stage_ms.values()) + " |",
    ]
    before_model = sum(v for stage, v in stage_ms.items() if stage not in ("model", "total"))
    if "model" in stage_ms:
        lines += [
            "",
            f"The stages before the model take {before_model:.0f} ms per image, {before_model / stage_ms['model']:.2f}x the model "
            f"stage. With {threads} torch threads on {os.cpu_count()} cores the forward already keeps every core busy, so this "
            "work adds to the forward instead of overlapping with it; that sets the floor of both ratios here.",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
