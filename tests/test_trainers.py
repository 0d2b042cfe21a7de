"""`bone2gene train` runs every trainer from strict YAML: the age and sex reader and the embedding
head here (the metric trainer: test_training.py); each writes its resolved configuration beside
the run, and refuses what it cannot use before anything is written."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from matcher.checkpoint import load_model, read_card, save_model
from matcher.model import Bone2GeneModel, ModelConfig
from training.age_sex_reader import AgeSexReaderConfig
from training.config_file import load_run
from training.head_refit import HeadRefitRun
from training.metric_loss import LossKind
from training.pooled_features import FeatureSet

LABELS = {"unaffected": 0, "achondroplasia": 1, "turner": 2}


@pytest.fixture(scope="module")
def film_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small film-view model with three disorder labels, as a reader's or a refit's start."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("film-model") / "model"
    save_model(Bone2GeneModel(ModelConfig(input_size=64, preprocessing="film", labels=LABELS, sex_head_trained=True)), folder)
    return folder


@pytest.fixture(scope="module")
def rsna_like(tmp_path_factory: pytest.TempPathFactory, small_cohort: tuple[Path, pd.DataFrame]) -> Path:
    """An RSNA-layout folder (labels.csv, images/<id>.png) of 100-px copies of phantoms, ids 1-60
    (20, 40 and 60 are validation films)."""
    root = tmp_path_factory.mktemp("rsna")
    (root / "images").mkdir()
    cohort, manifest = small_cohort
    ids = np.arange(1, 61)
    for k, i in enumerate(ids):
        image = cv2.imread(str(cohort / manifest["image"][k % len(manifest)]), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(root / "images" / f"{i}.png"), cv2.resize(image, (100, 100), interpolation=cv2.INTER_NEAREST_EXACT))
    pd.DataFrame({"id": ids, "boneage": 60 + ids, "male": ids % 2 == 0}).to_csv(root / "labels.csv", index=False)
    return root


def _write(folder: Path, settings: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.yaml").write_text(yaml.safe_dump(settings))
    return folder / "run.yaml"


def test_the_reader_trainer_runs_from_yaml_resumes_and_finishes_the_reader(
    bone2gene, tmp_path: Path, film_model: Path, rsna_like: Path
) -> None:
    settings = {
        "trainer": "age_sex_reader",
        "init": str(film_model),
        "rsna": str(rsna_like),
        "out": "runs/reader",
        "input_size": 64,
        "epochs": 1,
        "real_batch": 16,
        "warmup_steps": 1,
        "finish_films": 16,
        "device": "cpu",
    }
    config_file = _write(tmp_path / "cfg", settings)
    first = bone2gene("train", config_file)
    assert first.returncode == 0, first.stderr
    run = tmp_path / "cfg" / "runs" / "reader"
    name, resolved = load_run(run / "config.yaml")  # every key, and it reads back
    assert name == "age_sex_reader" and isinstance(resolved, AgeSexReaderConfig)
    assert resolved.out == run and resolved.rsna == rsna_like and resolved.finish_films == 16 and resolved.lr == AgeSexReaderConfig.lr
    card = read_card(run / "finished")
    assert card.config.labels == LABELS and card.config.preprocessing == "film" and card.config.input_size == 64
    assert (
        card.provenance["batchnorm_recalibrated_on"].startswith("16 training films")
        and "real_val_bone_age_mad" in card.provenance["validation"]
    )

    _write(tmp_path / "cfg", {**settings, "epochs": 2})
    again = bone2gene("train", config_file, "--resume")
    assert again.returncode == 0, again.stderr
    assert list(pd.read_csv(run / "log.csv")["epoch"]) == [1, 2] and f"model: {run / 'finished'}" in again.stdout


def test_the_embedding_head_trainer_refits_only_the_head(bone2gene, tmp_path: Path, film_model: Path) -> None:
    model, card = load_model(film_model)
    rng = np.random.default_rng(0)
    disorders = np.repeat(["unaffected", "achondroplasia", "turner"], 24)
    centres = {d: 3 * rng.normal(size=model.backbone.num_features) for d in LABELS}
    features = np.stack([centres[d] + rng.normal(size=model.backbone.num_features) for d in disorders]).astype(np.float32)
    np.savez(tmp_path / "features.npz", model=card.fingerprint, features=features, disorder=disorders)
    settings = {
        "trainer": "embedding_head",
        "model": str(film_model),
        "features": "features.npz",
        "out": "refit",
        "loss": {"kind": "cosface", "margin": 0.35, "scale": 32},
        "epochs": 3,
        "batch_size": 24,
        "m_per_class": 4,
    }
    too_big = bone2gene("train", _write(tmp_path, settings))
    assert too_big.returncode == 2 and "3 disorders x 4 cases per disorder cannot fill a batch of 24" in too_big.stderr, too_big.stderr
    assert not (tmp_path / "refit").exists()
    result = bone2gene("train", _write(tmp_path, {**settings, "batch_size": 12}))
    assert result.returncode == 0, result.stderr
    name, resolved = load_run(tmp_path / "refit" / "config.yaml")
    assert name == "embedding_head" and isinstance(resolved, HeadRefitRun) and resolved.loss.kind is LossKind.COSFACE
    refitted, new_card = load_model(tmp_path / "refit" / "model")
    assert new_card.provenance["embedding_head_refit"]["from_model"] == card.fingerprint
    assert new_card.provenance["embedding_head_refit"]["loss"].startswith("CosFace")
    assert torch.allclose(refitted.backbone.conv_stem.weight, model.backbone.conv_stem.weight, atol=1e-3)  # float16 storage
    assert not torch.allclose(refitted.embedding.project.weight, model.embedding.project.weight, atol=1e-3)


def test_the_embedding_head_trainer_reads_its_films_once_from_a_manifest(
    bone2gene, tmp_path: Path, film_model: Path, small_cohort: tuple[Path, pd.DataFrame]
) -> None:
    cohort, manifest = small_cohort
    settings = {"trainer": "embedding_head", "model": str(film_model), "manifest": str(cohort / "manifest.csv"), "out": "refit"}
    settings |= {"epochs": 1, "batch_size": 8, "m_per_class": 2}
    both = bone2gene("train", _write(tmp_path, {**settings, "features": "f.npz"}))
    assert both.returncode == 2 and "either manifest" in both.stderr, both.stderr
    result = bone2gene("train", _write(tmp_path, settings))
    assert result.returncode == 0, result.stderr
    stored = FeatureSet.load(tmp_path / "refit" / "features.npz", read_card(film_model).fingerprint)
    assert 0 < len(stored.cases) <= len(manifest) and set(stored.cases["case_id"]) <= set(manifest["case_id"])
    assert stored.features.shape == (len(stored.cases), load_model(film_model)[0].backbone.num_features)

    other = tmp_path / "other"
    save_model(Bone2GeneModel(ModelConfig(input_size=64, preprocessing="film", labels=LABELS)), other)
    elsewhere = bone2gene("train", _write(tmp_path, {**settings, "model": str(other), "manifest": None, "features": "refit/features.npz"}))
    assert elsewhere.returncode == 2 and "holds features of model" in elsewhere.stderr, elsewhere.stderr


@pytest.mark.parametrize(
    ("settings", "flags", "message"),
    [
        ({"trainer": "readr"}, (), "unknown trainer 'readr'; known trainers: metric"),
        ({"trainer": "age_sex_reader", "out": "r", "rsna": "x", "epoch": 3}, (), "unknown key(s) 'epoch' in the training configuration"),
        ({"trainer": "age_sex_reader", "out": "r"}, (), "needs rsna"),
        ({"trainer": "age_sex_reader", "out": "r", "rsna": "x", "augment": {"zoom": 1}}, (), "unknown key(s) 'zoom' in augment"),
        ({"trainer": "embedding_head", "model": "m", "features": "f", "out": "r", "loss": {"margn": 3}}, (), "'margn' in loss"),
        ({"trainer": "embedding_head", "model": "m", "features": "f", "out": "r", "loss": {"kind": "arc"}}, (), "loss.kind"),
        ({"trainer": "embedding_head", "model": "m", "features": "f", "out": "r", "loss": {"sub_centers": 0}}, (), "sub_centers is 0"),
        ({"trainer": "embedding_head", "model": "m", "features": "f", "out": "r"}, ("--resume",), "keeps no checkpoints"),
        ({"trainer": "embedding_head", "model": "m", "features": "f", "out": "r"}, ("--device", "cuda"), "runs on the CPU"),
    ],
    ids=["unknown trainer", "unknown key", "missing key", "nested unknown key", "loss key", "loss kind", "sub-centres", "resume", "device"],
)
def test_every_trainer_refuses_what_it_cannot_use(bone2gene, tmp_path: Path, settings: dict, flags: tuple, message: str) -> None:
    result = bone2gene("train", _write(tmp_path, settings), *flags)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "r").exists()


def test_the_reader_trainer_with_phantoms_trains_one_joint_model(bone2gene, tmp_path: Path, rsna_like: Path) -> None:
    settings = {
        "trainer": "age_sex_reader",
        "rsna": str(rsna_like),
        "out": "work/joint",
        "synthetic": {"n": 24, "copies": 1, "image_size": 192, "held_out": []},
        "input_size": 64,
        "epochs": 1,
        "synthetic_batch": 8,
        "real_batch": 16,
        "m_per_class": 2,
        "warmup_steps": 1,
        "device": "cpu",
    }
    result = bone2gene("train", _write(tmp_path / "cfg", settings))
    assert result.returncode == 0, result.stderr
    work = tmp_path / "cfg" / "work"
    assert (work / "cohort" / "manifest.csv").is_file() and (work / "synthetic_views_1.npz").is_file()  # rendered once, cached
    card = read_card(work / "joint" / "model")
    assert card.config.preprocessing == "film" and "unaffected" in card.config.labels and len(card.config.labels) > 1
    assert f"model: {work / 'joint' / 'model'}" in result.stdout
