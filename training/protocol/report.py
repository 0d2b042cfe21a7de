"""An evaluation written out: `report.md` (tables), `cmc.png` and `similarities.png`
(figures), `evaluation.json` (every number, so reports can be compared by a program) and
`embeddings.npz` (the model's embedding of every film that passed the gate, with its case id)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from matcher.age_bands import AGE_BANDS
from training.protocol.markdown import number, percent, table
from training.protocol.metrics import KS
from training.protocol.run import MODEL, EvaluationResult
from training.protocol.splits import SETTINGS


def _settings_section(result: EvaluationResult) -> list[str]:
    lines = []
    for setting in SETTINGS:
        rows = []
        for method, per_setting in result.topk.items():
            if setting in per_setting:
                cross = result.accuracy_calculator.get(method, {}).get(setting, {})
                rows.append(
                    [
                        method,
                        *(percent(per_setting[setting][f"top{k}"]) for k in KS),
                        number(cross.get("precision_at_1")),
                        number(cross.get("map_at_r")),
                    ]
                )
        if not rows:
            lines += [f"### {setting}", "", "No queries in this setting (no disorders of that kind with two patients).", ""]
            continue
        header = ["method", *(f"top-{k}" for k in KS), "P@1 (cases)", "MAP@R"]
        queries, disorders = result.queries.get(setting, 0), result.disorders_in_gallery.get(setting, 0)
        lines += [
            f"### {setting}",
            "",
            f"{queries:.0f} queries per draw; {disorders:.0f} disorders in the gallery.",
            "",
            *table(header, rows),
            "",
        ]
    return lines


def _probability_section(result: EvaluationResult) -> list[str]:
    lines = ['## Probabilities and "no close match" (the model)', ""]
    for setting, quality in result.probabilities.items():
        lines += [
            f"{setting}: AUROC of the top disorder's probability for right vs wrong top-1 answers **{number(quality['auroc'])}** "
            f"over {quality['answers']} answers; expected calibration error {number(quality['expected_calibration_error'])}.",
            "",
        ]
        rows = [[r["bin"], r["answers"], number(r["mean_probability"]), number(r["right"])] for r in quality["reliability"]]
        lines += [*table(["probability", "answers", "mean probability", "share right"], rows), ""]
    if result.no_match:
        nm = result.no_match
        lines += [
            f'"No close match" fires for {percent([nm["fires_when_absent"]])}% of rare queries against a gallery without their disorder, '
            f"stays off for {percent([nm['off_when_right']])}% of right top-1 answers and {percent([nm['off_when_present']])}% of all queries "
            "whose disorder is in the gallery (F+R settings).",
            "",
        ]
        if "confident_when_absent" in nm:
            lines += [
                f"Rare queries against a gallery without their disorder get some disorder at probability >= 0.5 in "
                f"{percent([nm['confident_when_absent']])}% of cases given presence, {percent([nm['confident_when_absent_reported']])}% "
                "as the service reports it (times the probability that the disorder is in the gallery).",
                "",
            ]
    return lines


def _clinical_section(result: EvaluationResult) -> list[str]:
    lines = ["## Top-5 of the model by age at the film", ""]
    bands = sorted({band for per in result.age_bands.values() for band in per}, key=[band.name for band in AGE_BANDS].index)
    rows = [
        [setting, *(f"{100 * per[b][0]:.1f} ({per[b][1]})" if b in per else "-" for b in bands)]
        for setting, per in result.age_bands.items()
    ]
    lines += [*table(["setting", *bands], rows), "", "(queries pooled over draws in brackets)", ""]
    lines += [
        "## Bone age and sex, as `analyze` reads them",
        "",
        "From the model's age and sex reader where it has one (each network mirror-averaged where its config says), "
        "the same outputs a user gets for these films.",
        "",
    ]
    rows = [[r.disorder, r.films, number(r.mad_months, 1)] for r in result.bone_age.itertuples()]
    lines += [*table(["disorder", "films with bone age", "MAD (months)"], rows), ""]
    s = result.sex
    lines += [f"Sex from the film: accuracy {number(s['accuracy'])}, AUROC {number(s['auroc'])} over {s['films']} films.", ""]
    if result.features_model_bone_age_mad is not None:
        lines += [
            f"The bone-age features baseline's own bone age: MAD {number(result.features_model_bone_age_mad, 1)} months over the same films.",
            "",
        ]
    return lines


def markdown(result: EvaluationResult, command: str, figures: dict[str, str]) -> str:
    c, g = result.config, result.groups
    lines = [
        "# Evaluation (GestaltMatcher-Arc protocol)",
        "",
        f"Command: `{command}`",
        "",
        f"Model {result.model_fingerprint[:12]}; manifest {c.manifest.name}: {result.films} films passed the quality gate "
        f"({len(result.refused)} refused). Ranking rule: {c.rule.value}. {c.draws} random gallery/test draws by patient "
        f"(gallery fraction {c.gallery_fraction}), seed {c.seed}; top-k is macro-averaged over disorders, mean ± SD over draws.",
        "",
        f"Frequent (trained) disorders: {len(g.frequent)}; rare (not trained): {len(g.rare)} ({', '.join(g.rare) or 'none'}); "
        f"too few patients to split: {', '.join(g.unsplittable) or 'none'}.",
        "",
        "Methods:",
        "",
        *(f"- **{name}**: {about}" for name, about in result.methods.items()),
        "",
        "## Disorder ranking in the four settings",
        "",
        *_settings_section(result),
    ]
    lines += [f"![{name}]({path})" for name, path in figures.items()] + [""]
    lines += _probability_section(result) + _clinical_section(result)
    return "\n".join(lines) + "\n"


def _figures(result: EvaluationResult, out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {}
    fig, axes = plt.subplots(1, len(SETTINGS), figsize=(4 * len(SETTINGS), 3.6), sharey=True)
    for ax, setting in zip(axes, SETTINGS, strict=True):
        for method, curves in result.cmc.items():
            if setting in curves:
                ax.plot(range(1, len(curves[setting]) + 1), curves[setting], label=method, lw=2 if method == MODEL else 1)
        depth = max(2, min(len(next(iter(result.cmc.values())).get(setting, [])), round(result.disorders_in_gallery.get(setting, 30))))
        ax.set(title=setting, xlabel="k", ylim=(0, 1), xlim=(1, depth))
    axes[0].set_ylabel("macro top-k")
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "cmc.png", dpi=110)
    plt.close(fig)
    figures["CMC curves"] = "cmc.png"
    if result.similarity_samples:
        names = list(result.similarity_samples)
        fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.2))
        for ax, name in zip(np.atleast_1d(axes), names, strict=True):
            sample = result.similarity_samples[name]
            ax.hist(sample["different"], bins=50, density=True, alpha=0.6, label="different disorder")
            ax.hist(sample["same"], bins=50, density=True, alpha=0.6, label="same disorder")
            ax.set(title=name, xlabel="cosine similarity (F->F+R, draw 0)")
        np.atleast_1d(axes)[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "similarities.png", dpi=110)
        plt.close(fig)
        figures["similarity distributions"] = "similarities.png"
    return figures


def to_json(result: EvaluationResult, command: str) -> dict:
    config = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result.config).items()}
    config["rule"] = result.config.rule.value
    return {
        "command": command,
        "config": config,
        "model_fingerprint": result.model_fingerprint,
        "films": result.films,
        "refused": result.refused,
        "groups": asdict(result.groups),
        "methods": result.methods,
        "topk": result.topk,
        "cmc": result.cmc,
        "accuracy_calculator": result.accuracy_calculator,
        "queries_per_draw": result.queries,
        "disorders_in_gallery": result.disorders_in_gallery,
        "age_bands_top5": result.age_bands,
        "probabilities": result.probabilities,
        "no_match": result.no_match,
        "bone_age": result.bone_age.to_dict(orient="records"),
        "sex": result.sex,
        "features_model_bone_age_mad": result.features_model_bone_age_mad,
    }


def _nan_as_null(value: object) -> object:
    """Strict JSON has no NaN: an undefined number (an AUROC with one class) becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_as_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_as_null(v) for v in value]
    return value


def write_report(result: EvaluationResult, out: Path, command: str) -> Path:
    """Write report.md, the figures and evaluation.json into `out`; returns the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(result, out)
    (out / "evaluation.json").write_text(json.dumps(_nan_as_null(to_json(result, command)), indent=1, allow_nan=False))
    if result.table is not None and result.embeddings is not None:
        np.savez_compressed(
            out / "embeddings.npz", case_id=np.asarray(result.table["case_id"].astype(str), dtype=str), embedding=result.embeddings
        )
    report = out / "report.md"
    report.write_text(markdown(result, command, figures))
    return report
