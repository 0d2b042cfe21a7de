"""Disorders carried onto real hands: the warp moves each landmark where the spec's lengths put
it, within a pixel, and leaves the other rays where they were."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from matcher.bone_profile import bone_lengths
from matcher.hand_scheme import BONE_NAMES, RAYS
from training.synth.real_warp import WarpError, relative_factors, target_points, warp_hand
from training.synth.spec import PatientPhenotype, builtin_specs


@pytest.fixture(scope="module")
def atlas_film(shared_dir: Path):
    from training.landmark_data import dha_films

    if not (shared_dir / "dha" / "labels.csv").is_file():
        pytest.skip("../shared/dha is not present")
    return dha_films(shared_dir / "dha", ["3143"])[0]


def _blobs(shape: tuple[int, int], points: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    image = np.zeros(shape, np.float32)
    for x, y in points[np.isfinite(points).all(axis=1)]:
        image += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return image


def _centroid(image: np.ndarray, near: np.ndarray, radius: int = 7) -> np.ndarray:
    x0, y0 = int(np.rint(near[0])) - radius, int(np.rint(near[1])) - radius
    window = image[y0 : y0 + 2 * radius + 1, x0 : x0 + 2 * radius + 1].astype(float)
    yy, xx = np.mgrid[0 : window.shape[0], 0 : window.shape[1]]
    return np.array([(xx * window).sum() / window.sum() + x0, (yy * window).sum() / window.sum() + y0])


def test_a_spec_moves_its_rays_landmarks_within_a_pixel_and_leaves_the_others(atlas_film) -> None:
    """Turner syndrome's short MC4 on a real atlas hand: the ring finger's points move by the
    shortening, the metacarpal keeps its base, and the other rays do not move."""
    turner = next(s for s in builtin_specs() if s.id == "turner")
    rng = np.random.default_rng(3)
    phenotype = next(p for p in (PatientPhenotype.sample(turner, rng) for _ in range(50)) if p.at_age(12).length_factor["MC4"] < 0.95)
    lengths = phenotype.at_age(12).length_factor
    points = atlas_film.points.astype(float)
    blobs = _blobs(atlas_film.image.shape, points)
    warped = warp_hand(blobs, points, lengths)
    factors = relative_factors(lengths)
    before, after = bone_lengths(points), bone_lengths(warped.points.astype(float))
    assert np.allclose(after / before, [factors[b] for b in BONE_NAMES], atol=1e-6)  # every bone as the spec says
    moved = np.linalg.norm(warped.points - points, axis=1)
    ring = list(RAYS[4][1:])
    assert moved[ring].min() > 5  # the short MC4 pulls its whole finger back
    for i in range(len(points)):  # each blob (and its overlapping neighbours) carried to where the point went
        expected = _centroid(blobs, points[i]) + (warped.points[i] - points[i])
        found = _centroid(warped.image, warped.points[i])
        assert np.linalg.norm(found - expected) < 1.0, (i, found, expected)
    unchanged = [
        p for ray, chain in RAYS.items() for p in chain if all(abs(factors[b] - 1) < 1e-9 for b in BONE_NAMES if b[-1] == str(ray))
    ]
    assert np.allclose(warped.points[unchanged], points[unchanged])


def test_target_points_rebuild_each_ray_from_its_base() -> None:
    points = np.full((37, 2), np.nan)
    for ray, chain in RAYS.items():
        for k, p in enumerate(chain):
            points[p] = (100.0 * ray, 500.0 - 60.0 * k)  # straight rays pointing up
    moved = target_points(points, {"PP3": 0.5})
    middle = list(RAYS[3])
    assert np.allclose(moved[middle[:2]], points[middle[:2]]) and np.allclose(moved[middle[2:], 1] - points[middle[2:], 1], 30.0)
    assert np.allclose(moved[list(RAYS[2])], points[list(RAYS[2])])
    points[RAYS[5][-1]] = np.nan  # a fingertip not found: the film cannot carry a warp
    with pytest.raises(WarpError, match="missing"):
        warp_hand(np.zeros((600, 600), np.uint8), points, {"PP3": 0.5})


def test_a_warped_cohort_says_what_it_is(bone2gene, atlas_film, shared_dir: Path, tmp_path: Path) -> None:
    import cv2
    import pandas as pd

    from training.landmark_data import dha_split
    from training.synth.warped_cohort import real_film_path

    result = bone2gene("synth-warped", "--real", shared_dir, "--out", tmp_path / "w", "--n", "6", "--rsna-share", "0", "--seed", "1")
    assert result.returncode == 0, result.stderr
    manifest = pd.read_csv(tmp_path / "w" / "manifest.csv")
    assert len(manifest) == 6 and (manifest["source"] == "derived:warped-real").all()
    assert manifest["bone_age_months"].between(60, 240).all()  # the real film's readers' bone age rides along
    held_out = {f"real-dha:{i}" for i in dha_split(shared_dir / "dha")[1]}
    assert manifest["patient_id"].str.startswith("real-dha:").all() and not set(manifest["patient_id"]) & held_out  # never a test film
    warped = manifest[manifest["disorder"] != "unaffected"]
    assert len(warped) and (warped["carried"] == "length").all()
    for row in manifest.itertuples():
        image = cv2.imread(str(tmp_path / "w" / row.image), cv2.IMREAD_GRAYSCALE)
        source = cv2.imread(str(real_film_path(shared_dir, row.derived_from)), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(image, source) == (row.disorder == "unaffected")  # controls are the real film itself
    again = bone2gene("synth-warped", "--real", shared_dir, "--out", tmp_path / "w", "--n", "2")
    assert again.returncode == 2 and "already holds a cohort" in again.stderr
