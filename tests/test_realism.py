"""Does the synthetic cohort look like real radiographs? Coarse statistics against ../shared/real_hands.

Each statistic is computed the same way on real and synthetic images (grey levels in
[0, 1] at 512 px height; Otsu split into hand and background). The synthetic median must
fall inside the range of the real images. This is a floor, not proof of realism: the
montage in docs/ and the issue note say what still looks unreal.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from training.synth.cohort import CohortConfig, plan_cohort, simulate
from training.synth.realism import image_statistics
from training.synth.spec import builtin_specs


def test_synthetic_statistics_fall_within_the_real_range(real_hands: list[Path]) -> None:
    real = pd.DataFrame([image_statistics(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) / 255.0) for p in real_hands])
    specs = {s.id: s for s in builtin_specs()}
    plans = plan_cohort(CohortConfig(n=16, out=Path("unused"), seed=21))
    synthetic = pd.DataFrame([image_statistics(simulate(p, specs[p.disorder], 512).radiograph.image) for p in plans])
    report = pd.DataFrame({"real_min": real.min(), "real_max": real.max(), "synthetic_median": synthetic.median()})
    print("\n" + report.round(3).to_string())
    inside = (report["synthetic_median"] >= report["real_min"]) & (report["synthetic_median"] <= report["real_max"])
    assert inside.all(), f"synthetic cohort outside the real range:\n{report[~inside]}"


def test_statistics_measure_what_they_name() -> None:
    """A drawn 'hand' of known share, greys and texture: each statistic must recover it."""
    image = np.full((1000, 800), 0.1, np.float32)
    image[200:800, 160:640] = 0.7  # inside the 8% margin: 600 x 480 of the 840 x 672 kept
    flat = image_statistics(image)
    assert flat["hand_fraction"] == pytest.approx(600 * 480 / (840 * 672), abs=0.01)
    assert flat["hand_grey"] == pytest.approx(0.7, abs=0.01) and flat["background_grey"] == pytest.approx(0.1, abs=0.01)
    assert flat["fine_texture_x100"] < 1.0 and flat["hand_dynamic_range"] < 0.01  # only the blurred outline
    textured = image.copy()
    textured[200:800, 160:640] += np.random.default_rng(0).normal(0, 0.05, (600, 480)).astype(np.float32)
    textured[500:800, 160:640] += 0.2  # a brighter half: the hand's range grows
    rough = image_statistics(textured)
    assert rough["fine_texture_x100"] > 3 * flat["fine_texture_x100"] and rough["hand_dynamic_range"] > 0.2


@pytest.mark.parametrize("index", [0, 5])
def test_statistics_of_real_images_are_plausible(real_hands: list[Path], index: int) -> None:
    stats = image_statistics(cv2.imread(str(real_hands[index]), cv2.IMREAD_GRAYSCALE) / 255.0)
    assert 0.2 < stats["hand_fraction"] < 0.6 and stats["hand_grey"] > stats["background_grey"]


def test_realism_views_copy_every_film_as_the_rsna_copies_were_made(
    real_hands_labelled: tuple[list[Path], pd.DataFrame], rsna_100px: Path
) -> None:
    """The suite brings phantoms and atlas films to the RSNA copies' form: the same step applied to the
    full-resolution originals of RSNA films gives their 100-px copies, pixel for pixel."""
    from training.protocol.realism import rsna_copy

    for path in real_hands_labelled[0][:1]:
        copy = cv2.imread(str(rsna_100px / "images" / path.name), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(rsna_copy(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)), copy)


def test_the_film_style_processes_to_a_dark_field_with_the_hand_lower_in_the_frame() -> None:
    """What the film renderer changes about the image, on the same planned cases: the
    open field near black as on most development films, the fingertips further below the top edge."""
    specs = {s.id: s for s in builtin_specs()}
    plans = plan_cohort(CohortConfig(n=8, out=Path("unused"), seed=3))

    def looks(renderer: str) -> tuple[float, float]:
        sims = [simulate(p, specs[p.disorder], 256, renderer) for p in plans]
        background = np.median([image_statistics(s.radiograph.image)["background_grey"] for s in sims])
        top = np.median([np.argmax(s.radiograph.mask.any(axis=1)) / s.radiograph.mask.shape[0] for s in sims])
        return float(background), float(top)

    (classic_grey, classic_top), (film_grey, film_top) = looks("classic"), looks("film")
    assert film_grey < 0.15 < classic_grey
    assert film_top > classic_top + 0.03


def test_the_realism_classifier_tells_apart_what_differs_and_not_what_does_not() -> None:
    """Held-out AUC near 1 for two sets that differ (blobs with and without a bright bar), near 0.5 for two
    draws of the same set, each with an interval that says how sure it is."""
    from training.protocol.realism import Films, held_out_auc

    rng = np.random.default_rng(0)

    def films(n: int, bar: bool, tag: str) -> Films:
        views = rng.normal(size=(n, 32, 32)).astype(np.float32)  # small views: the classifier is size-free
        if bar:
            views[:, 14:18, 4:28] += 2.0
        return Films(
            (views - views.mean(axis=(1, 2), keepdims=True)) / views.std(axis=(1, 2), keepdims=True), [f"{tag}{i}" for i in range(n)]
        )

    different = held_out_auc(films(60, False, "a"), films(60, True, "b"))
    assert different["auc"] > 0.9 and different["interval"][0] > 0.75
    same = held_out_auc(films(60, False, "a"), films(60, False, "b"))
    assert same["interval"][0] < 0.5 + 0.25 and same["auc"] < 0.8


def test_an_unseen_real_site_tells_a_cohorts_own_cue_from_a_site_cue() -> None:
    """Trained on one site against a cohort, then an unseen site against the cohort's held-out films:
    a cue only the cohort has (a bright bar) still tells it apart (AUC near 1); a cue the unseen real
    site shares (a vertical bar) does not (near 0.5)."""
    from training.protocol.realism import Films, unseen_site_auc

    rng = np.random.default_rng(1)

    def films(n: int, tag: str, rows: slice = slice(0, 0), cols: slice = slice(0, 0)) -> Films:
        views = rng.normal(size=(n, 32, 32)).astype(np.float32)
        views[:, rows, cols] += 2.0
        return Films(views, [f"{tag}{i}" for i in range(n)])

    seen, unseen = films(30, "s"), films(30, "u", slice(4, 28), slice(14, 18))
    own_cue = unseen_site_auc(seen, unseen, films(40, "c", slice(14, 18), slice(4, 28)))
    site_cue = unseen_site_auc(seen, unseen, films(40, "d", slice(4, 28), slice(14, 18)))
    assert own_cue["auc"] > 0.9 and site_cue["auc"] < 0.75


def test_shaft_measures_tell_a_hollow_tube_from_a_flat_fill() -> None:
    """A rendered hollow shaft (cortex 4 px of a 20-px radius) reads as bright-rimmed; the same
    outline filled flat reads as no rim at all."""
    from matcher.hand_scheme import BONES
    from training.protocol.shaft_profiles import film_measures
    from training.synth.raster import PathMaps, Tube, draw_tube
    from training.synth.xray import Exposure, transmitted

    maps = PathMaps.empty((200, 120))
    draw_tube(maps, Tube("shaft", (60.0, 190.0), 0.0, 180.0, 20.0, 20.0, 20.0, cortex=4.0, prox_end="square", dist_end="square"))
    log_signal = -np.log(
        transmitted(np.full((200, 120), 40.0, np.float32), maps.cortical, maps.trabecular, Exposure.sample(np.random.default_rng(0)))
    )
    tube = ((log_signal - log_signal.min()) / np.ptp(log_signal) * 255).astype(np.uint8)
    flat = np.where(maps.cortical + maps.trabecular > 0, 200, 40).astype(np.uint8)
    points = np.full((37, 2), np.nan)
    for bone in BONES:
        if bone.name in ("MC2", "MC3"):
            points[bone.proximal], points[bone.distal] = (60.0, 180.0), (60.0, 20.0)
    hollow, filled = film_measures(tube, points), film_measures(flat, points)
    assert hollow["cortex_contrast"] > 0.2 and abs(filled["cortex_contrast"]) < 0.02
    assert filled["shaft_texture"] < 0.01
