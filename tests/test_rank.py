"""Ranking rules: GestaltMatcher's nearest case per disorder against a direct loop, and the
class-balanced density rule against its definition and against the nearest rule's frequency bias."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.calibration import NO_MATCH_KEEP_OFF, fit_calibration
from matcher.rank import DENSITY_BANDWIDTH, LabelIndex, RankingRule, label_ranks, label_scores, macro_topk, nearest_per_label, rank_labels
from matcher.score_features import Neighbourhood


def test_nearest_per_label_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(0)
    labels = LabelIndex.of(rng.choice(["a", "b", "c", "d"], size=50))
    sims = rng.normal(size=(7, 50)).astype(np.float32)
    best, evidence = nearest_per_label(sims, labels)
    for q in range(7):
        for code, _name in enumerate(labels.names):
            members = np.flatnonzero(labels.codes == code)
            assert best[q, code] == sims[q, members].max()
            assert evidence[q, code] == members[np.argmax(sims[q, members])]


def test_masked_cases_are_never_evidence() -> None:
    labels = LabelIndex.of(["a", "a", "b"])
    sims = np.array([[0.9, 0.5, 0.1]], np.float32)
    sims[0, 0] = -np.inf  # e.g. the query's own patient
    best, evidence = nearest_per_label(sims, labels)
    assert best[0].tolist() == [0.5, np.float32(0.1)] and evidence[0].tolist() == [1, 2]
    sims[0, 1] = -np.inf
    best, evidence = nearest_per_label(sims, labels)
    assert best[0, 0] == -np.inf and evidence[0, 0] == -1


def test_ranks_count_ties_against_the_true_label_and_macro_average() -> None:
    best = np.array([[0.9, 0.5, 0.5], [0.2, 0.8, 0.8], [0.1, 0.2, 0.3]], np.float32)
    ranks = label_ranks(best, np.array([0, 1, 0]))
    assert ranks.tolist() == [1, 2, 3]
    # class 0 has queries ranked 1 and 3 (top-1 = 0.5), class 1 one query ranked 2 (top-1 = 0)
    assert macro_topk(ranks, np.array([0, 1, 0]), (1, 2)) == {1: 0.25, 2: 0.75}


def test_density_is_its_definition_on_matrices_and_on_one_querys_hits() -> None:
    rng = np.random.default_rng(1)
    names = rng.choice(["a", "b", "c"], size=40)
    labels = LabelIndex.of(names)
    sims = rng.uniform(0.8, 1.0, size=(3, 40))
    sims[0, 5] = -np.inf  # excluded (own patient): neither counted nor averaged
    scores, evidence = label_scores(sims, labels, RankingRule.DENSITY)
    for q in range(3):
        usable = np.isfinite(sims[q])
        tau = DENSITY_BANDWIDTH * sims[q, usable].std()
        for code in range(3):
            members = sims[q, (labels.codes == code) & usable]
            assert scores[q, code] == np.float32(tau * np.log(np.mean(np.exp(members / tau))))
            assert sims[q, evidence[q, code]] == members.max()  # the evidence stays the nearest case
    order = np.argsort(-sims[1])  # one query's search hits, best first, as the gallery search gives them
    ranked = rank_labels(
        names[order].tolist(),
        [f"c{i}" for i in order],
        sims[1, order].tolist(),
        dict(zip(*np.unique(names, return_counts=True), strict=True)),
    )
    assert {r.label: r.score for r in ranked} == pytest.approx(
        {name: float(scores[1, code]) for code, name in enumerate(labels.names)}, abs=1e-6
    )
    assert [r.label for r in ranked] == [labels.names[c] for c in np.argsort(-scores[1])]


def _vectors_and_names(cohort) -> tuple[np.ndarray, np.ndarray]:
    return cohort.vectors, cohort.names


def test_density_is_fair_to_a_disorder_with_few_gallery_cases(clustered) -> None:
    """Overlapping clusters, five frequent disorders with 40 gallery cases and one with 3 (ten
    random worlds): the nearest rule hands the rare disorder's queries to the frequent ones more
    often; the density rule finds more of them without losing frequent ones."""
    sizes = {"f0": 40, "f1": 40, "f2": 40, "f3": 40, "f4": 40, "rare": 3}
    hits = {rule: {"rare": 0, "frequent": 0} for rule in RankingRule}
    for seed in range(10):
        rng = np.random.default_rng(seed)
        centres = {name: rng.normal(size=16) for name in sizes}
        gallery, names = _vectors_and_names(clustered(rng, centres=centres, sizes=sizes, spread=0.9))
        queries, query_names = _vectors_and_names(
            clustered(rng, centres=centres, sizes=dict.fromkeys(sizes, 40), spread=0.9)
        )  # other patients
        labels = LabelIndex.of(names)
        true = np.array([labels.names.index(n) for n in query_names])
        for rule in RankingRule:
            first = label_ranks(label_scores(queries @ gallery.T, labels, rule)[0], true) == 1
            hits[rule]["rare"] += int(first[query_names == "rare"].sum())
            hits[rule]["frequent"] += int(first[query_names != "rare"].sum())
    nearest, density = hits[RankingRule.NEAREST], hits[RankingRule.DENSITY]
    assert density["rare"] >= nearest["rare"] + 10 and density["frequent"] >= 0.99 * nearest["frequent"], hits


@pytest.mark.parametrize("spread", [0.6, 1.2], ids=["separated", "crowded"])
@pytest.mark.parametrize("rule", list(RankingRule))
def test_no_close_match_fires_for_absent_disorders_and_stays_off_for_right_answers(clustered, rule: RankingRule, spread: float) -> None:
    """Calibrated leave-one-patient-out on five disorders; fresh queries of those five and of a
    sixth the gallery does not hold: the flag must tell the two apart, not fire on everything
    (in the crowded space the 95th percentile of absent scores alone flags half the right answers)."""
    rng = np.random.default_rng(5)
    present = {f"d{i}": 30 for i in range(5)}
    centres = {name: rng.normal(size=16) for name in [*present, "absent"]}
    gallery, names = _vectors_and_names(clustered(rng, centres=centres, sizes=present, spread=spread))
    calibration = fit_calibration(gallery, names.tolist(), [f"p{i}" for i in range(len(names))], rule=rule)
    assert calibration.rule == rule and calibration.no_match_off_when_right >= NO_MATCH_KEEP_OFF
    queries, query_names = _vectors_and_names(clustered(rng, centres=centres, sizes=dict.fromkeys([*present, "absent"], 40), spread=spread))
    labels = LabelIndex.of(names)
    scores = label_scores(queries @ gallery.T, labels, rule)[0]
    flagged = calibration.flags(Neighbourhood.from_similarities(queries @ gallery.T, labels, rule))
    right = np.array([n in labels.names and labels.names[c] == n for n, c in zip(query_names, scores.argmax(axis=1), strict=True)])
    absent = query_names == "absent"
    fires, false_alarms = flagged[absent].mean(), flagged[right].mean()
    assert false_alarms <= 0.3 and fires >= max(0.5, 2 * false_alarms), (fires, false_alarms)
