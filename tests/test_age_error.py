"""Bone-age error spread (`training.age_error`): the band table and the small-sample draws."""

from __future__ import annotations

import numpy as np
import pytest

from training.age_error import errors_by_age_band, small_sample_spread


def test_a_reader_pulled_toward_the_middle_reads_infants_older_and_adolescents_younger() -> None:
    truth = np.array([12.0, 24.0, 60.0, 120.0, 200.0, 220.0])
    read = 0.8 * truth + 0.2 * 120.0  # shrunk toward 120 months
    bands = errors_by_age_band(read, truth, edges=(0, 36, 96, 144, 180, 240))
    assert [(b.low, b.high, b.films) for b in bands] == [(0, 36, 2), (36, 96, 1), (96, 144, 1), (180, 240, 2)]  # 144-180 holds none
    infants, adolescents = bands[0], bands[-1]
    assert infants.bias == pytest.approx(0.2 * (120 - 18.0), abs=0.01) and infants.mad == infants.bias
    assert adolescents.bias == pytest.approx(-0.2 * (210 - 120.0), abs=0.01) and adolescents.mad == -adolescents.bias
    assert bands[2].mad == 0.0


def test_small_sample_draws_match_the_exact_chance_of_drawing_the_one_bad_film() -> None:
    errors = np.array([0.0] * 9 + [10.0])
    spread = small_sample_spread(errors, films=2, observed=5.0, draws=20_000, seed=1)
    # the bad film is among 2 of 10 drawn without replacement with probability 2/10
    assert spread.share_at_or_above_observed == pytest.approx(0.2, abs=0.01)
    assert spread.median_mad == 0.0 and spread.p95_mad == 5.0


def test_drawing_every_film_gives_the_whole_sets_mad_every_time() -> None:
    errors = np.arange(20, dtype=float)
    spread = small_sample_spread(errors, films=20, observed=errors.mean(), draws=50)
    assert spread.median_mad == spread.p95_mad == round(errors.mean(), 2)
    assert spread.share_at_or_above_observed == 1.0


@pytest.mark.parametrize("films", [0, 11])
def test_drawing_more_films_than_there_are_or_none_is_refused(films: int) -> None:
    with pytest.raises(ValueError, match="cannot draw"):
        small_sample_spread(np.ones(10), films=films, observed=1.0)
