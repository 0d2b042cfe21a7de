"""An evaluation as data: `EvaluationConfig` in, `EvaluationResult` out (`report` renders it).

Every method is scored on the same draws, settings and queries, so rows of one report
compare like with like. The model's ranking is what the service does (the configured rule);
its probabilities are calibrated per draw on the draw's gallery alone (leave one patient out,
`matcher.calibration`), as a gallery calibrates itself, then judged on the draw's queries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from matcher.batch import Reading
from matcher.calibration import Calibration, fit_calibration
from matcher.checkpoint import load_model, load_model_or_deeplasia
from matcher.manifest import read_case_manifest
from matcher.model import Bone2GeneModel
from matcher.rank import LabelIndex, RankingRule
from training.distributed import pick_device
from training.protocol import metrics
from training.protocol.encoders import centred_unit, run_network, thumbnails
from training.protocol.inputs import GatedInputs, prepare_inputs
from training.protocol.options import EvaluationConfig
from training.protocol.scorers import EmbeddingScorer, PatientScorer, RandomScorer, Ranked, Scorer, SoftmaxScorer, rank_setting
from training.protocol.splits import SETTINGS, DisorderGroups, Draw, EvaluationError, disorder_groups, random_draws

MODEL = "model"
POOLED = "F->F+R and R->F+R pooled"
AS_REPORTED = "as the service reports it (x P(disorder in gallery))"
REPORTED = f"pooled, {AS_REPORTED}"


@dataclass
class Method:
    name: str
    scorer: Scorer
    vectors: np.ndarray | None  # unit vectors for the AccuracyCalculator cross-check (None: not an embedding)
    about: str
    per_patient: bool = False  # queries are patients (all their films at once), not films


@dataclass
class EvaluationResult:
    config: EvaluationConfig
    model_fingerprint: str
    films: int
    refused: list[dict]
    groups: DisorderGroups
    methods: dict[str, str]  # name -> what it is
    topk: dict[str, dict[str, dict[str, list[float]]]]  # method -> setting -> "top1" -> one value per draw
    cmc: dict[str, dict[str, list[float]]]  # method -> setting -> macro top-k, k = 1..30 (mean over draws)
    accuracy_calculator: dict[str, dict[str, dict[str, float]]]  # method -> setting -> precision@1, MAP@R
    queries: dict[str, int]  # setting -> queries per draw (mean)
    disorders_in_gallery: dict[str, float]
    age_bands: dict[str, dict[str, list]]  # setting -> band -> [top5, queries]
    probabilities: dict[str, dict]  # setting -> ProbabilityQuality json
    no_match: dict[str, float]
    bone_age: pd.DataFrame
    features_model_bone_age_mad: float | None  # the bone-age features baseline's own bone age (how good a bone-age model it is)
    sex: dict[str, float]
    similarity_samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # method -> same/different
    table: pd.DataFrame | None = None  # the films that passed the gate, in embedding order
    embeddings: np.ndarray | None = None  # the model's, for re-analysis without the network


def _load_networks(config: EvaluationConfig) -> tuple[Bone2GeneModel, str, Bone2GeneModel, Bone2GeneModel | None]:
    model, card = load_model(config.model)
    torch.manual_seed(config.seed)
    untrained = Bone2GeneModel(card.config).eval()
    features = None
    if config.features_model is not None:
        features = load_model_or_deeplasia(config.features_model, config.deeplasia_parameters, config.trust_pickle)
    return model, card.fingerprint, untrained, features


def _methods(
    table: pd.DataFrame, outputs: dict[str, Reading], inputs: np.ndarray, trained_on: frozenset[str], config: EvaluationConfig
) -> list[Method]:
    patients = table["patient_id"].astype(str).to_numpy()
    disorders = table["disorder"].astype(str).to_numpy()
    model_vectors = outputs[MODEL].embedding
    other_rule = RankingRule.NEAREST if config.rule != RankingRule.NEAREST else RankingRule.DENSITY
    methods = [
        Method(
            MODEL, EmbeddingScorer(model_vectors, patients, config.rule), model_vectors, f"the model's embedding, {config.rule.value} rule"
        ),
        Method(
            f"model, {other_rule.value} rule",
            EmbeddingScorer(model_vectors, patients, other_rule),
            None,
            f"the same embedding ranked by the {other_rule.value} rule",
        ),
        Method(
            "model, multi-image",
            PatientScorer(model_vectors, patients, disorders, config.rule),
            None,
            "all of a patient's films combined into one query, and one gallery point per patient (matcher.multi_image)",
            per_patient=True,
        ),
        Method(
            "untrained encoder",
            EmbeddingScorer(outputs["untrained"].embedding, patients, config.rule),
            outputs["untrained"].embedding,
            "same architecture, random weights",
        ),
    ]
    if "features" in outputs:
        vectors = centred_unit(outputs["features"].features)
        about = f"pooled backbone features of the bone-age model {config.features_model.name} (no metric learning), centred"
        methods.append(Method("bone-age features", EmbeddingScorer(vectors, patients, config.rule), vectors, about))
    thumbs = thumbnails(inputs)
    methods += [
        Method(
            "softmax classifier",
            SoftmaxScorer(outputs[MODEL].features, disorders, trained_on, config.seed),
            None,
            "logistic regression on the model's pooled features, fitted on the gallery's frequent cases",
        ),
        Method("pixel thumbnails", EmbeddingScorer(thumbs, patients, config.rule), thumbs, "model input at 16 x 16, centred"),
        Method("random ranking", RandomScorer(config.seed), None, "uniform random scores"),
    ]
    return methods


def _prepare(
    config: EvaluationConfig, progress=None
) -> tuple[pd.DataFrame, list[dict], dict[str, Reading], np.ndarray, str, frozenset[str]]:
    table = read_case_manifest(config.needs_manifest("protocol"))
    model, fingerprint, untrained, features = _load_networks(config)
    networks = {MODEL: model, "untrained": untrained} | ({"features": features} if features is not None else {})
    readers = [model.age_sex_reader.config] if model.age_sex_reader is not None else []
    configs = [n.config for n in networks.values()] + readers
    prepared = prepare_inputs([Path(p) for p in table["path"]], configs, config.workers, progress)
    refused = [
        {"case_id": str(c), "reasons": r} for c, r, ok in zip(table["case_id"], prepared.reasons, prepared.accepted, strict=True) if not ok
    ]
    table = table[prepared.accepted].reset_index(drop=True)
    male = (table["sex"] == "M").to_numpy(np.float32)
    device = pick_device(config.device)
    outputs = {
        name: run_network(net, prepared.for_config(net.config), male, device, reader_inputs=_reader_inputs(net, prepared))
        for name, net in networks.items()
    }
    return table, refused, outputs, prepared.for_config(model.config), fingerprint, frozenset(model.config.labels)


def _reader_inputs(network: Bone2GeneModel, prepared: GatedInputs) -> np.ndarray | None:
    """The inputs of a network's age and sex reader, which reads its bone age and sex as in `analyze`."""
    return prepared.for_config(network.age_sex_reader.config) if network.age_sex_reader is not None else None


