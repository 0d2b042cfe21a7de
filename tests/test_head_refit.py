"""Refitting the embedding head on frozen features (training.head_refit) and scoring a ready-made
space with the protocol (training.protocol.space): small clustered data, every loss kind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.head_refit import HeadRefitConfig, embed_features, refit_head
from training.metric_loss import LossKind, MetricLossConfig
from training.protocol.space import score_space


def _features(clustered, rng: np.random.Generator) -> tuple[np.ndarray, pd.DataFrame]:
    """Pooled-feature-like rows: a large shared component (as pooled features have) plus a class signal."""
    cohort = clustered(rng, disorders=8, patients=10, dim=48, spread=1.0, unit=False, shared=5.0)
    return cohort.vectors, cohort.table


@pytest.mark.parametrize(
    "loss",
    [
        MetricLossConfig(LossKind.ARCFACE, 28.6, 64.0),
        MetricLossConfig(LossKind.SUBCENTER_ARCFACE, 28.6, 32.0, 3),
        MetricLossConfig(LossKind.COSFACE, 0.35, 32.0),
    ],
    ids=["arcface", "subcenter", "cosface"],
)
def test_a_refitted_head_separates_disorders_it_was_trained_on_and_ranks_unseen_ones(clustered, loss: MetricLossConfig) -> None:
    rng = np.random.default_rng(0)
    x, table = _features(clustered, rng)
    trained = [f"d{d}" for d in range(6)]  # d6, d7: never seen by the head
    train = table["disorder"].isin(trained).to_numpy()
    head = refit_head(
        x[train],
        table["disorder"].to_numpy()[train],
        HeadRefitConfig(loss=loss, embedding_dim=16, epochs=100, batch_size=24, m_per_class=4),
    )
    vectors = embed_features(head, x)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    raw = x / np.linalg.norm(x, axis=1, keepdims=True)
    space, untouched = score_space(vectors, table, trained, draws=3), score_space(raw, table, trained, draws=3)
    assert space.frequent_top1 >= 0.9 and space.unseen_top1 >= 0.6, space
    assert space.same_disorder_cosine - space.other_disorder_cosine > untouched.same_disorder_cosine - untouched.other_disorder_cosine
    assert 0.0 <= space.no_match_fires_when_absent <= 1.0 and space.no_match_off_when_right >= 0.5


def test_refitting_needs_two_disorders() -> None:
    with pytest.raises(ValueError, match="at least two disorders"):
        refit_head(np.zeros((12, 8), np.float32), ["a"] * 12, HeadRefitConfig(embedding_dim=4, m_per_class=4, batch_size=8))
