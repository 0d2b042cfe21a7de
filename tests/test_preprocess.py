"""Deeplasia's preprocessing reproduced against the fixtures its own code made."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from matcher.errors import MaskError
from matcher.preprocess import CropTransform, deeplasia_input, mask_crop

CASES = [("hand_2", 512), ("hand_2", 1024), ("hand_3", 512), ("hand_9", 512)]


@pytest.fixture(scope="module")
def fixtures(shared_dir: Path) -> Path:
    path = shared_dir / "fixtures" / "deeplasia" / "preprocess"
    if not path.is_dir():
        pytest.skip("Deeplasia preprocessing fixtures absent")
    return path


@pytest.mark.parametrize(("hand", "size"), CASES)
def test_reproduces_deeplasia_exactly(fixtures: Path, hand: str, size: int) -> None:
    image = cv2.imread(str(fixtures / f"{hand}.png"), cv2.IMREAD_ANYDEPTH)
    mask = cv2.imread(str(fixtures / f"{hand}_mask.png"), cv2.IMREAD_GRAYSCALE)
    meta = json.loads((fixtures / "meta.json").read_text())[f"{hand}.png"]
    out = deeplasia_input(image, mask, size=size)
    assert out.percentile1 == meta["percentile1_of_masked_nonzero"]
    assert np.array_equal(out.cropped, cv2.imread(str(fixtures / f"{hand}_cropped.png"), cv2.IMREAD_ANYDEPTH))
    resized = fixtures / f"{hand}_resized_{size}.png"
    if resized.exists():
        assert np.array_equal(out.resized, cv2.imread(str(resized), cv2.IMREAD_ANYDEPTH))
    reference = np.load(fixtures / f"{hand}_input_{size}.npy")
    assert out.tensor.shape == reference.shape == (1, size, size) and out.tensor.dtype == np.float32
    assert np.abs(out.tensor - reference).max() <= 1e-6  # README tolerance


def test_crop_transform_round_trips_and_maps_back(fixtures: Path) -> None:
    image = cv2.imread(str(fixtures / "hand_2.png"), cv2.IMREAD_ANYDEPTH)
    mask = cv2.imread(str(fixtures / "hand_2_mask.png"), cv2.IMREAD_GRAYSCALE)
    out = deeplasia_input(image, mask, size=512)
    t = out.transform
    xs, ys = np.array([0.0, 100.0, 511.0]), np.array([5.0, 250.0, 400.0])
    back = t.to_input(*t.to_original(xs, ys))
    assert np.allclose(back[0], xs) and np.allclose(back[1], ys)
    # a map that is the resized crop itself, drawn back, lines up with the original image
    drawn = t.map_to_original(out.resized.astype(np.float32))
    inside = (mask > 0) & (drawn > 0)
    original = cv2.subtract(cv2.bitwise_and(image, image, mask=(mask > 127).astype(np.uint8)), out.percentile1)
    corr = np.corrcoef(drawn[inside], original[inside].astype(np.float32))[0, 1]
    assert corr > 0.97


def test_crop_is_square_centred_and_padded_with_zeros() -> None:
    mask = np.zeros((100, 60), np.uint8)
    mask[10:90, 5:55] = 255
    x0, _y0, side = mask_crop(mask > 0)
    assert side == 2 * (round(80 * 1.15) // 2) and x0 < 0  # wider than the image: padded
    image = np.full((100, 60), 200, np.uint8)
    out = deeplasia_input(image, mask, size=512)
    assert out.cropped.shape == (side, side) and out.cropped[0, 0] == 0


def test_empty_mask_is_a_clear_error() -> None:
    with pytest.raises(MaskError, match="no hand"):
        deeplasia_input(np.full((64, 64), 10, np.uint8), np.zeros((64, 64), np.uint8))


def test_sixteen_bit_images_keep_their_depth() -> None:
    image = (np.linspace(0, 65535, 200 * 160).reshape(200, 160)).astype(np.uint16)
    mask = np.zeros_like(image, dtype=np.uint8)
    mask[20:180, 30:130] = 1
    out = deeplasia_input(image, mask, size=512)
    assert out.cropped.dtype == np.uint16 and out.resized.dtype == np.uint16
    assert abs(float(out.tensor.mean())) < 1e-5 and abs(float(out.tensor.std(ddof=1)) - 1) < 1e-4


def test_transform_is_exposed_for_maps() -> None:
    t = CropTransform(x0=-10, y0=20, side=200, output_size=512, image_shape=(300, 180))
    assert t.scale == pytest.approx(2.56)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_histogram_percentile_equals_numpy(dtype: type) -> None:
    from matcher.preprocess import first_percentile_of_nonzero

    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max
    for n in (1, 2, 3, 50, 101, 1000, 12345):
        for _ in range(10):
            values = rng.integers(0, top, n, dtype=dtype)
            values[rng.random(n) < 0.3] = 0
            expected = float(np.percentile(values[values > 0], 1)) if (values > 0).any() else 0.0
            assert first_percentile_of_nonzero(values) == pytest.approx(expected, abs=1e-9)


def test_crop_box_is_the_bounding_box_of_the_mask_pixels() -> None:
    """Deeplasia's box is min/max of the non-zero pixels; ours comes from cv2.boundingRect."""
    rng = np.random.default_rng(1)
    for _ in range(50):
        h, w = (int(v) for v in rng.integers(5, 120, 2))
        mask = (rng.random((h, w)) < rng.uniform(0.001, 0.2)).astype(np.uint8)
        mask[rng.integers(h), rng.integers(w)] = 1
        ys, xs = np.nonzero(mask)
        x_centre = int(xs.min()) + (int(xs.max()) + 1 - int(xs.min())) // 2
        y_centre = int(ys.min()) + (int(ys.max()) + 1 - int(ys.min())) // 2
        half = round(max(int(ys.max()) + 1 - int(ys.min()), int(xs.max()) + 1 - int(xs.min())) * 1.15) // 2
        assert mask_crop(mask) == (x_centre - half, y_centre - half, 2 * half)
        assert mask_crop(mask.astype(bool)) == (x_centre - half, y_centre - half, 2 * half)