def _queries(draw: Draw, setting: str, patients: np.ndarray, per_patient: bool) -> tuple[np.ndarray, np.ndarray]:
    """(gallery rows, query rows) of a setting; one query row per patient for multi-image methods."""
    gallery, queries = draw.setting(setting)
    if per_patient:
        queries = queries[np.unique(patients[queries], return_index=True)[1]]
    return gallery, queries


def _score_methods(
    methods: list[Method], draws: list[Draw], disorders: np.ndarray, patients: np.ndarray
) -> tuple[dict, dict, dict, dict[str, list[Ranked]]]:
    topk: dict = {}
    curves: dict = {}
    pml: dict = {}
    model_ranked: dict[str, list[Ranked]] = {}
    for method in methods:
        topk[method.name], curves[method.name], pml[method.name] = {}, {}, {}
        for setting in SETTINGS:
            ranked = [rank_setting(method.scorer, disorders, *_queries(draw, setting, patients, method.per_patient)) for draw in draws]
            ranked = [r for r in ranked if len(r.queries)]
            if not ranked:
                continue
            per_draw = [metrics.topk(r.ranks, r.codes) for r in ranked]
            topk[method.name][setting] = {key: [d[key] for d in per_draw] for key in per_draw[0]}
            curves[method.name][setting] = list(np.mean([metrics.cmc(r.ranks, r.codes) for r in ranked], axis=0))
            if method.vectors is not None:
                pml[method.name][setting] = _cross_check(method.vectors, disorders, draws, setting)
            if method.name == MODEL:
                model_ranked[setting] = ranked
    return topk, curves, pml, model_ranked


def _cross_check(vectors: np.ndarray, disorders: np.ndarray, draws: list[Draw], setting: str) -> dict[str, float]:
    values = []
    for draw in draws:
        gallery, queries = draw.setting(setting)
        if len(gallery) and len(queries):
            values.append(metrics.metric_learning_accuracy(vectors[queries], disorders[queries], vectors[gallery], disorders[gallery]))
    return {key: float(np.mean([v[key] for v in values])) for key in values[0]} if values else {}


