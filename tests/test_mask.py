"""Hand masks on real radiographs (cover hand and forearm, exclude labels) and synthetic ground truth."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from matcher.io import read_radiograph
from matcher.mask import WEIGHTS, classical_hand_mask, segment_hand
from training.synth.cohort import CohortConfig, plan_cohort, simulate
from training.synth.spec import builtin_specs

METHODS = ["classical"] + (["network"] if WEIGHTS.is_file() else [])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("method", METHODS)
def test_real_hands_masks_cover_hand_and_forearm_only(real_hands: list[Path], method: str) -> None:
    for path in real_hands:
        pixels = read_radiograph(path).pixels
        mask = segment_hand(pixels, method).mask > 0
        _h, _w = mask.shape
        count, _ = cv2.connectedComponents(mask.astype(np.uint8))
        assert count == 2, f"{path.name}: one region expected"
        assert 0.25 < mask.mean() < 0.65, f"{path.name}: area {mask.mean():.2f}"
        assert mask[-1].any(), f"{path.name}: the forearm should run off the bottom edge"
        assert not mask[0].any(), f"{path.name}: nothing above the fingertips"
        # the background (darkest decile outside the hand's hull) is excluded
        assert (pixels[mask] > np.percentile(pixels, 10)).mean() > 0.97


def test_label_and_ruler_are_excluded(real_hands: list[Path]) -> None:
    """real_hands/9.png has a white ruler/label near the bottom-right corner."""
    path = next(p for p in real_hands if p.name == "9.png")
    pixels = read_radiograph(path).pixels
    h, w = pixels.shape
    label = np.zeros_like(pixels, bool)
    label[int(0.6 * h) :, int(0.85 * w) :] = pixels[int(0.6 * h) :, int(0.85 * w) :] > 240
    assert label.sum() > 500, "fixture changed: the label is no longer there"
    for method in METHODS:
        assert not (segment_hand(pixels, method).mask[label] > 0).any(), method


@pytest.mark.parametrize("method", METHODS)
def test_synthetic_masks_match_ground_truth(method: str) -> None:
    specs = {s.id: s for s in builtin_specs()}
    scores = []
    for plan in plan_cohort(CohortConfig(n=12, out=Path("unused"), seed=17)):
        radiograph = simulate(plan, specs[plan.disorder], 512).radiograph
        pixels = (radiograph.image * 255).astype(np.uint8)
        scores.append(iou(segment_hand(pixels, method).mask, radiograph.mask))
    assert np.median(scores) > 0.93 and min(scores) > 0.6, np.round(scores, 3)


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="hand-mask weights not built")
def test_network_agrees_with_classical_on_real_hands(real_hands: list[Path]) -> None:
    scores = [iou(segment_hand(p := read_radiograph(r).pixels, "network").mask, classical_hand_mask(p)) for r in real_hands]
    assert np.median(scores) > 0.9 and min(scores) > 0.8, np.round(scores, 3)


def test_auto_uses_the_shipped_network_and_the_classical_mask_without_it(
    real_hands: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matcher.mask as mask_module

    assert WEIGHTS.is_file(), "the package must ship the hand-mask weights"
    pixels = read_radiograph(real_hands[0]).pixels
    auto, network = segment_hand(pixels), segment_hand(pixels, "network")
    assert auto.method == "network" and np.array_equal(auto.mask, network.mask)

    missing = mask_module.NetworkHandMasker(tmp_path / "missing.safetensors")
    monkeypatch.setattr(mask_module, "default_network", lambda: missing)  # an install without the weights
    without = segment_hand(pixels)
    assert without.method == "classical" and np.array_equal(without.mask, mask_module.film_aware_classical_mask(pixels))
    with pytest.raises(FileNotFoundError, match="hand-mask weights are missing"):
        segment_hand(pixels, "network")
