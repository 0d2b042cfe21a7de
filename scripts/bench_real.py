"""Real radiographs: the gate, bone age, sex, the feature space and latency.

    python scripts/bench_real.py gate   --shared ../shared [--workers 2]   -> benchmarks/real_gate.json
    python scripts/bench_real.py gate --shared ../shared --refresh-refused -> the same, its refusals' reasons re-read
    python scripts/bench_real.py model  --shared ../shared [--model DIR]   -> benchmarks/real_model.json
    python scripts/bench_real.py report                                      -> benchmarks/real.md

`gate` runs the hand mask and the quality gate on every real image in ../shared (the RSNA
100-px films, the 14 labelled full-resolution films, the 10 unlabelled ones) and lists
every refusal with its reason (about 45 minutes on two cores). `--refresh-refused` re-reads only
the stored refusals, after a change to the wording or to what the gate reconsiders: the gate
asks the landmarks only about films the hand mask refuses (`matcher.quality`), so a change there
can turn refusals into acceptances but never the reverse; those are counted as accepted and named.
`model` measures the bundled (or given) model on films it was never trained on: the harness's
`real` suite (`bone2gene evaluate --suite real` gives any model the same figures). `report`
writes the Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


BENCH = REPO / "benchmarks"


def _gate_one(path: str) -> dict:
    from matcher.io import read_radiograph
    from matcher.mask import segment_hand
    from matcher.quality import assess_quality

    radiograph = read_radiograph(Path(path))
    hand = segment_hand(radiograph.pixels)
    verdict = assess_quality(radiograph, hand)
    return {
        "path": path,
        "accepted": verdict.accepted,
        "codes": verdict.codes,
        "reasons": verdict.reasons,
        "warnings": len(verdict.warnings),
        "mask": hand.method,
    }


def real_images(shared: Path) -> dict[str, list[Path]]:
    return {
        "rsna_100px": sorted((shared / "rsna_100px" / "images").glob("*.png"), key=lambda p: int(p.stem)),
        "real_hands_labelled": sorted((shared / "real_hands_labelled").glob("*.png")),
        "real_hands": sorted((shared / "real_hands").glob("*.png")),
    }


def run_gate(shared: Path, workers: int) -> dict:
    started = time.perf_counter()
    folders = real_images(shared)
    results: dict[str, dict] = {}
    with ProcessPoolExecutor(workers) as pool:
        for folder, paths in folders.items():
            rows = list(pool.map(_gate_one, [str(p) for p in paths], chunksize=64))
            results[folder] = {
                "images": len(rows),
                "accepted": sum(r["accepted"] for r in rows),
                "rotation_warnings": sum(r["warnings"] > 0 for r in rows),
                "mask_fallbacks": sum(r["mask"] != "network" for r in rows),
                "refused": [
                    {"image": str(Path(r["path"]).relative_to(shared)), "codes": r["codes"], "reasons": r["reasons"]}
                    for r in rows
                    if not r["accepted"]
                ],
            }
    return {"folders": results, "seconds": round(time.perf_counter() - started, 1)}


def refresh_refusals(gate: dict, shared: Path) -> dict:
    """`gate` with each stored refusal read again: its codes and reasons renewed, or, where the
    gate now accepts it, counted as accepted and named (see the module's note)."""
    for folder in gate["folders"].values():
        still = []
        for refusal in folder["refused"]:
            again = _gate_one(str(shared / refusal["image"]))
            if again["accepted"]:
                folder["accepted"] += 1
                folder["rotation_warnings"] += again["warnings"] > 0
                gate.setdefault("accepted_on_refresh", []).append(refusal["image"])
                continue
            refusal.update(codes=again["codes"], reasons=again["reasons"])
            still.append(refusal)
        folder["refused"] = still
    gate["refusals_refreshed"] = time.strftime("%Y-%m-%d")
    return gate


def gate_markdown(gate: dict) -> list[str]:
    total = sum(f["images"] for f in gate["folders"].values())
    accepted = sum(f["accepted"] for f in gate["folders"].values())
    lines = [
        "## Quality gate on every real image",
        "",
        "| folder | images | accepted | share | rotated (warned) | mask fell back |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, f in gate["folders"].items():
        lines.append(
            f"| {name} | {f['images']} | {f['accepted']} | {f['accepted'] / max(1, f['images']):.2%} | {f['rotation_warnings']} | {f['mask_fallbacks']} |"
        )
    lines += [f"| all | {total} | {accepted} | {accepted / max(1, total):.2%} | | |", ""]
    if "refusals_refreshed" in gate:
        newly = gate.get("accepted_on_refresh", [])
        lines += [
            f"The refusals were re-read on {gate['refusals_refreshed']} (`python scripts/bench_real.py gate --refresh-refused`): "
            + (
                f"{len(newly)} now accepted ({', '.join(f'`{n}`' for n in newly)}); the others still refused."
                if newly
                else "every refused image is still refused."
            ),
            "",
        ]
    lines += ["Every refusal:", ""]
    for f in gate["folders"].values():
        lines += [f"- `{r['image']}`: {', '.join(r['codes'])}: {' / '.join(r['reasons'])}" for r in f["refused"]]
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["gate", "model", "report"])
    parser.add_argument("--shared", type=Path, help="gate, model: the folder holding rsna_100px, real_hands_labelled and real_hands")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--baseline", type=Path, default=None, help="model: a previous model for a paired latency run")
    parser.add_argument("--out", type=Path, default=None, help="model: where the JSON goes (default benchmarks/real_model.json)")
    parser.add_argument(
        "--before",
        type=Path,
        default=BENCH / "real_model_before.json",
        help="report: an earlier model's figures (the bundled encoder before its age and sex reader), shown beside the measured model's",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--refresh-refused", action="store_true", help="gate: re-read the stored refusals' reasons only")
    args = parser.parse_args()
    if args.part != "report" and args.shared is None:
        parser.error(f"{args.part} reads real films: say where with --shared (e.g. ../shared)")
    if args.part == "gate":
        stored = BENCH / "real_gate.json"
        if args.refresh_refused and not stored.is_file():
            parser.error(f"--refresh-refused needs an earlier full run ({stored}); run `gate` without it first")
        result = (
            refresh_refusals(json.loads(stored.read_text()), args.shared) if args.refresh_refused else run_gate(args.shared, args.workers)
        )
        stored.write_text(json.dumps(result, indent=1))
    elif args.part == "model":  # the numbers of the harness's real suite, where `report` reads them
        from matcher.checkpoint import BUNDLED_MODEL_DIR
        from training.real_eval import evaluate_real

        command = "python scripts/bench_real.py " + " ".join(sys.argv[1:])
        result = {"command": command, **evaluate_real(args.shared, args.model or BUNDLED_MODEL_DIR, args.baseline)}
        (args.out or BENCH / "real_model.json").write_text(json.dumps(result, indent=1))
    else:
        from training.real_eval import model_markdown

        gate_file = BENCH / "real_gate.json"
        gate = json.loads(gate_file.read_text()) if gate_file.is_file() else None
        model = json.loads((BENCH / "real_model.json").read_text()) if (BENCH / "real_model.json").is_file() else None
        lines = [
            "# Real radiographs",
            "",
            "Commands: `python scripts/bench_real.py gate`, "
            f"`{(model or {}).get('command', 'python scripts/bench_real.py model')}`, "
            "`python scripts/bench_real.py report` (this file).",
            "",
        ]
        lines += (
            gate_markdown(gate)
            if gate
            else ["## Quality gate on every real image", "", "Not run yet: `python scripts/bench_real.py gate`.", ""]
        )
        lines += model_markdown(model) if model else []
        if args.before.is_file():
            before = json.loads(args.before.read_text())
            lines += [
                "# Beside it: the bundled encoder alone, before its age and sex reader (synthetic training only, 256 px), same code and films",
                "",
            ]
            lines += [f"Command: `{before['command']}`", ""] if "command" in before else []
            lines += model_markdown(before)
        (BENCH / "real.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