def _calibrated(vectors: np.ndarray, table: pd.DataFrame, gallery: np.ndarray, seed: int, rule: RankingRule) -> Calibration:
    """The calibration the service would fit on this gallery (leave one patient out)."""
    disorders = table["disorder"].astype(str).to_numpy()[gallery]
    return fit_calibration(
        vectors[gallery], list(disorders), list(table["patient_id"].astype(str).to_numpy()[gallery]), seed=seed, rule=rule
    )


def _probabilities(
    vectors: np.ndarray, table: pd.DataFrame, ranked: dict[str, list[Ranked]], draws: list[Draw], rule: RankingRule
) -> tuple[dict, dict]:
    """Per F+R setting: AUROC/reliability of the calibrated top-1 probability given that the query's
    disorder is in the gallery (it always is here); pooled and per setting, also the probability as the
    service reports it (times P(in gallery)); no-close-match rates and confident answers on absent disorders."""
    quality: dict[str, dict] = {}
    flagged_right, flagged_present = [], []
    pooled: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    reported: list[np.ndarray] = []
    scorer = EmbeddingScorer(vectors, table["patient_id"].astype(str).to_numpy(), rule)
    both = {draw.number: _calibrated(vectors, table, draw.setting("F->F+R")[0], draw.number, rule) for draw in draws}
    as_reported: dict[str, dict] = {}
    for setting in ("F->F+R", "R->F+R"):
        probability, correct, setting_reported = [], [], []
        for draw, result in zip(draws, ranked.get(setting, []), strict=False):
            calibration = both[draw.number]
            neighbourhood = scorer.neighbourhood(draw.setting(setting)[0], result.queries, result.labels)
            top = (np.arange(len(result.queries)), result.scores.argmax(axis=1))
            probability.append(calibration.probability_matrix(neighbourhood)[top])
            setting_reported.append(calibration.reported_matrix(neighbourhood)[top])
            correct.append(result.ranks == 1)
            flagged = calibration.flags(neighbourhood)
            flagged_right.append(flagged[result.ranks == 1])
            flagged_present.append(flagged)
        if probability:
            quality[setting] = metrics.probability_quality(np.concatenate(probability), np.concatenate(correct)).to_json()
            as_reported[f"{setting}, {AS_REPORTED}"] = metrics.probability_quality(
                np.concatenate(setting_reported), np.concatenate(correct)
            ).to_json()
            pooled[0].extend(probability)
            pooled[1].extend(correct)
            reported.extend(setting_reported)
    if len(quality) > 1:  # every held-out query whose disorder is in the gallery, frequent or unseen
        quality[POOLED] = metrics.probability_quality(np.concatenate(pooled[0]), np.concatenate(pooled[1])).to_json()
        quality[REPORTED] = metrics.probability_quality(np.concatenate(reported), np.concatenate(pooled[1])).to_json()
        quality |= as_reported
    flags, confident, confident_reported = _absent_queries(vectors, table, draws, rule)
    no_match = {
        "fires_when_absent": _share(flags),
        "off_when_right": 1 - _share(flagged_right),
        "off_when_present": 1 - _share(flagged_present),
        "confident_when_absent": _share(confident),
        "confident_when_absent_reported": _share(confident_reported),
    }
    return quality, no_match


def _share(parts: list[np.ndarray]) -> float:
    values = np.concatenate(parts) if parts else np.zeros(0)
    return float(np.mean(values)) if len(values) else float("nan")


