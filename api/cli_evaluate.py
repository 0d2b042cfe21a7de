"""`bone2gene evaluate --suite NAME`: a model measured by one of the evaluation suites."""

from __future__ import annotations

import shlex
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from api.cli_helpers import RuleOpt, fail
from matcher.progress import progress_bar
from matcher.rank import DEFAULT_RULE


class SuiteName(StrEnum):  # training.protocol.suites.SUITES (kept here so that --help answers without torch)
    protocol = "protocol"
    unseen = "unseen"
    real = "real"
    evidence = "evidence"
    space = "space"
    landmarks = "landmarks"
    realism = "realism"


def evaluate_command(
    model: Annotated[
        Path,
        typer.Option(
            "--model",
            help="Model directory to evaluate (landmarks: a landmark model's; realism: the space the films are also compared in).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Where the report goes: a folder (protocol), a folder or a .md file (the others).")],
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest", help="Case manifest CSV (DESIGN.md section 2) with diagnoses and patient ids (protocol, unseen, evidence, space)."
        ),
    ] = None,
    suite: Annotated[
        SuiteName,
        typer.Option(
            "--suite",
            help="protocol: the four settings against baselines; unseen: syndromes never trained on; real: real films; evidence: image, terms, genes; space: separation and spread; landmarks: a landmark model on real films; realism: real films against a cohort.",
        ),
    ] = SuiteName.protocol,
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
    real_films: Annotated[
        Path | None,
        typer.Option("--real-films", help="real, landmarks: the folder holding rsna_100px, real_hands_labelled, real_hands (and dha)."),
    ] = None,
    baseline_model: Annotated[
        Path | None,
        typer.Option("--baseline-model", help="real: an earlier model for a paired latency run; space: another model's space beside."),
    ] = None,
    fit_manifest: Annotated[
        Path | None, typer.Option("--fit-manifest", help="evidence: another cohort, to fit the combinations of evidence on.")
    ] = None,
    renderer: Annotated[str, typer.Option("--renderer", help="real: the phantom galleries' renderer (classic, film).")] = "classic",
) -> None:
    """Measure a model with an evaluation suite. protocol (the default): rank disorders for held-out
    patients in the four settings (F->F, R->R, F->F+R, R->F+R) against random ranking, an untrained
    encoder, bone-age features, a softmax classifier and pixel thumbnails; bone age per disorder, sex,
    probability quality, "no close match" rates. unseen: the model's held-out disorders added to
    galleries with 1, 3 and 5 cases, without retraining. real: bone age and sex on real films, real
    controls against phantom galleries, latency. evidence: image, HPO terms and exome genes, alone
    and combined, fitted on --fit-manifest's cohort. space: how the feature space separates
    disorders and how spread it is, beside --baseline-model's. landmarks: a hand landmark model's
    errors on real films it never trained on."""
    from training.protocol.options import EvaluationConfig
    from training.protocol.suites import SUITES

    paths = {"--model": model, "--manifest": manifest, "--features-model": features_model, "--real-films": real_films}
    _refuse_bad_inputs({**paths, "--baseline-model": baseline_model, "--fit-manifest": fit_manifest}, renderer)
    options = EvaluationConfig(
        model=model, manifest=manifest, out=out, features_model=features_model, deeplasia_parameters=deeplasia_parameters,
        trust_pickle=trust_pickle, draws=draws, gallery_fraction=gallery_fraction, rule=rule, seed=seed, device=device,
        workers=workers, real_films=real_films, baseline=baseline_model, fit_manifest=fit_manifest,
        renderer=renderer,
    )  # fmt: skip
    command = "bone2gene evaluate " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    with progress_bar("reading films", unit="film") as progress:
        lines = SUITES[suite.value].run(options, command, progress)
    typer.echo("\n".join(lines))


def _refuse_bad_inputs(paths: dict[str, Path | None], renderer: str) -> None:
    """Every given path must exist and the renderer be known, before a suite spends minutes reading films."""
    from training.synth.xray import RENDERERS

    if renderer not in RENDERERS:
        fail(f"--renderer {renderer!r} is not a renderer; choose one of {', '.join(RENDERERS)}")
    for option, path in paths.items():
        if path is not None and not path.exists():
            fail(f"{option} {path} does not exist")
