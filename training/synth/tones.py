"""Site tone curves: how real sites turn anatomy into grey, as a distribution the film renderer draws from.

A processed radiograph's grey histogram belongs to its site (film, scanner, CR/DR vendor LUT): where
the open field lands, how the soft tissue and the bones spread over the greys. A parametric tone
curve (`xray.expose`'s classic processing) gets the ordering right but not where real sites put the
greys (hand median 0.40 on film phantoms before these curves against 0.33 on development films:
`docs/decisions/phantoms_like_films.md`).

So the film renderer draws each RSNA-like film's curve from a model of real films' grey profiles:
the open field's median grey and the grey quantiles inside the hand, reduced to a mean and a few
principal components with their spreads (`ToneModel`). The model is fitted on RSNA development
films only (ids with id % 20 == 10; `scripts/fit_film_tones.py`), never on films the realism suite
reports on, and shipped as `tones.json` beside this module (numbers derived from the films, no film).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

TONES_FILE = Path(__file__).with_name("tones.json")
QUANTILES: tuple[float, ...] = tuple(float(q) for q in np.round(np.linspace(0.02, 0.98, 13), 3))
MIN_STEP = 1e-3  # the drawn greys rise by at least this much from one quantile to the next


def grey_profile(image01: np.ndarray, hand: np.ndarray) -> np.ndarray:
    """[open-field median grey, the hand's grey at each of `QUANTILES`] of one film in [0, 1]."""
    inside = image01[hand > 0]
    outside = image01[hand == 0]
    if inside.size < 50 or outside.size < 50:
        raise ValueError("the film needs both a hand and an open field to give a grey profile")
    return np.concatenate([[np.median(outside)], np.quantile(inside, QUANTILES)]).astype(np.float64)


@dataclass(frozen=True)
class ToneModel:
    """Real films' grey profiles (`grey_profile`) as a mean and principal components: a drawn
    profile is the mean plus each component times a normal draw scaled by its spread."""

    mean: np.ndarray
    components: np.ndarray  # (k, 1 + len(QUANTILES)), orthonormal rows
    spreads: np.ndarray  # (k,) standard deviations along the components
    provenance: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, profiles: np.ndarray, n_components: int = 4, provenance: dict | None = None) -> ToneModel:
        profiles = np.asarray(profiles, dtype=np.float64)
        if profiles.ndim != 2 or profiles.shape[1] != 1 + len(QUANTILES) or len(profiles) <= n_components:
            raise ValueError(f"need more than {n_components} profiles of {1 + len(QUANTILES)} values, got shape {profiles.shape}")
        mean = profiles.mean(axis=0)
        _, singular, rows = np.linalg.svd(profiles - mean, full_matrices=False)
        spreads = singular[:n_components] / np.sqrt(len(profiles) - 1)
        return cls(mean, rows[:n_components], spreads, dict(provenance or {}, films=len(profiles)))

    def sample(self, rng: np.random.Generator) -> tuple[float, np.ndarray]:
        """One film's (open-field grey, hand greys at `QUANTILES`): in [0, 1], the hand's rising."""
        profile = self.mean + (rng.standard_normal(len(self.spreads)) * self.spreads) @ self.components
        profile = np.clip(profile, 0.0, 1.0)
        hand = np.maximum.accumulate(profile[1:]) + MIN_STEP * np.arange(len(QUANTILES))
        return float(profile[0]), np.minimum(hand, 1.0)

    def save(self, path: Path = TONES_FILE) -> None:
        document = {
            "quantiles": list(QUANTILES),
            "mean": self.mean.round(5).tolist(),
            "components": self.components.round(5).tolist(),
            "spreads": self.spreads.round(5).tolist(),
            "provenance": self.provenance,
        }
        path.write_text(json.dumps(document, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path = TONES_FILE) -> ToneModel:
        document = json.loads(Path(path).read_text())
        if tuple(document["quantiles"]) != QUANTILES:
            raise ValueError(f"{path} was fitted at other quantiles; refit it with scripts/fit_film_tones.py")
        return cls(*(np.array(document[k], dtype=np.float64) for k in ("mean", "components", "spreads")), document["provenance"])


@lru_cache(maxsize=1)
def site_tones() -> ToneModel:
    """The shipped model (`tones.json`), read once per process."""
    return ToneModel.load()


def apply_tone(log_signal: np.ndarray, hand: np.ndarray, background: float, hand_greys: np.ndarray) -> np.ndarray:
    """Grey image from the detector's log signal: the hand's log-signal quantiles land on
    `hand_greys`, the open field (log signal 0) on `background`, linearly in between. Above the
    hand's top quantile a shoulder takes over, as film and vendor curves have: it leaves at the
    curve's last slope and approaches white without reaching it, so bone inside the thickest soft
    tissue (wrist, forearm) keeps some contrast instead of burning out."""
    inside = log_signal[::2, ::2][hand[::2, ::2] > 0]
    knots = np.quantile(inside, QUANTILES) if inside.size else np.linspace(0.1, 2.0, len(QUANTILES))
    knots = np.maximum.accumulate(np.maximum(knots, 1e-3)) + 1e-4 * np.arange(len(QUANTILES))
    xs = np.concatenate([[0.0], knots])
    ys = np.concatenate([[background], hand_greys])
    image = np.interp(log_signal, xs, ys).astype(np.float32)
    top, headroom = float(knots[-1]), max(1.0 - float(hand_greys[-1]), 1e-3)
    slope = max((hand_greys[-1] - hand_greys[-3]) / max(knots[-1] - knots[-3], 1e-4), 1e-3)
    above = log_signal > top
    image[above] = hand_greys[-1] + headroom * (1.0 - np.exp(-(log_signal[above] - top) * slope / headroom))
    return image
