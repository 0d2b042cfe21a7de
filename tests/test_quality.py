"""The quality gate: real hands pass; photographs, scenes, noise and bad radiographs are refused
with a reason; dysplastic hands (short fingers, extra digits, missing thumbs) are not refused."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from matcher.io import Radiograph, read_radiograph
from matcher.quality import GateVerdict, assess_quality
from training.synth.cohort import PlannedCase, simulate
from training.synth.spec import builtin_specs

SKIMAGE_NAMES = [
    "astronaut",
    "brick",
    "camera",
    "cat",
    "cell",
    "checkerboard",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "shepp_logan_phantom",
    "text",
]


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def gate(source: bytes | Path) -> GateVerdict:
    return assess_quality(read_radiograph(source))


def skimage_png(name: str) -> bytes:
    from skimage import data

    array = getattr(data, name)()
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).astype(np.uint8) if array.max() <= 1 else array.astype(np.uint8)
    return png_bytes(array)


def test_gate_counts_on_real_hands_and_non_hands(real_hands: list[Path]) -> None:
    real = {p.name: gate(p) for p in real_hands}
    rng = np.random.default_rng(0)
    others = {name: gate(skimage_png(name)) for name in SKIMAGE_NAMES}
    others["uniform noise"] = gate(png_bytes(rng.integers(0, 256, (600, 500), dtype=np.uint8)))
    others["smooth noise"] = gate(png_bytes(cv2.GaussianBlur(rng.integers(0, 256, (600, 500), dtype=np.uint8), (0, 0), 8)))
    accepted_real = sum(v.accepted for v in real.values())
    refused_other = sum(not v.accepted for v in others.values())
    print(f"\nreal hands accepted {accepted_real}/{len(real)}; non-hand images refused {refused_other}/{len(others)}")
    for name, verdict in others.items():
        print(f"  {name:22s} {','.join(verdict.codes)}")
    assert accepted_real == len(real), {n: v.reasons for n, v in real.items() if not v.accepted}
    assert refused_other == len(others), [n for n, v in others.items() if v.accepted]
    assert all(v.reasons and all(r.strip() for r in v.reasons) for v in others.values())


@pytest.fixture(scope="module")
def hand(real_hands: list[Path]) -> np.ndarray:
    return cv2.imread(str(real_hands[2]), cv2.IMREAD_GRAYSCALE)


@pytest.mark.parametrize(
    ("transform", "code"),
    [
        (lambda h: np.hstack([h, h]), "several_objects"),
        (lambda h: h[int(h.shape[0] * 0.2) :], "cut_off"),
        (lambda h: h[:, : int(h.shape[1] * 0.6)], "cut_off"),
        (lambda h: np.full_like(h, 128), "blank"),
        (lambda h: np.clip(h.astype(int) * 3, 0, 255).astype(np.uint8), "exposure"),
    ],
    ids=["two hands", "fingers cut", "side cut", "blank", "over-exposed"],
)
def test_unusable_radiographs_are_refused_for_the_right_reason(hand: np.ndarray, transform, code: str) -> None:
    verdict = gate(png_bytes(transform(hand)))
    assert not verdict.accepted and code in verdict.codes, (verdict.codes, verdict.measurements)


@pytest.mark.parametrize("turn", [lambda h: np.rot90(h), lambda h: h[::-1]], ids=["rotated 90", "upside down"])
def test_a_rotated_hand_is_accepted_with_a_warning(hand: np.ndarray, turn) -> None:
    """Real films come sideways and upside down (the RSNA set has them): usable, but said."""
    verdict = gate(png_bytes(np.ascontiguousarray(turn(hand))))
    assert verdict.accepted, verdict.reasons
    assert any("rotated" in w for w in verdict.warnings), verdict.measurements
    assert not gate(png_bytes(hand)).warnings


def test_colour_photograph_refused_but_grey_rgb_and_tinted_photo_of_film_pass(hand: np.ndarray) -> None:
    from skimage import data

    photo = gate(png_bytes(data.astronaut()))
    assert "colour_photograph" in photo.codes
    grey_rgb = gate(png_bytes(np.stack([hand] * 3, axis=-1)))
    tinted = np.stack([hand * 0.97, hand * 1.0, hand * 0.90], axis=-1).clip(0, 255).astype(np.uint8)
    phone = gate(png_bytes(tinted))
    assert grey_rgb.accepted and phone.accepted, (grey_rgb.reasons, phone.reasons)


def test_the_gate_does_not_refuse_dysplastic_hands() -> None:
    """One synthetic child per disorder: short fingers, extra digits, absent thumbs all pass."""
    refused = {}
    for k, spec in enumerate(builtin_specs()):
        low, high = spec.age_years
        plan = PlannedCase("q", "q", spec.id, "F" if spec.female_fraction == 1.0 else "M", min(max(8.0, low), high), 40 + k, 80 + k)
        image = simulate(plan, spec, 640).radiograph.image
        verdict = gate(png_bytes((image * 255).astype(np.uint8)))
        if not verdict.accepted:
            refused[spec.id] = verdict.codes
    assert not refused, refused


def test_measurements_are_reported(real_hands: list[Path]) -> None:
    verdict = gate(real_hands[0])
    assert {"dynamic_range", "hand_fraction", "finger_gaps", "rotation_deg", "cut_fraction"} <= set(verdict.measurements)


def _jpeg_rgb(grey: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "export",
    [
        lambda h: np.pad(h, ((0, 0), (h.shape[1], h.shape[1]))),  # landscape, hand in a third of the width, black around
        lambda h: np.pad(h, ((60, 60), (60, 60)), constant_values=255),  # white surroundings
        lambda h: np.pad(h, ((40, 40), (40, 40)), constant_values=110),  # grey border
        lambda h: np.ascontiguousarray(h[:, ::-1]),  # the other hand
        lambda h: np.clip(h.astype(int) - 40, 0, 255).astype(np.uint8),  # darker export
    ],
    ids=["landscape on black", "white surroundings", "grey border", "mirrored", "darker"],
)
def test_real_exports_are_accepted(hand: np.ndarray, export) -> None:
    """What real exports look like (issue 13): surroundings and frames are not faults."""
    verdict = gate(png_bytes(export(hand)))
    assert verdict.accepted, (verdict.reasons, verdict.measurements)


def test_rgb_jpeg_and_hand_on_pure_black_are_accepted(hand: np.ndarray) -> None:
    from matcher.mask import segment_hand

    assert gate(_jpeg_rgb(hand)).accepted
    masked = np.where(segment_hand(hand).mask > 0, hand, 0).astype(np.uint8)  # a preprocessed hand on pure black
    verdict = gate(png_bytes(masked))
    assert verdict.accepted, (verdict.reasons, verdict.measurements)


@pytest.mark.parametrize("film", [2148, 3863], ids=["rsna-2148", "rsna-3863"])
def test_a_faint_hand_is_refused_as_low_contrast_and_passes_once_windowed_on_the_hand(rsna_100px: Path, film: int) -> None:
    """Two real RSNA films whose hands barely stand out from a grey surround: the refusal names the
    contrast (not "no hand"), and what it asks for (a window set on the hand) makes them pass."""
    raw = cv2.imread(str(rsna_100px / "images" / f"{film}.png"), cv2.IMREAD_GRAYSCALE)
    verdict = gate(png_bytes(raw))
    assert verdict.codes == ["low_contrast"], (verdict.codes, verdict.measurements)
    assert "window set on the hand" in verdict.reasons[0] and "needed" in verdict.reasons[0]
    # a viewer's window on the hand: the surround (most of the film, so its median) to black
    low, high = np.percentile(raw, [50, 99.5])
    windowed = np.clip((raw.astype(np.float32) - low) / (high - low) * 255, 0, 255).astype(np.uint8)
    again = gate(png_bytes(windowed))
    assert again.accepted, (again.codes, again.measurements)


@pytest.fixture(scope="module")
def atlas(shared_dir: Path) -> Path:
    from matcher.hand_measure import bundled_measurer

    if not (shared_dir / "dha" / "labels.csv").is_file():
        pytest.skip("../shared/dha is not present")
    if bundled_measurer() is None:
        pytest.skip("no landmark model installed")
    return shared_dir / "dha"


def test_a_hand_filling_the_frame_is_whole_by_its_landmarks(atlas: Path) -> None:
    """Atlas film 3776: an adult hand framed so tightly that the mask takes it for no hand at all."""
    radiograph = read_radiograph(atlas / "images" / "3776.jpg")
    assert assess_quality(radiograph, landmarks=None).codes == ["no_hand"]  # the mask alone
    verdict = assess_quality(radiograph)
    assert verdict.accepted and verdict.measurements["whole_by_landmarks"] == 1.0, (verdict.reasons, verdict.measurements)


def test_a_tightly_framed_hand_is_whole_and_a_cut_finger_is_named(atlas: Path) -> None:
    """A held-out atlas film framed tightly (the top edge at its middle fingertip, the sides 10 px
    beyond its outermost landmarks: the mask sees tissue leave by three edges) is accepted;
    cut through the middle finger's proximal joint, it is refused and the cut fingers are named."""
    from training.landmark_data import dha_films, dha_split

    film = dha_films(atlas, dha_split(atlas)[1][:1])[0]
    left, right = int(np.nanmin(film.points[:, 0])) - 10, int(np.nanmax(film.points[:, 0])) + 10
    tight = Radiograph.from_pixels(film.image[int(film.points[28, 1]) :, left:right])  # 28: middle fingertip
    assert not assess_quality(tight, landmarks=None).accepted  # the mask alone: cut off
    verdict = assess_quality(tight)
    assert verdict.accepted and verdict.measurements["whole_by_landmarks"] == 1.0, (verdict.reasons, verdict.measurements)
    cut = gate(png_bytes(film.image[int(film.points[26, 1]) :]))  # 26: middle PIP joint
    assert cut.codes == ["cut_off"] and "middle finger" in cut.reasons[0], (cut.reasons, cut.measurements)
