"""One door from a radiograph and its hand mask to the model input, whichever preprocessing
the model was trained with (`ModelConfig.preprocessing`)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from matcher.film_view import film_input
from matcher.model import ModelConfig
from matcher.preprocess import deeplasia_input


class InputTransform(Protocol):
    """Maps a map on the model input back onto the radiograph (attention, similarity)."""

    def map_to_original(self, input_map: np.ndarray) -> np.ndarray: ...


class ModelInput(Protocol):
    tensor: np.ndarray  # (1, S, S) float32

    @property
    def transform(self) -> InputTransform: ...


def model_input(pixels: np.ndarray, mask: np.ndarray, config: ModelConfig) -> ModelInput:
    """The (1, S, S) input and its transform for `config`'s preprocessing."""
    if config.preprocessing == "film":
        return film_input(pixels, mask, config.input_size)
    return deeplasia_input(pixels, mask, size=config.input_size)
