"""Joint training on real films and synthetic disorders: data, splits, domain randomisation,
augmentation, and a tiny real run that checkpoints, resumes and saves a film-view model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from matcher.checkpoint import load_model
from matcher.manifest import ManifestError
from training.age_sex_reader_finish import finish_age_sex_reader
from training.domain import DomainConfig, randomise_film, synthetic_views
from training.film_augment import FilmAugmentConfig, augment_views, views_to_input
from training.joint import JointConfig, initial_model, train_joint
from training.joint_data import JointData
from training.real_data import RealSet, is_validation_id, load_rsna_100px, read_labels, split_real


@pytest.fixture(scope="module")
def tiny_cohort(render_cohort) -> Path:
    out, _ = render_cohort(n=40, seed=4, size=192, disorders=("unaffected", "achondroplasia", "turner"))
    return out / "manifest.csv"


@pytest.fixture(scope="module")
def some_real(rsna_100px: Path, tmp_path_factory: pytest.TempPathFactory) -> RealSet:
    real = load_rsna_100px(rsna_100px, cache=tmp_path_factory.mktemp("rsna") / "rsna.npz")
    keep = np.zeros(len(real), bool)
    keep[:48] = True
    keep[np.flatnonzero(is_validation_id(real.ids))[:16]] = True
    return real.subset(keep)


def test_the_validation_split_is_fixed_by_id_and_leaves_reported_films_out(some_real: RealSet) -> None:
    train, val = split_real(some_real, exclude_ids={int(some_real.ids[0]), int(some_real.ids[-1])})
    assert not (train & val).any()
    assert (some_real.ids[val] % 20 == 0).all() and not (some_real.ids[train] % 20 == 0).any()
    assert not train[0] and not val[0] and not train[-1] and not val[-1]
    assert some_real.views.shape[1:] == (100, 100) and some_real.views.dtype == np.uint8


def test_labels_errors_say_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"labels\.csv"):
        read_labels(tmp_path)
    pd.DataFrame({"id": [1], "boneage": [100]}).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(ManifestError, match="male"):
        read_labels(tmp_path)


def test_domain_randomisation_is_seeded_and_varied() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((160, 128)).astype(np.float32)
    mask = np.zeros((160, 128), np.uint8)
    mask[20:150, 20:110] = 1
    a = randomise_film(image, mask, np.random.default_rng(5), DomainConfig())
    b = randomise_film(image, mask, np.random.default_rng(5), DomainConfig())
    c = randomise_film(image, mask, np.random.default_rng(6), DomainConfig())
    assert a.dtype == np.uint8 and np.array_equal(a, b) and not np.array_equal(a, c)


def test_synthetic_views_and_augmentation(tiny_cohort: Path) -> None:
    views, table = synthetic_views(tiny_cohort, copies=2, seed=1, workers=1)
    assert views.shape == (80, 100, 100) and len(table) == 80
    assert not np.array_equal(views[0], views[40]), "two copies of a phantom are two different exports"
    x = augment_views(torch.from_numpy(views[:8]), FilmAugmentConfig(), 100, torch.Generator().manual_seed(0))
    assert x.shape == (8, 1, 100, 100) and torch.allclose(x.flatten(1).mean(1), torch.zeros(8), atol=1e-4)
    plain = views_to_input(torch.from_numpy(views[:2]), 100)
    assert torch.allclose(plain.flatten(1).std(1), torch.ones(2), atol=1e-3)


def test_a_tiny_joint_run_checkpoints_resumes_and_saves_a_film_model(tiny_cohort: Path, some_real: RealSet, tmp_path: Path) -> None:
    views, table = synthetic_views(tiny_cohort, copies=1, seed=1, workers=1)
    data = JointData.build(views, table, some_real, (), set(), val_fraction=0.25, seed=1)
    config = JointConfig(out=tmp_path / "run", epochs=1, synthetic_batch=6, real_batch=16, m_per_class=2, device="cpu", warmup_steps=1)
    train_joint(config, data, log=lambda _: None)
    first = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert first["epoch"] == 1
    config.epochs, config.resume = 2, True
    model_dir = train_joint(config, data, log=lambda _: None)
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert list(log["epoch"]) == [1, 2] and np.isfinite(log["real_val_bone_age_mad"]).all()
    _model, card = load_model(model_dir)
    assert card.config.preprocessing == "film" and card.config.input_size == 100
    assert set(card.config.labels) == {"unaffected", "achondroplasia", "turner"}
    assert card.provenance["data_sources"]["rsna_100px"]["validation"] == len(data.real_val)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 2


def test_a_real_only_run_trains_bone_age_and_sex_and_is_finished(some_real: RealSet, tmp_path: Path) -> None:
    """`--real-only`: no synthetic batch, the starting model's labels kept, the embedding head
    untouched (no loss reaches it), BatchNorm statistics re-estimated at the end."""
    labels = {"unaffected": 0, "turner": 1}
    data = JointData.real_only(some_real, labels, exclude_real_ids=set())
    assert not data.has_synthetic and len(data.real_train) + len(data.real_val) == len(some_real)
    assert is_validation_id(some_real.ids[data.real_val]).all() and len(data.real_val) >= 16
    config = JointConfig(out=tmp_path / "run", epochs=1, real_batch=16, device="cpu", warmup_steps=1, lr=1e-2)
    model_dir = train_joint(config, data, log=lambda _: None)
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert log["loss_age_real"].iloc[0] > 0 and log["loss_metric"].iloc[0] == 0 and "synthetic_val_top1" not in log
    model, card = load_model(model_dir)
    assert card.config.labels == labels and card.config.preprocessing == "film"
    torch.manual_seed(config.seed)  # the seed the run built its fresh model with: the embedding head is as initialised
    fresh = initial_model(config, labels)
    assert torch.equal(model.embedding.project.weight, fresh.embedding.project.weight)
    assert not torch.equal(model.bone_age.fc_boneage.weight, fresh.bone_age.fc_boneage.weight)
    stats_before = model.backbone.bn1.running_mean.clone()
    report = finish_age_sex_reader(model, data, films=32)
    assert report.films == 32 and set(report.recalibrated) == {
        "real_val_bone_age_mad",
        "real_val_sex_accuracy",
        "real_val_sex_accuracy_ba_over_120",
    }
    assert not torch.equal(model.backbone.bn1.running_mean, stats_before)


def test_dev_and_validation_films_are_disjoint() -> None:
    from training.real_data import is_dev_id

    ids = np.arange(0, 1000)
    assert not (is_dev_id(ids) & is_validation_id(ids)).any()
    assert is_dev_id(ids).sum() == 50 and is_validation_id(ids).sum() == 50
