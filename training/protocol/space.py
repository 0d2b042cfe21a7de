"""The `space` suite: how well a model's feature space separates disorders, and how spread it is.

`score_space` takes ready-made vectors, so any two spaces of the same films compare (a model and
its head refitted under another loss, `trainer: embedding_head`). For each of `draws` patient splits: top-1 and
top-5 in F->F+R and R->F+R, the calibrated top-disorder probability's AUROC (right vs wrong,
pooled over both settings), "no close match" when the disorder is absent (rare queries against
the frequent gallery) and when the answer is right, and how spread the space is: the mean
cosine similarity of cases of the same and of different disorders.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from matcher.calibration import fit_calibration
from matcher.checkpoint import load_model
from matcher.manifest import read_case_manifest
from matcher.rank import DEFAULT_RULE, LabelIndex, RankingRule
from training.protocol import markdown, metrics
from training.protocol.encoders import embed_films
from training.protocol.options import EvaluationConfig
from training.protocol.scorers import EmbeddingScorer, rank_setting
from training.protocol.splits import EvaluationError, disorder_groups, random_draws


@dataclass
class SpaceScores:
    frequent_top1: float  # F->F+R, macro over disorders, mean over draws
    frequent_top5: float
    unseen_top1: float  # R->F+R
    unseen_top5: float
    auroc: float  # top disorder's calibrated probability, right vs wrong, both settings pooled
    auroc_frequent: float
    auroc_unseen: float
    no_match_fires_when_absent: float
    no_match_off_when_right: float
    same_disorder_cosine: float
    other_disorder_cosine: float

    def to_json(self) -> dict:
        return {k: round(v, 4) for k, v in asdict(self).items()}


def _mean_cosines(vectors: np.ndarray, disorders: np.ndarray, patients: np.ndarray) -> tuple[float, float]:
    sims = vectors @ vectors.T
    same = disorders[:, None] == disorders[None, :]
    other_patient = patients[:, None] != patients[None, :]
    return float(sims[same & other_patient].mean()), float(sims[~same].mean())


def _calibration(vectors: np.ndarray, disorders: np.ndarray, patients: np.ndarray, gallery: np.ndarray, seed: int, rule: RankingRule):
    # point estimates only: the bootstrap intervals are not scored here
    return fit_calibration(vectors[gallery], list(disorders[gallery]), list(patients[gallery]), seed=seed, rule=rule, bootstraps=0)


def score_space(
    vectors: np.ndarray, table: pd.DataFrame, trained_on: Iterable[str], draws: int = 10, seed: int = 0, rule: RankingRule = DEFAULT_RULE
) -> SpaceScores:
    """`vectors` unit rows aligned with `table` (columns disorder, patient_id; a 0..N-1 index)."""
    disorders = table["disorder"].astype(str).to_numpy()
    patients = table["patient_id"].astype(str).to_numpy()
    scorer = EmbeddingScorer(vectors, patients, rule)
    splits = random_draws(table, disorder_groups(table, list(trained_on)), draws, seed)
    top: dict[str, list[dict]] = {"F->F+R": [], "R->F+R": []}
    probability: dict[str, list[np.ndarray]] = {"F->F+R": [], "R->F+R": []}
    right: dict[str, list[np.ndarray]] = {"F->F+R": [], "R->F+R": []}
    absent_flags, right_off = [], []
    for draw in splits:
        gallery = draw.setting("F->F+R")[0]
        calibration = _calibration(vectors, disorders, patients, gallery, draw.number, rule)
        for setting in top:
            ranked = rank_setting(scorer, disorders, *draw.setting(setting))
            if not len(ranked.queries):
                continue
            top[setting].append(metrics.topk(ranked.ranks, ranked.codes))
            best = ranked.scores.argmax(axis=1)
            neighbourhood = scorer.neighbourhood(draw.setting(setting)[0], ranked.queries, ranked.labels)
            p = calibration.probability_matrix(neighbourhood)[np.arange(len(best)), best]
            probability[setting].append(p)
            right[setting].append(ranked.ranks == 1)
            right_off.append(~calibration.flags(neighbourhood)[ranked.ranks == 1])
        frequent = draw.frequent_gallery
        if len(draw.rare_test) and len(np.unique(disorders[frequent])) >= 2:
            absent = _calibration(vectors, disorders, patients, frequent, draw.number, rule)
            absent_flags.append(absent.flags(scorer.neighbourhood(frequent, draw.rare_test, LabelIndex.of(list(disorders[frequent])))))
    auroc = {s: metrics.probability_quality(np.concatenate(probability[s]), np.concatenate(right[s])).auroc for s in probability}
    pooled = metrics.probability_quality(
        np.concatenate([np.concatenate(v) for v in probability.values()]), np.concatenate([np.concatenate(v) for v in right.values()])
    ).auroc
    same, other = _mean_cosines(vectors, disorders, patients)
    mean_of = lambda setting, key: float(np.mean([d[key] for d in top[setting]]))  # noqa: E731
    return SpaceScores(
        mean_of("F->F+R", "top1"),
        mean_of("F->F+R", "top5"),
        mean_of("R->F+R", "top1"),
        mean_of("R->F+R", "top5"),
        pooled,
        auroc["F->F+R"],
        auroc["R->F+R"],
        float(np.mean(np.concatenate(absent_flags))) if absent_flags else float("nan"),
        float(np.mean(np.concatenate(right_off))),
        same,
        other,
    )


COLUMNS = (
    ("frequent_top1", "F->F+R top-1"),
    ("unseen_top1", "R->F+R top-1"),
    ("auroc", "AUROC pooled"),
    ("auroc_frequent", "AUROC F"),
    ("auroc_unseen", "AUROC R"),
    ("no_match_fires_when_absent", "no-match fires, absent"),
    ("no_match_off_when_right", "no-match off, right"),
    ("same_disorder_cosine", "cos same"),
    ("other_disorder_cosine", "cos other"),
)


def space_report(options: EvaluationConfig) -> tuple[str, dict]:
    """`score_space` for `options.model` (and `options.baseline`, an earlier model, where given) on
    the films of `options.manifest` with a diagnosis, each film embedded as the gallery embeds it;
    the frequent disorders are those the model was trained on."""
    table = read_case_manifest(options.needs_manifest("space"))
    table = table[table["disorder"].notna()].reset_index(drop=True)
    rows: dict[str, dict] = {}
    for model_dir in (options.model, options.baseline):
        if model_dir is None:
            continue
        model, card = load_model(model_dir)
        vectors, accepted = embed_films(model, table["path"], table["sex"], options.device, options.workers)
        kept = table[accepted].reset_index(drop=True)
        trained_on = [d for d in model.config.labels if d in set(kept["disorder"])]
        if not trained_on or set(trained_on) == set(kept["disorder"]):
            raise EvaluationError(
                f"{options.manifest} needs films of disorders {model_dir} was trained on and of others (held out), to score both settings"
            )
        scores = score_space(vectors, kept, trained_on, options.draws, options.seed, options.rule)
        name = f"{model_dir} ({card.fingerprint[:12]})"
        rows[name] = {"films": len(table), "accepted": len(kept), "frequent": len(trained_on), **scores.to_json()}
    about = {"manifest": str(options.manifest), "draws": options.draws, "seed": options.seed, "rule": options.rule.value}
    return _space_markdown(about, rows), {**about, "rows": rows}


def _space_markdown(about: dict, rows: dict[str, dict]) -> str:
    def cell(key: str, value: float) -> str:
        return markdown.number(100 * value, 1) if "top" in key or "no_match" in key else markdown.number(value)

    first = next(iter(rows.values()))
    lines = [
        "# The feature space: how it separates disorders and how spread it is",
        "",
        f"{about['manifest']}: {first['accepted']} of {first['films']} films passed the gate. Frequent disorders (F) are those "
        f"the model was trained on, rare (R) the others. {about['draws']} patient splits (seed {about['seed']}), {about['rule']} rule: "
        "top-1 is macro over disorders; AUROC is that of the calibrated top disorder's probability for right vs wrong answers; "
        '"no close match" is read when the true disorder is absent from the gallery (rare queries, frequent gallery) and when the '
        "answer is right; cos same / other: the mean cosine similarity of cases of the same disorder (other patients) and of "
        "different disorders.",
        "",
    ]
    header = ["model", *(title for _, title in COLUMNS)]
    body = [[name, *(cell(key, row[key]) for key, _ in COLUMNS)] for name, row in rows.items()]
    return "\n".join([*lines, *markdown.table(header, body)])
