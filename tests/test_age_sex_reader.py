"""An encoder with an age and sex reader (`Bone2GeneModel.attach_reader`): bone age and sex come
from the reader's own forward pass on its own input, the embedding from the encoder, and the
reader is stored beside the encoder's weights so that galleries keep their fingerprint."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from matcher.analysis import AnalysisOptions, Analyzer
from matcher.batch import BatchItem, embed_many
from matcher.checkpoint import AGE_SEX_READER_DIR, ModelFormatError, amend_config, load_model, read_card, save_model
from matcher.io import read_radiograph
from matcher.model import Bone2GeneModel, ModelConfig


def _model(seed: int, **config) -> Bone2GeneModel:
    torch.manual_seed(seed)
    return Bone2GeneModel(ModelConfig(**config)).eval()


@pytest.fixture(scope="module")
def encoder_and_reader() -> tuple[Bone2GeneModel, Bone2GeneModel]:
    encoder = _model(1, input_size=256)
    reader = _model(2, input_size=100, preprocessing="film", sex_head_trained=True)
    return encoder, reader


@pytest.fixture(scope="module")
def bundle(encoder_and_reader: tuple[Bone2GeneModel, Bone2GeneModel]) -> Bone2GeneModel:
    """Copies of the encoder with the reader attached."""
    encoder, reader = (copy.deepcopy(m) for m in encoder_and_reader)
    encoder.attach_reader(reader)
    return encoder


@pytest.fixture(scope="module")
def images(small_cohort: tuple[Path, pd.DataFrame]) -> list[tuple[Path, str]]:
    root, manifest = small_cohort
    rows = manifest.head(3)
    return [(root / path, sex) for path, sex in zip(rows["image"], rows["sex"], strict=True)]


def test_a_reader_is_stored_beside_the_weights_and_leaves_the_fingerprint_alone(
    encoder_and_reader: tuple[Bone2GeneModel, Bone2GeneModel], tmp_path: Path
) -> None:
    encoder, reader = encoder_and_reader
    alone = save_model(encoder, tmp_path / "alone")
    encoder.attach_reader(reader)
    try:
        with_reader = save_model(encoder, tmp_path / "bundle", reader_provenance={"trained_on": "real films"})
    finally:
        encoder.attach_reader(None)
    assert with_reader == alone  # galleries built with the encoder stay valid
    card = read_card(tmp_path / "bundle")
    assert card.age_sex_reader is not None and card.age_sex_reader.provenance["trained_on"] == "real films"
    assert card.age_sex_reader.config.preprocessing == "film"
    loaded, _ = load_model(tmp_path / "bundle")
    assert loaded.age_sex_reader is not None
    for name, tensor in reader.state_dict().items():
        assert torch.equal(loaded.age_sex_reader.state_dict()[name], tensor), name
    save_model(loaded.__class__(loaded.config), tmp_path / "bundle")  # saving an encoder without a reader removes the stale one
    assert not (tmp_path / "bundle" / AGE_SEX_READER_DIR).exists() and read_card(tmp_path / "bundle").age_sex_reader is None


def test_a_damaged_reader_is_refused_with_its_path(
    encoder_and_reader: tuple[Bone2GeneModel, Bone2GeneModel], bundle: Bone2GeneModel, tmp_path: Path
) -> None:
    encoder, reader = encoder_and_reader
    encoder.attach_reader(reader)
    try:
        save_model(encoder, tmp_path / "bundle")
    finally:
        encoder.attach_reader(None)
    weights = tmp_path / "bundle" / AGE_SEX_READER_DIR / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"damaged!")
    with pytest.raises(ValueError, match=AGE_SEX_READER_DIR):
        load_model(tmp_path / "bundle")
    with pytest.raises(ValueError, match="reader of its own"):
        _model(3, input_size=256).attach_reader(bundle)


@pytest.mark.parametrize("tta", [False, True])
def test_bone_age_and_sex_come_from_the_reader_and_the_embedding_from_the_encoder(
    encoder_and_reader: tuple[Bone2GeneModel, Bone2GeneModel], bundle: Bone2GeneModel, images: list[tuple[Path, str]], tta: bool
) -> None:
    encoder, reader = encoder_and_reader
    path, sex = images[0]
    options = AnalysisOptions(tta=tta)
    plain = Analyzer(encoder, options, channels_last=False).analyze(path, sex=sex)
    only_reader = Analyzer(reader, options, channels_last=False).analyze(path, sex=sex)
    both = Analyzer(bundle, options, channels_last=False).analyze(path, sex=sex)
    assert both.accepted and plain.accepted and only_reader.accepted
    assert np.allclose(both.embedding, plain.embedding, atol=1e-5)
    assert both.bone_age_months == pytest.approx(only_reader.bone_age_months, abs=1e-3)
    assert both.male_probability == pytest.approx(only_reader.male_probability, abs=1e-5)
    assert both.bone_age_months != pytest.approx(plain.bone_age_months, abs=1e-3)
    assert both.age_input is not None and both.age_input.shape == (1, 100, 100)
    assert both.sex_head_trained  # the reader's sex head counts, not the encoder's
    attention = Analyzer(bundle, options, channels_last=False).attention_for(both)
    assert attention.shape == read_radiograph(path).pixels.shape and attention.min() >= 0.0 and attention.max() <= 1.0


def test_without_a_given_sex_the_reader_decides_it(
    encoder_and_reader: tuple[Bone2GeneModel, Bone2GeneModel], bundle: Bone2GeneModel, images: list[tuple[Path, str]]
) -> None:
    _, reader = encoder_and_reader
    path, _ = images[1]
    result = Analyzer(bundle, channels_last=False).analyze(path)
    alone = Analyzer(reader, channels_last=False).analyze(path)
    assert result.accepted and result.sex_source == "predicted" and result.sex == alone.sex
    assert result.bone_age_months == pytest.approx(alone.bone_age_months, abs=1e-3)


@pytest.fixture(scope="module")
def mirror_bundle(bundle: Bone2GeneModel) -> Bone2GeneModel:
    """The bundle with a reader that reads each input and its mirror image, averaged."""
    return _reader_set(bundle, mirror_average=True)


def _reader_set(bundle: Bone2GeneModel, mirror_average: bool, age_sd_factor: float = 1.0) -> Bone2GeneModel:
    """A copy of `bundle` whose reader has `mirror_average` set and its age scale widened by `age_sd_factor`."""
    changed = copy.deepcopy(bundle)
    assert changed.age_sex_reader is not None
    config = changed.age_sex_reader.config
    scale = dataclasses.replace(config.calibration, age_sd=config.calibration.age_sd * age_sd_factor)
    changed.age_sex_reader.config = dataclasses.replace(config, mirror_average=mirror_average, calibration=scale)
    return changed


def test_a_mirror_averaging_reader_gives_the_mean_of_the_input_and_its_mirror(
    bundle: Bone2GeneModel, images: list[tuple[Path, str]]
) -> None:
    # an untrained head reads the two views a hair apart: its age scale is widened a million-fold to see them apart
    path, sex = images[0]
    one_view, two_views = _reader_set(bundle, False, 1e6), _reader_set(bundle, True, 1e6)
    plain = Analyzer(one_view, channels_last=False).analyze(path, sex=sex)
    mirrored = Analyzer(two_views, channels_last=False).analyze(path, sex=sex)
    reader = two_views.age_sex_reader
    assert reader is not None and mirrored.age_input is not None
    pair = torch.from_numpy(np.stack([mirrored.age_input, mirrored.age_input[:, :, ::-1].copy()]))
    with torch.inference_mode():
        out = reader(pair, torch.full((2, 1), float(sex == "M")))
    expected = reader.config.calibration.months(out.bone_age_raw.numpy())
    assert abs(expected[0] - expected[1]) > 5.0  # the two views read apart
    assert mirrored.bone_age_months == pytest.approx(float(expected.mean()), abs=1.0)
    assert plain.bone_age_months == pytest.approx(float(expected[0]), abs=1.0)  # without the setting: the input alone
    assert mirrored.male_probability == pytest.approx(float(torch.sigmoid(out.sex_logit).mean()), abs=1e-5)
    assert np.allclose(mirrored.embedding, plain.embedding, atol=1e-6)  # the encoder's setting, not the reader's


@pytest.mark.parametrize("mirror", [False, True])
def test_batches_read_bone_age_and_sex_like_single_analyses(
    bundle: Bone2GeneModel, mirror_bundle: Bone2GeneModel, images: list[tuple[Path, str]], mirror: bool
) -> None:
    model = mirror_bundle if mirror else bundle
    batch = embed_many(model, [BatchItem(p, s) for p, s in images], batch_size=2, workers=0, channels_last=False)
    for (path, sex), row in zip(images, batch, strict=True):
        single = Analyzer(model, channels_last=False).analyze(path, sex=sex)
        assert row.accepted and np.allclose(row.embedding, single.embedding, atol=1e-4)
        assert row.bone_age_months == pytest.approx(single.bone_age_months, abs=1e-2)
        assert row.male_probability == pytest.approx(single.male_probability, abs=1e-4)


def test_embedding_only_batches_skip_the_reader_and_keep_the_embeddings(bundle: Bone2GeneModel, images: list[tuple[Path, str]]) -> None:
    """What the evaluation suites read: the same embeddings, no bone age or sex, the reader never run."""
    items = [BatchItem(p, s) for p, s in images]
    full = embed_many(bundle, items, batch_size=2, workers=0)
    calls: list[int] = []
    hook = bundle.age_sex_reader.register_forward_hook(lambda *_: calls.append(1))
    try:
        only = embed_many(bundle, items, batch_size=2, workers=0, embedding_only=True)
    finally:
        hook.remove()
    assert not calls and all(r.bone_age_months is None and r.male_probability is None for r in only)
    assert all(np.array_equal(a.embedding, b.embedding) for a, b in zip(full, only, strict=True))


def test_amending_a_config_keeps_the_weights_and_refuses_what_it_cannot_hold(
    encoder_and_reader: tuple[Bone2GeneModel, Bone2GeneModel], tmp_path: Path, bone2gene
) -> None:
    encoder, reader = encoder_and_reader
    encoder.attach_reader(reader)
    try:
        fingerprint = save_model(encoder, tmp_path / "bundle")
    finally:
        encoder.attach_reader(None)
    reader_dir = tmp_path / "bundle" / AGE_SEX_READER_DIR
    weights, before = (reader_dir / "model.safetensors").read_bytes(), (reader_dir / "config.json").read_text()
    with pytest.raises(ModelFormatError, match="'mirror' is not a field"):
        amend_config(reader_dir, {"mirror": True}, "typo")
    with pytest.raises(ModelFormatError, match="mirror_average takes a bool"):
        amend_config(reader_dir, {"mirror_average": "yes"}, "wrong type")
    assert (reader_dir / "config.json").read_text() == before  # refused before anything was written
    config = amend_config(reader_dir, {"mirror_average": True}, "chosen on development films")
    assert config.mirror_average and (reader_dir / "model.safetensors").read_bytes() == weights
    card = read_card(tmp_path / "bundle")
    assert card.fingerprint == fingerprint and card.age_sex_reader is not None and card.age_sex_reader.config.mirror_average
    assert card.age_sex_reader.provenance["amended"][-1]["why"] == "chosen on development films"
    loaded, _ = load_model(tmp_path / "bundle")  # the fingerprint check still passes
    assert loaded.age_sex_reader is not None and loaded.age_sex_reader.config.mirror_average
    assert "the mean of the film and its mirror image" in bone2gene("model", "info", tmp_path / "bundle").stdout


def test_the_cli_attaches_and_removes_a_reader_without_touching_the_encoder(
    encoder_and_reader: tuple[Bone2GeneModel, Bone2GeneModel], tmp_path: Path, bone2gene
) -> None:
    encoder, reader = encoder_and_reader
    fingerprint = save_model(encoder, tmp_path / "encoder")
    weights = (tmp_path / "encoder" / "model.safetensors").read_bytes()
    save_model(reader, tmp_path / "reader")
    save_model(_model(4, input_size=100, preprocessing="film"), tmp_path / "no_sex")

    refused = bone2gene("model", "attach-reader", tmp_path / "encoder", tmp_path / "no_sex")
    assert refused.returncode == 2 and "sex head is untrained" in refused.stderr
    missing = bone2gene("model", "attach-reader", tmp_path / "encoder", tmp_path / "nowhere")
    assert missing.returncode == 2 and "nowhere" in missing.stderr
    assert read_card(tmp_path / "encoder").age_sex_reader is None  # nothing half-installed

    done = bone2gene("model", "attach-reader", tmp_path / "encoder", tmp_path / "reader", "--half")
    assert done.returncode == 0, done.stderr
    card = read_card(tmp_path / "encoder")
    assert card.fingerprint == fingerprint and (tmp_path / "encoder" / "model.safetensors").read_bytes() == weights
    assert card.age_sex_reader is not None and card.age_sex_reader.provenance["reader_of"] == fingerprint
    info = bone2gene("model", "info", tmp_path / "encoder")
    assert "bone age     from the age and sex reader" in info.stdout and "film preprocessing" in info.stdout
    assert info.stdout.count("bone age ") == 1  # the encoder's own head is not described as the one in use

    again = bone2gene("model", "attach-reader", tmp_path / "encoder", tmp_path / "reader")  # replacing one is allowed
    assert again.returncode == 0 and sorted(p.name for p in (tmp_path / "encoder").iterdir()) == [
        "age_sex_reader",
        "config.json",
        "model.safetensors",
    ]
    assert bone2gene("model", "attach-reader", tmp_path / "encoder").returncode == 2
    removed = bone2gene("model", "attach-reader", tmp_path / "encoder", "--remove")
    assert removed.returncode == 0 and read_card(tmp_path / "encoder").age_sex_reader is None
    assert load_model(tmp_path / "encoder")[0].age_sex_reader is None


def test_installing_a_model_swaps_it_in_whole_with_its_reader_and_keeps_the_model_card(
    bundle: Bone2GeneModel, tmp_path: Path, bone2gene
) -> None:
    from matcher.checkpoint import BUNDLED_MODEL_DIR, install_model
    from matcher.mask import WEIGHTS, install_mask_weights

    save_model(bundle, tmp_path / "trained", provenance={"run": "t1"}, reader_provenance={"trained_on": "real films"})
    target = tmp_path / "weights" / "demo_model"
    save_model(_model(5, input_size=256), target)
    (target / "MODEL_CARD.md").write_text("# history\n")
    fingerprint = install_model(tmp_path / "trained", target)
    card = read_card(target)
    assert card.fingerprint == fingerprint and card.provenance["run"] == "t1"
    assert card.age_sex_reader is not None and card.age_sex_reader.provenance["trained_on"] == "real films"
    assert (target / "MODEL_CARD.md").read_text() == "# history\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["demo_model"]  # nothing staged or retired is left
    installed, _ = load_model(target)
    with torch.no_grad():
        for ours, theirs in zip(installed.state_dict().values(), bundle.state_dict().values(), strict=True):
            assert torch.allclose(ours.float(), theirs.float(), atol=1e-2, rtol=1e-2)  # float16 storage

    with pytest.raises(ModelFormatError, match="not a Bone2Gene model directory"):
        install_model(tmp_path / "nowhere", target)
    assert read_card(target).fingerprint == fingerprint  # a refused install leaves the model whole

    mask_target = tmp_path / "hand_mask.safetensors"
    install_mask_weights(WEIGHTS, mask_target)
    assert mask_target.read_bytes() == WEIGHTS.read_bytes()
    with pytest.raises(ModelFormatError, match="not a hand-mask network"):
        install_mask_weights(tmp_path / "trained" / "model.safetensors", mask_target)
    assert mask_target.read_bytes() == WEIGHTS.read_bytes()

    before = read_card(BUNDLED_MODEL_DIR).fingerprint
    refused = bone2gene("model", "install", tmp_path / "nowhere")
    assert refused.returncode == 2 and "nowhere" in refused.stderr
    refused_mask = bone2gene("model", "install", "--mask", tmp_path / "trained" / "model.safetensors")
    assert refused_mask.returncode == 2 and "not a hand-mask network" in refused_mask.stderr
    assert read_card(BUNDLED_MODEL_DIR).fingerprint == before
