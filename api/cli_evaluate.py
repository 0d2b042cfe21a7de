"""`bone2gene evaluate`: GestaltMatcher-Arc's protocol for a model against its baselines."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from api.cli_helpers import RuleOpt, fail, progress_bar
from matcher.rank import DEFAULT_RULE


def evaluate_command(
    model: Annotated[Path, typer.Option("--model", help="Model directory to evaluate.")],
    manifest: Annotated[Path, typer.Option("--manifest", help="Case manifest CSV (DESIGN.md section 2) with diagnoses and patient ids.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md, evaluation.json and the figures.")],
    features_model: Annotated[
        Path | None,
        typer.Option(
            "--features-model", help="Bone-age model for the 'bone-age features' baseline: a Deeplasia checkpoint or one of our model dirs."
        ),
    ] = None,
    deeplasia_parameters: Annotated[
        Path | None, typer.Option("--deeplasia-parameters", help="Deeplasia's parameters.yml, for a legacy checkpoint.")
    ] = None,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Allow a Deeplasia checkpoint that needs full unpickling (trusted source only).")
    ] = False,
    draws: Annotated[int, typer.Option("--draws", min=1, help="Random gallery/test splits by patient.")] = 10,
    gallery_fraction: Annotated[
        float, typer.Option("--gallery-fraction", min=0.05, max=0.95, help="Share of each disorder's patients in the gallery.")
    ] = 0.5,
    rule: RuleOpt = DEFAULT_RULE,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1 ... (default: auto).")] = "auto",
    workers: Annotated[int, typer.Option("--workers", min=0, help="Processes reading and gating films.")] = 0,
) -> None:
    """Rank disorders for held-out patients in the four settings (F->F, R->R, F->F+R, R->F+R) and compare
    the model with random ranking, an untrained encoder, bone-age features, a softmax classifier and
    pixel thumbnails. Also: bone age per disorder, sex, probability quality, "no close match" rates."""
    from training.protocol.report import write_report
    from training.protocol.run import EvaluationConfig, evaluate

    for path, option in ((model, "--model"), (manifest, "--manifest"), (features_model, "--features-model")):
        if path is not None and not path.exists():
            fail(f"{option} {path} does not exist")
    config = EvaluationConfig(
        model, manifest, features_model, deeplasia_parameters, trust_pickle, draws, gallery_fraction, rule, seed, device, workers
    )
    with progress_bar("reading films", unit="film") as progress:
        result = evaluate(config, progress)
    command = "bone2gene evaluate " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    report = write_report(result, out, command)
    typer.echo(
        f"{result.films} films ({len(result.refused)} refused), {len(result.groups.frequent)} frequent and {len(result.groups.rare)} rare disorders"
    )
    for setting, values in result.topk.get("model", {}).items():
        typer.echo(
            f"  {setting:7s} top-1 {100 * sum(values['top1']) / len(values['top1']):5.1f}%  top-5 {100 * sum(values['top5']) / len(values['top5']):5.1f}%"
        )
    typer.echo(f"report: {report}")
