"""GestaltMatcher's nearest-case-per-disorder ranking, against a direct loop."""

from __future__ import annotations

import numpy as np

from matcher.rank import LabelIndex, label_ranks, macro_topk, nearest_per_label


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
