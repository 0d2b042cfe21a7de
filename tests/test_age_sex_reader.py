"""An encoder with an age and sex reader (`Bone2GeneModel.attach_reader`): bone age and sex come
from the reader's own forward pass on its own input, the embedding from the encoder, and the
reader is stored beside the encoder's weights so that galleries keep their fingerprint."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from matcher.analysis import AnalysisOptions, Analyzer
from matcher.batch import BatchItem, embed_many
from matcher.checkpoint import READER_DIR, load_model, read_card, save_model
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
    assert card.reader is not None and card.reader.provenance["trained_on"] == "real films"
    assert card.reader.config.preprocessing == "film"
    loaded, _ = load_model(tmp_path / "bundle")
    assert loaded.age_sex_reader is not None
    for name, tensor in reader.state_dict().items():
        assert torch.equal(loaded.age_sex_reader.state_dict()[name], tensor), name
    save_model(loaded.__class__(loaded.config), tmp_path / "bundle")  # saving an encoder without a reader removes the stale one
    assert not (tmp_path / "bundle" / READER_DIR).exists() and read_card(tmp_path / "bundle").reader is None


def test_a_damaged_reader_is_refused_with_its_path(
    encoder_and_reader: tuple[Bone2GeneModel, Bone2GeneModel], bundle: Bone2GeneModel, tmp_path: Path
) -> None:
    encoder, reader = encoder_and_reader
    encoder.attach_reader(reader)
    try:
        save_model(encoder, tmp_path / "bundle")
    finally:
        encoder.attach_reader(None)
    weights = tmp_path / "bundle" / READER_DIR / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"damaged!")
    with pytest.raises(ValueError, match=READER_DIR):
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


def test_batches_read_bone_age_and_sex_like_single_analyses(bundle: Bone2GeneModel, images: list[tuple[Path, str]]) -> None:
    batch = embed_many(bundle, [BatchItem(p, s) for p, s in images], batch_size=2, workers=0, channels_last=False)
    for (path, sex), row in zip(images, batch, strict=True):
        single = Analyzer(bundle, channels_last=False).analyze(path, sex=sex)
        assert row.accepted and np.allclose(row.embedding, single.embedding, atol=1e-4)
        assert row.bone_age_months == pytest.approx(single.bone_age_months, abs=1e-2)
        assert row.male_probability == pytest.approx(single.male_probability, abs=1e-4)


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
    assert read_card(tmp_path / "encoder").reader is None  # nothing half-installed

    done = bone2gene("model", "attach-reader", tmp_path / "encoder", tmp_path / "reader", "--half")
    assert done.returncode == 0, done.stderr
    card = read_card(tmp_path / "encoder")
    assert card.fingerprint == fingerprint and (tmp_path / "encoder" / "model.safetensors").read_bytes() == weights
    assert card.reader is not None and card.reader.provenance["reader_of"] == fingerprint
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
    assert removed.returncode == 0 and read_card(tmp_path / "encoder").reader is None
    assert load_model(tmp_path / "encoder")[0].age_sex_reader is None
