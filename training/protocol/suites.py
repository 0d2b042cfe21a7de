"""The evaluation suites `bone2gene evaluate --suite NAME` runs, each written where `--out` says.

- `protocol`: GestaltMatcher-Arc's four settings against baselines, bone age, sex, probabilities
  (`run`, `report`): a folder of report.md, evaluation.json, figures and embeddings;
- `unseen`: syndromes the model never saw, added to galleries with 1, 3 and 5 cases (`unseen`);
- `real`: real radiographs (`training.real_eval`): bone age and sex on the RSNA validation films
  and the full-resolution ones, real controls against phantom galleries, latency.
- `evidence`: image, HPO terms, exome genes and the measured hand's profile, alone and combined
  (`evidence_eval`), the combinations fitted on `--fit-manifest`'s cohort and reported on
  `--manifest`'s; with `--real-films`, real unaffected hands against the typical profiles (`real_controls`);
- `space`: the feature space's separation, probability quality and spread (`space`), for the
  model and, with `--baseline-model`, another model of the same films;
- `landmarks`: a landmark model (`--model`) on the real films of `--real-films` it never trained
  on (`landmark_eval`): held-out atlas films and the full-resolution RSNA films, their profiles
  against the bundled norms, and with `--manifest` (a phantom cohort) the phantoms against their specs;
- `realism`: real films against `--manifest`'s cohort (phantoms, warped real hands): a small CNN's
  held-out AUC (`realism`).
Every suite but `protocol` writes report.md and report.json in a folder, or a `.md` file and its `.json`
beside it.

Every suite embeds films the way the product does (`matcher.batch.read_batch`: the age and sex
reader, mirror averaging), splits by patient with `splits`, and writes tables with `markdown`.
Adding a suite is one entry in `SUITES`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from training.protocol.options import EvaluationConfig
from training.protocol.splits import EvaluationError

Progress = Callable[[int, int], None] | None


def _protocol(options: EvaluationConfig, command: str, progress: Progress) -> list[str]:
    from training.protocol.report import write_report
    from training.protocol.run import evaluate

    result = evaluate(options, progress)
    report = write_report(result, options.out, command)
    groups = result.groups
    lines = [f"{result.films} films ({len(result.refused)} refused), {len(groups.frequent)} frequent and {len(groups.rare)} rare disorders"]
    for setting, values in result.topk.get("model", {}).items():
        top1, top5 = (100 * sum(values[k]) / len(values[k]) for k in ("top1", "top5"))
        lines.append(f"  {setting:7s} top-1 {top1:5.1f}%  top-5 {top5:5.1f}%")
    return [*lines, f"report: {report}"]


def _unseen(options: EvaluationConfig, command: str, progress: Progress) -> list[str]:
    from training.protocol.unseen import unseen_report

    markdown, data = unseen_report(
        options.model, options.needs_manifest("unseen"), options.draws, options.seed, options.device, options.workers
    )
    report = _write(options.out, markdown.replace("\n\n", f"\n\nCommand: `{command}`\n\n", 1), {"command": command, **data})
    return [f"{data['accepted']} films, unseen disorders {', '.join(data['held_out'])}", f"report: {report}"]


def _real(options: EvaluationConfig, command: str, progress: Progress) -> list[str]:
    from training.real_eval import evaluate_real, model_markdown

    if options.real_films is None or not (options.real_films / "rsna_100px").is_dir():
        raise EvaluationError("the real suite needs --real-films: a folder holding rsna_100px, real_hands_labelled and real_hands")
    data = {"command": command, **evaluate_real(options.real_films, options.model, options.baseline, options.renderer)}
    report = _write(
        options.out, "\n".join([f"# Real radiographs: {options.model}", "", f"Command: `{command}`", "", *model_markdown(data)]), data
    )
    validation = data["rsna_validation"]
    return [
        f"bone age on {validation['accepted']} RSNA validation films: MAD {validation['bone_age_mad_months']} months",
        f"report: {report}",
    ]


def _evidence(options: EvaluationConfig, command: str, progress: Progress) -> list[str]:
    from training.protocol.evidence_eval import evidence_report

    if options.fit_manifest is None:
        raise EvaluationError("the evidence suite needs --fit-manifest: another cohort, to fit the combinations of evidence on")
    test = options.needs_manifest("evidence")
    markdown, data = evidence_report(
        options.model, options.fit_manifest, test, options.draws, options.seed, options.device, options.workers, options.real_films
    )
    report = _write(options.out, markdown.replace("\n\n", f"\n\nCommand: `{command}`\n\n", 1), {"command": command, **data})
    return [f"{data['films']} test films, combinations fitted on {options.fit_manifest}", f"report: {report}"]


def _space(options: EvaluationConfig, command: str, progress: Progress) -> list[str]:
    from training.protocol.space import space_report

    markdown, data = space_report(options)
    report = _write(options.out, markdown.replace("\n\n", f"\n\nCommand: `{command}`\n\n", 1), {"command": command, **data})
    lines = [f"{name}: F->F+R top-1 {100 * row['frequent_top1']:.1f}%, AUROC {row['auroc']:.3f}" for name, row in data["rows"].items()]
    return [*lines, f"report: {report}"]


def _landmarks(options: EvaluationConfig, command: str, progress: Progress) -> list[str]:
    from training.protocol.landmark_eval import landmark_report

    if options.real_films is None or not (options.real_films / "dha" / "labels.csv").is_file():
        raise EvaluationError("the landmarks suite needs --real-films: a folder holding dha (and rsna_100px, real_hands_labelled)")
    markdown, data = landmark_report(options.model, options.real_films, options.manifest)
    report = _write(options.out, markdown.replace("\n\n", f"\n\nCommand: `{command}`\n\n", 1), {"command": command, **data})
    atlas = data["atlas_held_out"]
    return [
        f"{atlas['films']} held-out atlas films: median {atlas['median_px_1024']} px, p95 {atlas['p95_px_1024']} px at 1024 px height",
        f"report: {report}",
    ]


def _write(out: Path | None, markdown: str, data: dict) -> Path:
    """The report's Markdown and its numbers as JSON (`_report_paths`); returns the Markdown's path."""
    if out is None:
        raise EvaluationError("say where the report goes (--out: a folder, or a .md file)")
    report, numbers = _report_paths(out)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(markdown + "\n")
    numbers.write_text(json.dumps(data, indent=1, default=str) + "\n")
    return report


def _report_paths(out: Path) -> tuple[Path, Path]:
    """`out` as a Markdown file (its JSON beside it) or as a folder (report.md, report.json)."""
    if out.suffix == ".md":
        return out, out.with_suffix(".json")
    return out / "report.md", out / "report.json"


def _realism(options: EvaluationConfig, command: str, progress: Progress) -> list[str]:
    from training.protocol.realism import realism_report

    if options.real_films is None or not (options.real_films / "dha" / "labels.csv").is_file():
        raise EvaluationError("the realism suite needs --real-films: a folder holding dha and rsna_100px")
    markdown, data = realism_report(options.real_films, options.needs_manifest("realism"), seed=options.seed, model_dir=options.model)
    report = _write(options.out, markdown.replace("\n\n", f"\n\nCommand: `{command}`\n\n", 1), {"command": command, **data})
    return [f"real against {data['cohort']}: held-out AUC {data['auc']} ({data['interval'][0]}-{data['interval'][1]})", f"report: {report}"]


@dataclass(frozen=True)
class Suite:
    name: str
    summary: str
    run: Callable[[EvaluationConfig, str, Progress], list[str]]  # writes the report; returns lines for the terminal


SUITES = {
    suite.name: suite
    for suite in (
        Suite("protocol", "GestaltMatcher-Arc's four settings against baselines, bone age, sex, probabilities", _protocol),
        Suite("unseen", "syndromes never trained on, added to galleries with 1, 3 and 5 cases", _unseen),
        Suite("real", "real radiographs: bone age, sex, real controls against phantoms, latency", _real),
        Suite("evidence", "image, HPO terms, candidate genes and the measured hand, each alone and combined", _evidence),
        Suite("space", "the feature space: separation, probability quality and spread, beside another model", _space),
        Suite("landmarks", "a hand landmark model on real films it never trained on", _landmarks),
        Suite("realism", "can a small network tell a cohort's films from real ones (held-out AUC)", _realism),
    )
}
