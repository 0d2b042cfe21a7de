"""The calibrated probability: read from a disorder's score against the query's other disorders
(`matcher.score_features`), so that it separates right from wrong top-1 answers better than the
score alone; calibrations stored before the features load and are refitted."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from matcher.calibration import Calibration, fit_calibration
from matcher.rank import LabelIndex, RankingRule, label_scores
from matcher.score_features import FEATURES, NO_OTHER, Neighbourhood, label_features


def test_features_are_their_definitions() -> None:
    scores = np.array([[0.9, 0.7, -np.inf, 0.5], [0.2, -np.inf, -np.inf, -np.inf]])
    nearest = np.array([[0.99, 0.999, -np.inf, 0.9], [0.5, -np.inf, -np.inf, -np.inf]])
    share = np.array([[0.3, 0.6, 0.0, 0.1], [1.0, 0.0, 0.0, 0.0]])
    x = label_features(Neighbourhood(scores, nearest, share, np.array([4, 1, 2, 8])))
    assert x.shape == (2, 4, len(FEATURES))
    score, gap, z, log_cases, neighbour_share, nearest_gap = (x[..., FEATURES.index(n)] for n in FEATURES)
    assert np.allclose(gap[0, [0, 1, 3]], [0.2, -0.2, -0.4]) and np.isnan(gap[0, 2])
    finite = np.array([0.9, 0.7, 0.5])
    assert np.allclose(z[0, [0, 1, 3]], (finite - finite.mean()) / finite.std())
    assert np.allclose(log_cases[0, [0, 1, 3]], np.log([4, 1, 8]))
    assert np.allclose(neighbour_share[0, [0, 1, 3]], [0.3, 0.6, 0.1])
    # the nearest gap is in log(1 - similarity): the disorder of the nearest case (here not the top score) leads
    closeness = -np.log(1 - np.array([0.99, 0.999, 0.9]))
    assert np.allclose(nearest_gap[0, [0, 1, 3]], [closeness[0] - closeness[1], closeness[1] - closeness[0], closeness[2] - closeness[1]])
    # one disorder with a score: the other is the lowest cosine similarity, the z-score 0
    assert np.isclose(gap[1, 0], 0.2 - NO_OTHER) and z[1, 0] == 0 and np.isnan(score[1, 1:]).all()
    assert np.isclose(nearest_gap[1, 0], -np.log(1 - 0.5) + np.log(1 - NO_OTHER))


def test_evidence_from_a_similarity_matrix_and_from_one_ranking_agree(clustered) -> None:
    """The evaluation reads the whole (queries x gallery) matrix, the service one query's searched
    cases, undiagnosed ones among them; both give the same neighbourhood."""
    rng = np.random.default_rng(0)
    names = [f"d{i % 3}" for i in range(30)]
    sims = rng.uniform(0.2, 0.95, size=(1, 30))
    labels = LabelIndex.of(names)
    matrix = Neighbourhood.from_similarities(sims, labels, RankingRule.DENSITY)
    order = np.argsort(-sims[0])
    searched = [float(sims[0, i]) for i in order]
    case_labels = [names[i] for i in order]
    # an undiagnosed case in the middle of the neighbourhood neither votes nor is anyone's nearest
    searched.insert(3, float(sims[0, order[3]]))
    case_labels.insert(3, None)
    one = Neighbourhood.of_ranking(searched, case_labels, list(labels.names), matrix.scores[0], labels.counts())
    assert np.allclose(one.nearest, matrix.nearest) and np.allclose(one.share, matrix.share)
    assert np.isclose(matrix.share.sum(), 1.0) and np.allclose(matrix.counts, labels.counts())
    assert np.allclose(label_features(one), label_features(matrix), equal_nan=True)


def _overlapping_gallery(clustered, rng: np.random.Generator, dim: int = 16) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
    """Six disorders: four well apart, two (d4, d5) sharing most of their centre."""
    centres = {f"d{i}": rng.normal(size=dim) for i in range(5)}
    centres["d5"] = centres["d4"] + 0.35 * rng.normal(size=dim)
    cohort = clustered(rng, centres=centres, sizes=dict.fromkeys(centres, 25), spread=0.8)
    return cohort.vectors, cohort.names.tolist(), centres


def test_top_probability_separates_right_from_wrong_answers_better_than_the_score(clustered) -> None:
    rng = np.random.default_rng(3)
    gallery, names, centres = _overlapping_gallery(clustered, rng)
    calibration = fit_calibration(gallery, names, [f"p{i}" for i in range(len(names))], rule=RankingRule.DENSITY)
    queries, truth = [], []
    for name, centre in centres.items():
        for _ in range(60):
            x = centre + 0.8 * rng.normal(size=len(centre))
            queries.append(x / np.linalg.norm(x))
            truth.append(name)
    labels = LabelIndex.of(names)
    similarities = np.array(queries, np.float32) @ gallery.T
    scores = label_scores(similarities, labels, RankingRule.DENSITY)[0]
    neighbourhood = Neighbourhood.from_similarities(similarities, labels, RankingRule.DENSITY)
    top = scores.argmax(axis=1)
    right = np.array([labels.names[t] == n for t, n in zip(top, truth, strict=True)])
    assert 0.1 < (~right).mean() < 0.5, "the test needs both right and wrong answers"
    probability = calibration.probability_matrix(neighbourhood)[np.arange(len(top)), top]
    by_features, by_score = roc_auc_score(right, probability), roc_auc_score(right, scores.max(axis=1))
    assert by_features > by_score + 0.1 and by_features > 0.8, (by_features, by_score)
    # one query at a time (the service) gives the same numbers, with an interval around them
    p, lo, hi = calibration.probabilities(neighbourhood.subset(np.array([0])))
    assert np.allclose(p, calibration.probability_matrix(neighbourhood)[0]) and (lo <= p).all() and (p <= hi).all()


def test_a_calibration_stored_before_the_features_still_loads_and_is_refitted() -> None:
    old = {
        "coef": 40.0,
        "intercept": -38.0,
        "bootstrap": [[39.0, -37.0], [41.0, -39.0]],
        "no_match_threshold": 0.95,
        "reliability": [],
        "expected_calibration_error": 0.05,
        "queries": 100,
        "disorders": 2,
        "label_counts": {"a": 50, "b": 50},
        "rule": "density",
        "no_match_fires_when_absent": 0.6,
        "no_match_off_when_right": 0.8,
    }
    calibration = Calibration.from_json(old)
    assert calibration.features == ("score",) and calibration.stale({"a": 50, "b": 50}, RankingRule.DENSITY)
    scores = np.array([[0.96, 0.90]])
    p, _, _ = calibration.probabilities(Neighbourhood(scores, scores, np.array([[0.5, 0.5]]), np.array([50, 50])))
    assert np.allclose(p, 1 / (1 + np.exp(-(40.0 * np.array([0.96, 0.90]) - 38.0))))
    again = Calibration.from_json(calibration.to_json())
    assert again == calibration


def test_the_in_gallery_probability_tells_absent_disorders_and_foreign_films_from_present_ones(clustered) -> None:
    """P(the query's disorder is in the gallery) from the nearest diagnosed case, relative to how
    close the first-ranked disorder's cases lie: higher for queries of the gallery's disorders than
    for a disorder it lacks, and low for a film unlike any case."""
    rng = np.random.default_rng(5)
    gallery, names, centres = _overlapping_gallery(clustered, rng)
    calibration = fit_calibration(gallery, names, [f"p{i}" for i in range(len(names))], rule=RankingRule.DENSITY)
    labels = LabelIndex.of(names)
    absent_centre = rng.normal(size=len(centres["d0"]))

    def draw(centre: np.ndarray, n: int = 80) -> np.ndarray:
        x = centre + 0.8 * rng.normal(size=(n, len(centre)))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def in_gallery(queries: np.ndarray) -> np.ndarray:
        neighbourhood = Neighbourhood.from_similarities(queries @ gallery.T, labels, RankingRule.DENSITY)
        return calibration.in_gallery_probability(neighbourhood.nearest_diagnosed, neighbourhood.top_names())

    p_present = in_gallery(np.concatenate([draw(c) for c in centres.values()]))
    p_absent = in_gallery(draw(absent_centre))
    auroc = roc_auc_score(np.r_[np.ones(len(p_present)), np.zeros(len(p_absent))], np.r_[p_present, p_absent])
    assert auroc > 0.8 and np.median(p_present) > 0.5 > np.median(p_absent), (auroc, np.median(p_present), np.median(p_absent))
    # a film far from every case: its disorder is very probably not among the gallery's
    foreign = calibration.in_gallery_probability(np.array([0.0, -0.5]), ["d0", "d4"])
    assert (foreign < 0.05).all(), foreign
    # one typical distance per disorder; a disorder the calibration never saw gets the median of all,
    # and without the first-ranked disorder there is nothing to read the distance against
    typical = calibration.typical_log_distance
    assert set(typical) == set(labels.names) and all(np.isfinite(v) for v in typical.values())
    assert calibration.typical_distance_of("unseen")[0] == pytest.approx(np.median(list(typical.values())))
    with pytest.raises(ValueError, match="first-ranked disorder"):
        calibration.in_gallery_probability(np.array([0.9]))
    # monotone in the similarity, stored and reloaded unchanged; a calibration stored without it is stale
    sims = np.linspace(0.0, 0.999, 50)
    assert (np.diff(calibration.in_gallery_probability(sims, ["d0"] * len(sims))) > 0).all()
    again = Calibration.from_json(calibration.to_json())
    assert again == calibration and not again.stale(calibration.label_counts, RankingRule.DENSITY)
    legacy = Calibration.from_json(_stored_unversioned(calibration, presence=None))
    assert legacy.stale(calibration.label_counts, RankingRule.DENSITY) and (legacy.in_gallery_probability(sims) == 1).all()
    # stored before the typical distances: it still reads the nearest distance alone, and is refitted
    older = Calibration.from_json(_stored_unversioned(calibration, typical_log_distance=None))
    assert older.stale(calibration.label_counts, RankingRule.DENSITY) and (np.diff(older.in_gallery_probability(sims)) > 0).all()
    # stored by the reverted gallery-support version (e83a088): its extra fields are dropped, the rest reads as it was
    support_era = Calibration.from_json({**calibration.to_json(), "support": {"threshold": 0.1}, "support_fitted": True})
    assert support_era == calibration


def test_no_close_match_fires_far_beyond_a_tight_disorders_spread_where_the_similarity_alone_does_not(clustered) -> None:
    """A film of another kind than the gallery's (a real radiograph against phantoms) can lie nearer
    a tight disorder's cases than loose disorders' cases lie to each other, yet far beyond the tight
    disorder's own spread: the second part of the flag catches it, the similarity alone does not,
    and the two together still stay off for at least 80% of present queries."""
    rng = np.random.default_rng(11)
    dim = 16
    centres = {name: rng.normal(size=dim) for name in ["tight", "loose0", "loose1", "loose2"]}
    spread = {"tight": 0.1, "loose0": 1.0, "loose1": 1.0, "loose2": 1.0}
    parts = [clustered(rng, centres={name: centre}, sizes={name: 30}, spread=spread[name]) for name, centre in centres.items()]
    gallery = np.concatenate([part.vectors for part in parts])
    names = [name for part in parts for name in part.names]
    calibration = fit_calibration(gallery, names, [f"p{i}" for i in range(len(names))], rule=RankingRule.DENSITY)
    assert calibration.no_match_off_when_present >= 0.8 and calibration.no_match_relative_threshold is not None
    foreign = centres["tight"] + 0.5 * rng.normal(size=(40, dim))
    foreign = (foreign / np.linalg.norm(foreign, axis=1, keepdims=True)).astype(np.float32)
    neighbourhood = Neighbourhood.from_similarities(foreign @ gallery.T, LabelIndex.of(names), RankingRule.DENSITY)
    assert set(neighbourhood.top_names()) == {"tight"}
    by_similarity = neighbourhood.nearest_diagnosed < calibration.no_match_threshold
    flagged = calibration.flags(neighbourhood)
    assert by_similarity.mean() < 0.2 and flagged.mean() > 0.9, (by_similarity.mean(), flagged.mean())
    # a calibration stored before the second part reads the similarity alone, and is refitted
    older = Calibration.from_json(_stored_unversioned(calibration, no_match_relative_threshold=None))
    assert (older.flags(neighbourhood) == by_similarity).all() and older.stale(calibration.label_counts, RankingRule.DENSITY)
    assert Calibration.from_json(calibration.to_json()) == calibration


def _stored_unversioned(calibration: Calibration, **changes: object) -> dict:
    """`calibration` as a version before the format was written would have stored it: without
    `format_version`, and with the fields that version lacked empty."""
    data = {k: v for k, v in calibration.to_json().items() if k != "format_version"}
    return {**data, **changes}


def test_a_stored_calibration_names_its_format_and_older_ones_are_migrated_step_by_step() -> None:
    from matcher.calibration import CALIBRATION_FORMAT, CalibrationFormatError, stored_format

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    names = [f"d{i % 3}" for i in range(60)]
    calibration = fit_calibration(vectors, names, [f"p{i}" for i in range(60)], rule=RankingRule.DENSITY)
    stored = calibration.to_json()
    assert stored["format_version"] == CALIBRATION_FORMAT and calibration.migrated_from is None
    assert stored_format(_stored_unversioned(calibration)) == CALIBRATION_FORMAT
    expected = {"presence": 2, "typical_log_distance": 3, "no_match_relative_threshold": 4}
    for field, version in expected.items():
        older = Calibration.from_json(_stored_unversioned(calibration, **{field: None}))
        assert older.migrated_from == version and older.stale(calibration.label_counts, RankingRule.DENSITY), field
        assert Calibration.from_json(older.to_json()) == older  # a migrated one stored again stays what it was
    with pytest.raises(CalibrationFormatError, match="format 6 by a newer Bone2Gene"):
        Calibration.from_json({**stored, "format_version": CALIBRATION_FORMAT + 1})
