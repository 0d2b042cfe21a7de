"""The analysis pipeline on real and synthetic radiographs, with a model imported from the
Deeplasia fixtures (random weights: the numbers are finite and consistent, not medical)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from matcher.analysis import AnalysisOptions, Analyzer
from matcher.checkpoint import import_deeplasia, load_model
from matcher.io import read_radiograph
from matcher.mask import segment_hand
from matcher.preprocess import deeplasia_input


@pytest.fixture(scope="module")
def model_dir(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    checkpoint = shared_dir / "fixtures" / "deeplasia" / "new_b0_512_sexhead.ckpt"
    if not checkpoint.is_file():
        pytest.skip("Deeplasia fixture checkpoint absent")
    out = tmp_path_factory.mktemp("model")
    import_deeplasia(checkpoint, out)
    return out


@pytest.fixture(scope="module")
def analyzer(model_dir: Path) -> Analyzer:
    model, _ = load_model(model_dir)
    return Analyzer(model)


def test_every_real_hand_is_analysed(analyzer: Analyzer, real_hands: list[Path]) -> None:
    for path in real_hands:
        result = analyzer.analyze(path, sex="F", age_months=30)
        assert result.accepted, (path.name, result.reasons)
        assert np.isfinite(result.bone_age_months) and 0 < result.bone_age_months < 300
        assert result.bone_age_deviation_months == pytest.approx(result.bone_age_months - 30)
        assert result.embedding.shape == (256,) and abs(float(np.linalg.norm(result.embedding)) - 1) < 1e-5
        assert 0 <= result.male_probability <= 1
        assert {"read", "mask", "gate", "preprocess", "model", "total"} <= set(result.timings_ms)


def test_synthetic_dicom_supplies_sex_and_age(analyzer: Analyzer, render_cohort) -> None:
    tmp_path, manifest = render_cohort(n=3, seed=8, size=512, format="dicom")
    for _, row in manifest.iterrows():
        result = analyzer.analyze(tmp_path / row["image"])
        ds = pydicom.dcmread(tmp_path / row["image"])
        assert result.sex == ds.PatientSex and result.sex_source == "dicom"
        assert result.age_months is not None and abs(result.age_months - row["age_months"]) < 12
        assert result.accepted and np.isfinite(result.bone_age_months)


def test_refused_images_get_reasons_and_no_numbers(analyzer: Analyzer, tmp_path: Path) -> None:
    from PIL import Image
    from skimage import data

    Image.fromarray(data.camera()).save(tmp_path / "camera.png")
    result = analyzer.analyze(tmp_path / "camera.png", sex="M")
    assert not result.accepted and result.reasons and result.bone_age_months is None
    broken = analyzer.analyze(b"not an image")
    assert not broken.accepted and "not an image" in broken.reasons[0]


def test_sex_input_matters_and_predicted_sex_is_used_when_missing(analyzer: Analyzer, real_hands: list[Path]) -> None:
    boy = analyzer.analyze(real_hands[0], sex="M")
    girl = analyzer.analyze(real_hands[0], sex="F")
    assert boy.bone_age_months != girl.bone_age_months
    unknown = analyzer.analyze(real_hands[0])
    assert unknown.sex_source == "predicted" and unknown.sex in ("M", "F")


def test_tta_averages_ten_views_and_attention_maps_back(model_dir: Path, real_hands: list[Path]) -> None:
    model, _ = load_model(model_dir)
    plain = Analyzer(model).analyze(real_hands[1], sex="M")
    rich = Analyzer(model, AnalysisOptions(tta=True, attention=True)).analyze(real_hands[1], sex="M")
    assert rich.bone_age_months != plain.bone_age_months and abs(rich.bone_age_months - plain.bone_age_months) < 24
    attention = rich.attention
    assert attention is not None and attention.shape == read_radiograph(real_hands[1]).pixels.shape
    assert attention.min() >= 0.0 and attention.max() <= 1.0 and attention.max() > 0.5
    hand = segment_hand(read_radiograph(real_hands[1]).pixels).mask > 0
    assert attention[hand].mean() > 5 * attention[~hand].mean()  # drawn back onto the hand, not beside it


def test_similarity_map_to_another_case(analyzer: Analyzer, real_hands: list[Path]) -> None:
    other = analyzer.analyze(real_hands[2], sex="M").embedding
    pixels = read_radiograph(real_hands[3]).pixels
    prepared = deeplasia_input(pixels, segment_hand(pixels).mask)
    similarity = analyzer.similarity_map(prepared.tensor, 1.0, prepared.transform, other)
    assert similarity.shape == pixels.shape and similarity.max() > 0.5


def test_cli_analyze_json_and_overlay(bone2gene, model_dir: Path, real_hands: list[Path], tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.png"
    result = bone2gene(
        "analyze", str(real_hands[0]), "--sex", "F", "--age-months", "20", "--model", str(model_dir), "--json", "--overlay", str(overlay)
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["accepted"] is True and record["reasons"] == []
    assert {"bone_age_months", "male_probability", "timings_ms"} <= set(record)
    assert overlay.stat().st_size > 10_000
    # without --model: the bundled demo model, whose trained sex head fills in the missing sex;
    # a refused image beside it is still reported, and the exit status says a film was refused
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).save(tmp_path / "photo.png")
    bundled = bone2gene("analyze", str(real_hands[0]), str(tmp_path / "photo.png"), "--json")
    assert bundled.returncode == 1, bundled.stderr
    assert "1 of 2 image(s) refused by the quality gate: photo.png" in bundled.stderr
    record, photo = (json.loads(line) for line in bundled.stdout.strip().splitlines()[-2:])
    assert record["accepted"] is True and record["sex_source"] == "predicted" and record["sex_head_trained"] is True
    assert 0 < record["bone_age_months"] < 240
    assert photo["image"] == "photo.png" and photo["accepted"] is False and photo["reasons"]


def test_batch_embedding_matches_single_analysis_and_keeps_order(model_dir: Path, real_hands: list[Path], tmp_path: Path) -> None:
    from PIL import Image
    from skimage import data

    from matcher.batch import BatchItem, embed_many

    Image.fromarray(data.moon()).save(tmp_path / "moon.png")
    model, _ = load_model(model_dir)
    items = [BatchItem(real_hands[0], "F"), BatchItem(tmp_path / "moon.png", "M"), BatchItem(real_hands[4], "M")]
    results = embed_many(model, items, batch_size=2, workers=1)
    assert [r.path for r in results] == [i.path for i in items]
    assert [r.accepted for r in results] == [True, False, True] and results[1].reasons
    single = Analyzer(model).analyze(real_hands[4], sex="M")
    assert np.allclose(results[2].embedding, single.embedding, atol=1e-5)
    assert results[2].bone_age_months == pytest.approx(single.bone_age_months, abs=1e-3)


def test_channels_last_default_matches_the_contiguous_layout(model_dir: Path, real_hands: list[Path]) -> None:
    """The faster NHWC weights (the default) give the same answer as the plain layout."""
    fast = Analyzer(load_model(model_dir)[0]).analyze(real_hands[3], sex="F", age_months=100)
    plain = Analyzer(load_model(model_dir)[0], channels_last=False).analyze(real_hands[3], sex="F", age_months=100)

    def nhwc(analyzer: Analyzer) -> bool:
        weights = [p for p in analyzer.model.backbone.parameters() if p.dim() == 4]
        # strides, not is_contiguous: EfficientNet's 1x1 and depthwise kernels satisfy both layouts
        return all(p.stride() == (c * h * w, 1, w * c, c) for p in weights for _, c, h, w in [p.shape])

    assert nhwc(Analyzer(load_model(model_dir)[0])) and not nhwc(Analyzer(load_model(model_dir)[0], channels_last=False))
    assert np.allclose(fast.embedding, plain.embedding, atol=1e-4)
    assert fast.bone_age_months == pytest.approx(plain.bone_age_months, abs=1e-2)
    assert fast.male_probability == pytest.approx(plain.male_probability, abs=1e-4)
