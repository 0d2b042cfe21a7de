"""The film view reproduces the RSNA 100-px copies exactly, so a full-resolution film and its
copy reach a film-view model as the same input; landscape frames with a narrow hand are
cut to a portrait window first; deeper images are windowed to 8 bits."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from matcher.film_view import FILM_SIDE, film_input, film_view, portrait_window, to_uint8


def test_full_resolution_films_reduce_to_their_rsna_copies_exactly(
    real_hands_labelled: tuple[list[Path], pd.DataFrame], rsna_100px: Path
) -> None:
    paths, _ = real_hands_labelled
    for path in paths:
        full = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        copy = cv2.imread(str(rsna_100px / "images" / path.name), cv2.IMREAD_GRAYSCALE)
        view, transform = film_view(full)
        assert view.shape == (FILM_SIDE, FILM_SIDE) and (transform.x0, transform.x1) == (0, full.shape[1])
        assert np.array_equal(view, copy), f"{path.name}: {np.abs(view.astype(int) - copy).mean():.2f} grey levels apart"
        # and the copy itself passes through unchanged
        assert np.array_equal(film_view(copy)[0], copy)
        assert np.array_equal(film_input(full, None).tensor, film_input(copy, None).tensor)


def test_a_narrow_hand_in_a_landscape_frame_gets_a_portrait_window() -> None:
    h, w = 400, 1200
    mask = np.zeros((h, w), np.uint8)
    mask[50:390, 700:950] = 1  # the hand spans a fifth of the width
    x0, x1 = portrait_window((h, w), mask)
    assert x0 <= 700 and x1 >= 950 and abs((x1 - x0) - round(0.74 * h)) <= 1
    # a wide hand, a portrait frame, or no mask: the whole frame
    wide = np.zeros((h, w), np.uint8)
    wide[50:390, 100:1100] = 1
    assert portrait_window((h, w), wide) == (0, w)
    assert portrait_window((w, h), np.zeros((w, h), np.uint8)) == (0, h)
    assert portrait_window((h, w), None) == (0, w)


def test_the_attention_transform_maps_back_onto_the_window() -> None:
    pixels = np.zeros((400, 1200), np.uint8)
    mask = np.zeros_like(pixels)
    mask[50:390, 700:950] = 1
    prepared = film_input(pixels, mask, 100)
    back = prepared.transform.map_to_original(np.ones((100, 100), np.float32))
    x0, x1 = prepared.transform.x0, prepared.transform.x1
    assert back.shape == pixels.shape and back[:, x0:x1].min() == 1.0 and back[:, :x0].max() == 0.0 and back[:, x1:].max() == 0.0


def test_sixteen_bit_films_are_windowed_to_eight_bits() -> None:
    rng = np.random.default_rng(0)
    deep = rng.integers(1000, 3000, (300, 240), dtype=np.uint16)
    out = to_uint8(deep)
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert np.corrcoef(out.ravel().astype(float), deep.ravel().astype(float))[0, 1] > 0.99