def _absent_queries(
    vectors: np.ndarray, table: pd.DataFrame, draws: list[Draw], rule: RankingRule
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Rare test cases against the frequent gallery alone (their disorder absent): flagged or not, and
    whether some disorder got probability >= 0.5 (given presence, and as reported)."""
    patients = table["patient_id"].astype(str).to_numpy()
    disorders = table["disorder"].astype(str).to_numpy()
    scorer = EmbeddingScorer(vectors, patients, rule)
    flags, confident, confident_reported = [], [], []
    for draw in draws:
        gallery, queries = draw.frequent_gallery, draw.rare_test
        if len(queries) and len(np.unique(disorders[gallery])) >= 2:
            calibration = _calibrated(vectors, table, gallery, draw.number, rule)
            neighbourhood = scorer.neighbourhood(gallery, queries, LabelIndex.of(list(disorders[gallery])))
            flags.append(calibration.flags(neighbourhood))
            confident.append(np.nanmax(calibration.probability_matrix(neighbourhood), axis=1) >= 0.5)
            confident_reported.append(np.nanmax(calibration.reported_matrix(neighbourhood), axis=1) >= 0.5)
    return flags, confident, confident_reported


def _age_bands(table: pd.DataFrame, ranked: dict[str, list[Ranked]]) -> dict[str, dict[str, list]]:
    """Top-5 of the model per age band, pooled over draws, for every setting."""
    ages = table["age_months"].to_numpy(float)
    result = {}
    for setting, runs in ranked.items():
        ranks = np.concatenate([r.ranks for r in runs])
        codes = np.concatenate([[r.labels.names[c] for c in r.codes] for r in runs])
        queries = np.concatenate([r.queries for r in runs])
        result[setting] = {band: [value, count] for band, (value, count) in metrics.topk_by_age_band(ranks, codes, ages[queries]).items()}
    return result


def _similarity_samples(methods: list[Method], disorders: np.ndarray, draw: Draw, limit: int = 20000) -> dict[str, dict[str, list[float]]]:
    """Query-to-gallery cosine similarities in F->F+R of the first draw, same vs different disorder."""
    gallery, queries = draw.setting("F->F+R")
    rng = np.random.default_rng(0)
    result = {}
    for method in methods:
        if method.vectors is None or not len(queries):
            continue
        sims = method.vectors[queries] @ method.vectors[gallery].T
        same = disorders[queries][:, None] == disorders[gallery][None, :]
        pick = lambda values: rng.choice(values, min(limit, len(values)), replace=False).round(4).tolist()  # noqa: E731
        result[method.name] = {"same": pick(sims[same]), "different": pick(sims[~same])}
    return result


def _require_rankable(groups: DisorderGroups, where: str) -> None:
    if not groups.frequent and not groups.rare:
        raise EvaluationError(
            f"{where} has no disorder with two or more patients, so no patient can be queried against another's films; "
            "add films of more patients (patient_id) per disorder"
        )


def _overall_mad(table: pd.DataFrame, forward: Reading | None) -> float | None:
    if forward is None:
        return None
    return float(metrics.bone_age_by_disorder(table, forward.bone_age_months).set_index("disorder").at["all", "mad_months"])


def evaluate(config: EvaluationConfig, progress: Callable[[int, int], None] | None = None) -> EvaluationResult:
    """Run the whole protocol (see the module docstring); `progress` advances once per film read."""
    manifest = config.needs_manifest("protocol")
    _require_rankable(disorder_groups(read_case_manifest(manifest), []), str(manifest))
    table, refused, outputs, inputs, fingerprint, trained_on = _prepare(config, progress)
    groups = disorder_groups(table, trained_on)
    _require_rankable(groups, f"{config.manifest} (the {len(table)} films that passed the quality gate)")
    draws = random_draws(table, groups, config.draws, config.seed, config.gallery_fraction)
    disorders = table["disorder"].astype(str).to_numpy()
    methods = _methods(table, outputs, inputs, trained_on, config)
    topk, curves, pml, model_ranked = _score_methods(methods, draws, disorders, table["patient_id"].astype(str).to_numpy())
    vectors = outputs[MODEL].embedding
    probabilities, no_match = _probabilities(vectors, table, model_ranked, draws, config.rule) if groups.frequent else ({}, {})
    return EvaluationResult(
        config=config,
        model_fingerprint=fingerprint,
        films=len(table),
        refused=refused,
        groups=groups,
        methods={m.name: m.about for m in methods},
        topk=topk,
        cmc=curves,
        accuracy_calculator=pml,
        queries={s: float(np.mean([len(d.setting(s)[1]) for d in draws])) for s in SETTINGS} if draws else {},
        disorders_in_gallery={s: float(np.mean([len(np.unique(disorders[d.setting(s)[0]])) for d in draws])) for s in SETTINGS}
        if draws
        else {},
        age_bands=_age_bands(table, model_ranked),
        probabilities=probabilities,
        no_match=no_match,
        bone_age=metrics.bone_age_by_disorder(table, outputs[MODEL].bone_age_months),
        features_model_bone_age_mad=_overall_mad(table, outputs.get("features")),
        sex=metrics.sex_quality(table["sex"].to_numpy(), outputs[MODEL].male_probability),
        similarity_samples=_similarity_samples(methods, disorders, draws[0]) if draws else {},
        table=table,
        embeddings=vectors,
    )
