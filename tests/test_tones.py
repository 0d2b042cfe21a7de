"""Site tone curves (training/synth/tones.py): fitted profiles drawn back, and a drawn curve lands
the hand's greys where it says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.synth.tones import QUANTILES, ToneModel, apply_tone, grey_profile, site_tones


def _profiles(n: int, rng: np.random.Generator) -> np.ndarray:
    """Profiles of a made-up site: a dark field and the hand's greys rising from a drawn floor."""
    floor = rng.uniform(0.1, 0.3, n)[:, None]
    rise = rng.uniform(0.3, 0.5, n)[:, None] * np.array(QUANTILES)[None, :]
    return np.concatenate([rng.uniform(0.0, 0.1, (n, 1)), floor + rise], axis=1)


def test_a_fitted_model_draws_profiles_like_its_films_and_reads_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    films = _profiles(400, rng)
    model = ToneModel.fit(films, n_components=3, provenance={"source": "test"})
    drawn = np.array([np.concatenate([[b], h]) for b, h in (model.sample(rng) for _ in range(400))])
    assert np.allclose(drawn.mean(0), films.mean(0), atol=0.02) and np.allclose(drawn.std(0), films.std(0), atol=0.02)
    assert (np.diff(drawn[:, 1:], axis=1) > 0).all() and drawn.min() >= 0.0 and drawn.max() <= 1.0
    model.save(tmp_path / "tones.json")
    again = ToneModel.load(tmp_path / "tones.json")
    assert np.allclose(again.mean, model.mean, atol=1e-5) and again.provenance == {"source": "test", "films": 400}
    with pytest.raises(ValueError, match="more than 3 profiles"):
        ToneModel.fit(films[:3], n_components=3)


def test_a_drawn_curve_puts_the_hands_greys_on_its_quantiles() -> None:
    rng = np.random.default_rng(1)
    log_signal = np.zeros((200, 200), np.float32)
    hand = np.zeros((200, 200), np.uint8)
    hand[40:180, 50:150] = 255
    log_signal[hand > 0] = rng.gamma(4.0, 0.2, int((hand > 0).sum()))  # thicker anatomy, more attenuation
    background, greys = 0.05, np.linspace(0.2, 0.7, len(QUANTILES))
    image = apply_tone(log_signal, hand, background, greys)
    profile = grey_profile(image, hand)
    assert profile[0] == pytest.approx(background, abs=1e-6)
    assert np.allclose(profile[1:], greys, atol=0.01)
    assert image.max() <= 1.0 and np.all(np.diff(image[hand > 0][np.argsort(log_signal[hand > 0])]) >= -1e-6)  # monotone
    log_signal[100, 60:63] = [5.0, 6.0, 8.0]  # far thicker than the rest of the hand
    thick = apply_tone(log_signal, hand, background, greys)[100, 60:63]
    assert greys[-1] < thick[0] < thick[1] < thick[2] < 1.0  # a shoulder: the thickest parts keep their contrast, never white


def test_the_shipped_model_was_fitted_on_development_films_and_draws_dark_fields() -> None:
    model = site_tones()
    assert "id % 20 == 10" in model.provenance["source"] and model.provenance["films"] >= 500
    rng = np.random.default_rng(2)
    fields = [model.sample(rng)[0] for _ in range(200)]
    assert np.median(fields) < 0.15
