"""Rendered radiographs: X-ray contrast order, masks, poses, and disorder signs in the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from training.synth.cohort import PlannedCase, Simulation, simulate
from training.synth.spec import builtin_specs

SPECS = {s.id: s for s in builtin_specs()}


def sim(disorder: str, age: float = 9.0, sex: str = "M", seed: int = 1, size: int = 512) -> Simulation:
    plan = PlannedCase("syn-t", "synp-t", disorder, sex, age, patient_seed=seed, image_seed=seed + 100)
    return simulate(plan, SPECS[disorder], size)


def bone_midpoints(s: Simulation, names: tuple[str, ...]) -> list[tuple[int, int]]:
    points = []
    for bone in s.layout.bones:
        if bone.name in names:
            mid = ((bone.start[0] + bone.end[0]) / 2, (bone.start[1] + bone.end[1]) / 2)
            x, y = s.frame.point(mid)
            points.append((round(y), round(x)))
    return points


def test_image_range_shape_and_pixel_spacing() -> None:
    s = sim("unaffected")
    image = s.radiograph.image
    assert image.dtype == np.float32 and image.shape[0] == 512 and 0.74 * 512 <= image.shape[1] <= 0.89 * 512
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert 0.05 < s.radiograph.pixel_spacing_mm < 1.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bone_is_brighter_than_soft_tissue_which_is_brighter_than_background(seed: int) -> None:
    s = sim("unaffected", age=10, seed=seed)
    image, mask = s.radiograph.image, s.radiograph.mask > 0
    shafts = bone_midpoints(s, ("MC2", "MC3", "MC4", "PP3"))
    bone = np.median([image[y, x] for y, x in shafts])
    hand_only = mask.copy()
    # soft tissue: inside the mask but away from every bone primitive (by their boxes)
    soft_values = image[hand_only & (image < np.percentile(image[hand_only], 30))]
    background = np.median(image[~mask & (image < 0.9)])  # excluding white collimation/markers
    assert bone > np.median(soft_values) > background


def test_mask_covers_every_hand_bone_and_excludes_annotations() -> None:
    for seed in range(6):
        s = sim("unaffected", age=8, seed=seed)
        mask = s.radiograph.mask > 0
        for y, x in bone_midpoints(s, tuple(b.name for b in s.layout.bones if b.name not in ("radius", "ulna"))):
            assert mask[y, x], f"seed {seed}: bone midpoint outside the hand mask"
        assert (mask & (s.radiograph.image > 0.975)).mean() < 0.01  # no markers/labels inside
        assert mask.mean() > 0.15 and (~mask).mean() > 0.1


def test_fingertips_are_inside_the_image() -> None:
    for seed in range(8):
        s = sim("unaffected", age=6, seed=seed)
        top_rows = s.radiograph.mask[:2]
        assert not top_rows.any(), f"seed {seed}: the hand touches the top edge"


def test_same_seed_same_pixels_other_seed_other_pixels() -> None:
    a, b, c = sim("turner", sex="F", seed=5), sim("turner", sex="F", seed=5), sim("turner", sex="F", seed=6)
    assert np.array_equal(a.radiograph.image, b.radiograph.image)
    assert not np.array_equal(a.radiograph.image, c.radiograph.image)


def test_bone_age_drives_visible_carpals() -> None:
    infant = sim("unaffected", age=0.4, seed=2)
    teen = sim("unaffected", age=13, seed=2)
    assert set(infant.layout.carpals) <= {"capitate", "hamate"}
    assert len(teen.layout.carpals) == 8


def bones_of(s: Simulation) -> dict[str, float]:
    return {b.name: b.length_mm for b in s.layout.bones}


def test_disorder_signs_reach_the_geometry() -> None:
    evc = sim("ellis_van_creveld", seed=4)
    assert {"MC6", "PP6"} & set(bones_of(evc)) or "PP6" in bones_of(evc)
    absent = next(sim("holt_oram", seed=k) for k in range(40) if sim("holt_oram", seed=k).phenotype.thumb == "absent")
    assert "MC1" not in bones_of(absent)
    bda1, control = sim("brachydactyly_a1", seed=7), sim("unaffected", seed=7)

    def ratio(s):
        return bones_of(s)["MP3"] / bones_of(s)["PP3"]

    assert ratio(bda1) < 0.75 * ratio(control)
    bde = sim("brachydactyly_e", seed=7)
    assert bones_of(bde)["MC4"] / bones_of(bde)["MC3"] < bones_of(control)["MC4"] / bones_of(control)["MC3"] - 0.05


def cortical_contrast(s: Simulation) -> float:
    image = s.radiograph.image
    values = [image[y, x] for y, x in bone_midpoints(s, ("MC2", "MC3", "MC4"))]
    soft = np.percentile(image[s.radiograph.mask > 0], 20)
    return float(np.median(values) - soft)


def test_osteogenesis_imperfecta_has_less_bone_contrast_than_controls() -> None:
    """Thin cortices and low density show as fainter metacarpals, same pose and exposure.

    The processing auto-ranges on the anatomy (as CR systems do), which hides part of a
    density difference; the thinner cortex still shows in every paired case.
    """
    oi = [cortical_contrast(sim("osteogenesis_imperfecta", seed=k)) for k in range(6)]
    ctrl = [cortical_contrast(sim("unaffected", seed=k)) for k in range(6)]
    assert all(o < c for o, c in zip(oi, ctrl, strict=True))
    assert np.mean(oi) < 0.95 * np.mean(ctrl)


def test_madelung_tilts_the_radius_in_older_shox_patients() -> None:
    s = sim("shox_deficiency", age=14, sex="F", seed=3)
    radius = next(t for t in s.layout.tubes if t.name == "radius")
    control = next(t for t in sim("unaffected", age=14, sex="F", seed=3).layout.tubes if t.name == "radius")
    assert np.degrees(radius.end_tilt) > np.degrees(control.end_tilt) + 5


def test_a_shaft_projects_brightest_at_its_cortices_and_the_beam_falls_as_beer_lambert_says() -> None:
    """The renderer's physics: a straight tubular bone (a hollow cylinder) seen across its shaft is
    densest (brightest once log-transformed) where the beam grazes the cortex, darker over the
    medulla; and through a slab the transmitted share falls as exp(-mu t)."""
    from training.synth.raster import PathMaps, Tube, draw_tube
    from training.synth.xray import Exposure, transmitted

    exposure = Exposure.sample(np.random.default_rng(0))
    maps = PathMaps.empty((200, 120))
    draw_tube(maps, Tube("shaft", (60.0, 190.0), 0.0, 180.0, 20.0, 20.0, 20.0, cortex=4.0, prox_end="square", dist_end="square"))
    row = -np.log(transmitted(np.full((200, 120), 40.0, np.float32), maps.cortical, maps.trabecular, exposure))[100]
    across = row[35:86]  # the shaft spans x = 40..80
    peaks = np.sort(np.argsort(across)[-2:]) + 35
    assert abs(peaks[0] - (40 + 2)) <= 2 and abs(peaks[1] - (80 - 2)) <= 2  # at the cortices, 2 px inside the edges
    assert row[60] < row[peaks].min() - 0.05 and row[60] > row[20] + 0.05  # medulla darker than cortex, brighter than soft tissue
    thickness = np.linspace(0, 60, 7, dtype=np.float32)[:, None]
    zero = np.zeros_like(thickness)
    share = transmitted(thickness, zero, zero, exposure)[:, 0]
    assert np.allclose(share, np.exp(-exposure.mu_soft * thickness[:, 0]), rtol=1e-5)
    assert np.allclose(np.diff(np.log(share)), -exposure.mu_soft * 10, rtol=1e-4)  # equal steps of thickness, equal steps of log


def test_the_film_renderer_gives_the_medulla_an_oriented_trabecular_pattern() -> None:
    """With grain, a shaft's marrow path varies, more across the shaft than along it (trabeculae run
    along the bone); its cortex is untouched, and without grain nothing changes."""
    from training.synth.raster import PathMaps, Tube, draw_tube

    def shaft(grain: float) -> PathMaps:
        maps = PathMaps.empty((240, 120))
        draw_tube(
            maps,
            Tube(
                "shaft", (60.0, 230.0), 0.0, 220.0, 24.0, 24.0, 24.0, cortex=4.0, prox_end="square", dist_end="square", grain=grain, seed=5
            ),
        )
        return maps

    plain, grained = shaft(0.0), shaft(1.0)
    assert np.array_equal(plain.cortical, grained.cortical)
    medulla = (slice(60, 180), slice(48, 72))
    pattern = (grained.trabecular - plain.trabecular)[medulla]
    assert pattern.std() > 0.3 * plain.trabecular[medulla].mean()  # a pattern of the marrow's own order
    along, across = np.abs(np.diff(pattern, axis=0)).mean(), np.abs(np.diff(pattern, axis=1)).mean()
    assert across > 1.5 * along


def test_the_film_renderer_gives_round_bones_an_unoriented_trabecular_pattern() -> None:
    """A carpal with grain: its interior varies as much up as across (no long axis), its rim is untouched."""
    from training.synth.raster import Disc, PathMaps, draw_disc

    def carpal(grain: float) -> PathMaps:
        maps = PathMaps.empty((120, 120))
        draw_disc(maps, Disc("capitate", (60.0, 60.0), 0.0, 40.0, 40.0, 20.0, grain=grain, seed=3))
        return maps

    plain, grained = carpal(0.0), carpal(1.0)
    assert np.array_equal(plain.cortical, grained.cortical)
    inside = (slice(40, 80), slice(40, 80))
    pattern = (grained.trabecular - plain.trabecular)[inside]
    assert pattern.std() > 0.3 * plain.trabecular[inside].mean()
    along, across = np.abs(np.diff(pattern, axis=0)).mean(), np.abs(np.diff(pattern, axis=1)).mean()
    assert 0.6 < across / along < 1.6


def test_equalisation_takes_out_the_broad_thickness_of_thick_parts_and_keeps_their_detail() -> None:
    """The film renderer's CR/DR processing: a thick forearm's broad excess over the anatomy's median
    is partly removed; thin parts and the fine detail of a bone edge inside the thick part stay."""
    from training.synth.xray import equalise_thick_parts

    log_signal = np.full((200, 200), 0.5, np.float32)
    log_signal[:, 100:] = 2.0  # a thick part
    log_signal[:, 150:152] += 0.3  # a bone edge inside it
    mask = np.full((200, 200), 255, np.uint8)
    out = equalise_thick_parts(log_signal, mask, share=0.5, px_per_mm=2.0)
    assert np.allclose(out[:, :60], log_signal[:, :60], atol=1e-3)  # thin parts untouched
    assert out[100, 180] < log_signal[100, 180] - 0.3  # the thick part's level comes down
    edge = lambda image: float(image[100, 150] - image[100, 146])  # noqa: E731
    assert edge(out) == pytest.approx(edge(log_signal), abs=0.05)  # the detail inside it stays


def test_the_film_renderer_frames_the_hand_large_and_keeps_the_wrist_on_the_film() -> None:
    from training.synth.xray import MAX_REACH

    for k in range(12):
        plan = PlannedCase("c", "p", "unaffected", "M", 4.0 + k, 500 + k, 600 + k)
        sim = simulate(plan, SPECS["unaffected"], 128, renderer="film")
        height = sim.radiograph.image.shape[0]
        assert sim.frame.point(sim.layout.wrist)[1] <= MAX_REACH * height + 1.0, k


def test_some_film_phantoms_are_scanned_films_on_a_light_box_and_pass_the_gate() -> None:
    """About a fifth of the development films are a film scanned on a light box; so are the film
    renderer's phantoms now and then: a tilted film with a bright clear edge in a dark surround, the
    hand and its mask inside the film, and the quality gate reads them as hands."""
    import tempfile
    from pathlib import Path

    from matcher.io import read_radiograph
    from matcher.mask import segment_hand
    from matcher.quality import assess_quality
    from training.synth.writers import write_png

    scanned = []
    for k in range(40):
        s = simulate(PlannedCase("c", "p", "unaffected", "F", 6.0 + k % 10, 700 + k, 800 + k), SPECS["unaffected"], 256, renderer="film")
        if s.frame.film_scan is not None:
            scanned.append(s)
    assert 3 <= len(scanned) <= 15  # a fifth of 40, give or take
    assert all(sim("unaffected", seed=k).frame.film_scan is None for k in range(5))  # the classic renderer: never
    for s in scanned[:3]:
        film = s.frame.film_scan.inside(s.radiograph.image.shape)
        assert not (s.radiograph.mask[film == 0] > 0).any()  # the hand ends at the film
        assert np.median(s.radiograph.image[film == 0]) < 0.25  # a dark surround
    with tempfile.TemporaryDirectory() as tmp:
        for i, s in enumerate(scanned[:3]):
            write_png(Path(tmp) / f"{i}.png", s.radiograph.image, 8)
            radiograph = read_radiograph(Path(tmp) / f"{i}.png")
            assert assess_quality(radiograph, segment_hand(radiograph.pixels)).accepted, i
