"""Training pipeline: manifest checks, patient-level splits, augmentation, and a tiny real run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from matcher.checkpoint import TRAINING_SPECS_FILE, install_model, load_model, model_from_deeplasia
from matcher.deeplasia import read_deeplasia
from matcher.model import Bone2GeneModel
from matcher.preprocess import deeplasia_input
from training.augment import AugmentConfig, augment, to_model_input
from training.config_file import TrainConfigError, load_train_config
from training.dataset import ManifestError, prepare, read_manifest
from training.evaluate import embed_crops
from training.synth.spec import load_specs
from training.train import TrainConfig, _build, _initial_model, split_by_patient, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_cohort(render_cohort) -> Path:
    out, _ = render_cohort(n=32, seed=3, size=256, disorders=("unaffected", "achondroplasia", "brachydactyly_e", "trps1"))
    return out / "manifest.csv"


def test_manifest_errors_name_the_problem(tmp_path: Path, tiny_cohort: Path) -> None:
    table = pd.read_csv(tiny_cohort)
    table.drop(columns=["patient_id"]).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(ManifestError, match="patient_id"):
        read_manifest(tmp_path / "a.csv")
    table.assign(sex="x").to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(ManifestError, match="sex must be M or F"):
        read_manifest(tmp_path / "b.csv")
    pd.concat([table, table.head(1)]).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(ManifestError, match="unique"):
        read_manifest(tmp_path / "c.csv")


def test_split_keeps_patients_together_and_held_out_disorders_out(tiny_cohort: Path) -> None:
    table = read_manifest(tiny_cohort)
    train_mask, val_mask, rare = split_by_patient(table, ("trps1",), 0.3, seed=1)
    assert not (train_mask & val_mask).any() and not ((train_mask | val_mask) & rare).any()
    assert set(table.loc[rare, "disorder"]) == {"trps1"}
    patients = table["patient_id"]
    assert not set(patients[train_mask]) & set(patients[val_mask])


def test_prepared_crops_are_deeplasia_crops_and_cached(tiny_cohort: Path) -> None:
    from matcher.io import read_radiograph

    prepared = prepare(tiny_cohort, 256, workers=1)
    assert prepared.crops.shape == (32, 256, 256) and prepared.crops.dtype == np.uint8
    row = prepared.table.iloc[5]
    radiograph = read_radiograph(tiny_cohort.parent / row["image"])
    import cv2

    mask = cv2.imread(str(tiny_cohort.parent / row["mask"]), cv2.IMREAD_GRAYSCALE)
    expected = deeplasia_input(radiograph.pixels, mask, size=256)
    assert np.array_equal(prepared.crops[5], expected.resized)
    # unaugmented model input equals what analysis feeds the model
    assert torch.allclose(to_model_input(torch.from_numpy(prepared.crops[5:6]))[0], torch.from_numpy(expected.tensor), atol=1e-5)
    again = prepare(tiny_cohort, 256, workers=1)  # from the cache
    assert np.array_equal(again.crops, prepared.crops)


def test_augmentation_is_seeded_zscored_and_keeps_background_flat(tiny_cohort: Path) -> None:
    crops = torch.from_numpy(prepare(tiny_cohort, 256, workers=1).crops[:6])
    a = augment(crops, AugmentConfig(), torch.Generator().manual_seed(0))
    b = augment(crops, AugmentConfig(), torch.Generator().manual_seed(0))
    c = augment(crops, AugmentConfig(), torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    flat = a.flatten(1)
    assert torch.allclose(flat.mean(1), torch.zeros(6), atol=1e-4) and torch.allclose(flat.std(1), torch.ones(6), atol=1e-4)
    corners = a[:, 0, :4, :4].flatten(1)
    assert torch.allclose(corners, corners[:, :1].expand_as(corners))  # background is one value, like masked input


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": 3, "lerning_rate": 0.1}, "unknown key(s) 'lerning_rate' in the training configuration; known keys: manifest, out"),
        ({"augment": {"rotate": 5}}, "unknown key(s) 'rotate' in augment; known keys: rotation_deg"),
        ({"manifest": None}, "needs manifest"),
        ({"epochs": "many"}, "epochs: Input should be a valid integer"),
        ({"distil_bone_age": True}, "`init` is empty"),
        ({"arcface_sub_centers": 0}, "arcface_sub_centers is 0; it must be 1 or more"),
    ],
)
def test_training_configuration_errors_say_what_is_wrong(tmp_path: Path, bone2gene, change: dict, message: str) -> None:
    settings = {"manifest": "cohort/manifest.csv", "out": "run", **change}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(settings))
    result = bone2gene("train", tmp_path / "bad.yaml")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()
    (tmp_path / "broken.yaml").write_text("manifest: [unclosed")
    with pytest.raises(TrainConfigError, match="not valid YAML"):
        load_train_config(tmp_path / "broken.yaml")


def test_a_run_starts_from_a_deeplasia_checkpoint_file(shared_dir: Path) -> None:
    """`init` may name a Deeplasia checkpoint: its backbone and bone-age head are the start."""
    fixtures = shared_dir / "fixtures" / "deeplasia"
    if not (fixtures / "new_b0_512_sexhead.ckpt").is_file():
        pytest.skip("Deeplasia reference fixtures absent")
    config = TrainConfig(manifest=Path("m.csv"), out=Path("o"), init=fixtures / "new_b0_512_sexhead.ckpt", input_size=256)
    model, _ = _initial_model(config, {"a": 0, "b": 1})
    reference = model_from_deeplasia(read_deeplasia(fixtures / "new_b0_512_sexhead.ckpt"))
    for name, tensor in reference.bone_age.state_dict().items():
        assert torch.equal(model.bone_age.state_dict()[name], tensor), name
    assert torch.equal(model.backbone.conv_stem.weight, reference.backbone.conv_stem.weight)
    assert model.config.input_size == 256 and model.config.labels == {"a": 0, "b": 1} and model.config.head == reference.config.head


def test_films_without_bone_age_train_the_space_and_distil_the_starting_bone_age(tiny_cohort: Path, tmp_path: Path) -> None:
    """A cohort without bone-age readings for some films: no NaN loss; with distillation the starting
    model's own prediction is their target, so fine-tuning has no reason to move their bone age."""
    from matcher.checkpoint import BUNDLED_MODEL_DIR
    from training.bone_age_targets import bone_age_targets

    table = pd.read_csv(tiny_cohort)
    for column in ("image", "mask"):
        table[column] = [str(tiny_cohort.parent / p) for p in table[column]]
    table.loc[table.index % 2 == 0, "bone_age_months"] = None
    manifest = tmp_path / "partly_read.csv"
    table.to_csv(manifest, index=False)
    data = prepare(manifest, 256, workers=1)
    model, card = load_model(BUNDLED_MODEL_DIR)
    plain = bone_age_targets(data.table, data.crops, model, torch.device("cpu"), distil=False)
    assert plain.known.tolist() == data.table["bone_age_months"].notna().tolist() and plain.distilled == 0
    distilled = bone_age_targets(data.table, data.crops, model, torch.device("cpu"), distil=True)
    missing = ~plain.known
    assert distilled.known.all() and distilled.distilled == int(missing.sum()) > 0
    assert np.array_equal(distilled.z[plain.known], plain.z[plain.known])  # labels are never replaced
    male = (data.table["sex"] == "M").to_numpy(np.float32)
    predicted = embed_crops(model, data.crops[missing], male[missing], torch.device("cpu")).bone_age_months
    assert np.allclose(distilled.z[missing] * card.config.calibration.age_sd + card.config.calibration.age_mean, predicted, atol=1e-3)
    config = TrainConfig(
        manifest=manifest, out=tmp_path / "run", init=BUNDLED_MODEL_DIR, distil_bone_age=True, input_size=256, epochs=1,
        batch_size=4, m_per_class=2, held_out=("trps1",), val_fraction=0.25, device="cpu", prepare_workers=1,
    )  # fmt: skip
    train(config, log=lambda _: None)
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert np.isfinite(log[["loss_metric", "loss_age", "loss_sex"]].to_numpy()).all()
    # the bundled model's age and sex reader comes along unchanged: bone age and sex on real films stay its
    trained, trained_card = load_model(tmp_path / "run" / "model")
    assert trained.age_sex_reader is not None and trained_card.provenance["age_sex_reader_from"] == str(BUNDLED_MODEL_DIR)
    kept, bundled = trained.age_sex_reader.state_dict(), model.age_sex_reader.state_dict()
    assert kept.keys() == bundled.keys() and all(torch.equal(kept[k].float(), bundled[k].float()) for k in kept)


def test_batch_that_cannot_be_filled_is_refused(tiny_cohort: Path, tmp_path: Path) -> None:
    config = TrainConfig(
        manifest=tiny_cohort, out=tmp_path / "run", input_size=256, batch_size=64, m_per_class=2, device="cpu", prepare_workers=1
    )
    with pytest.raises(ManifestError, match="cannot fill a batch"):
        train(config, log=lambda _: None)


def _yaml_run_of_two_epochs(tiny_cohort: Path, tmp_path: Path, bone2gene) -> tuple[dict, Path, pd.DataFrame]:
    """`bone2gene train CONFIG.yaml`: paths relative to the file, the resolved config beside the run,
    CSV and JSON logs, a checkpoint per epoch, the best validation epoch as the model; then a second
    epoch resumed from the first. Leaves a copy of the epoch-1 run in cfg/ranks; returns the settings,
    the run folder and its log."""
    (tmp_path / "cfg").mkdir()
    settings = {
        "manifest": str(tiny_cohort),
        "out": "run",  # relative: resolved against the YAML file's folder
        "input_size": 256,
        "epochs": 1,
        "batch_size": 4,  # whole groups of m_per_class on each of two ranks
        "m_per_class": 2,
        "held_out": ["trps1"],
        "val_fraction": 0.25,
        "device": "cpu",
        "prepare_workers": 1,
        "augment": {"rotation_deg": 5.0},
    }
    (tmp_path / "cfg" / "train.yaml").write_text(yaml.safe_dump(settings))
    first = bone2gene("train", tmp_path / "cfg" / "train.yaml")
    assert first.returncode == 0, first.stderr
    run = tmp_path / "cfg" / "run"
    resolved = load_train_config(run / "config.yaml")  # every field, and it reads back
    assert (
        resolved.out == run and resolved.augment.rotation_deg == 5.0 and resolved.held_out == ("trps1",) and resolved.lr == TrainConfig.lr
    )
    _, card = load_model(run / "model")
    assert card.config.embedding_trained and card.config.sex_head_trained and card.config.input_size == 256
    assert set(card.config.labels) == {"unaffected", "achondroplasia", "brachydactyly_e"}
    assert card.provenance["held_out_disorders"] == ["trps1"] and card.provenance["epoch"] == 1
    # the cohort's generator seed and the specs of the disorders trained on stay with the model, also when installed
    assert card.provenance["cohort"]["seed"] == 3 and card.provenance["cohort"]["generator"].startswith("bone2gene")
    assert sorted(s.id for s in load_specs(run / "model" / TRAINING_SPECS_FILE)) == sorted(card.config.labels)
    install_model(run / "model", tmp_path / "installed")
    assert (tmp_path / "installed" / TRAINING_SPECS_FILE).read_text() == (run / "model" / TRAINING_SPECS_FILE).read_text()
    log = pd.read_csv(run / "log.csv")
    assert log["epoch"].tolist() == [1] and np.isfinite(log["loss_metric"]).all() and "val_top1" in log
    shutil.copytree(run, tmp_path / "cfg" / "ranks")  # a torchrun job can resume the same epoch-1 checkpoint

    # a second epoch continues from the checkpoint instead of starting again
    settings["epochs"] = 2
    (tmp_path / "cfg" / "train.yaml").write_text(yaml.safe_dump(settings))
    second = bone2gene("train", tmp_path / "cfg" / "train.yaml", "--resume")
    assert second.returncode == 0 and "resumed after epoch 1" in second.stdout, second.stderr
    reference = pd.read_csv(run / "log.csv")
    assert reference["epoch"].tolist() == [1, 2] and len((run / "log.jsonl").read_text().splitlines()) == 2
    best = int(reference.sort_values(["val_top1", "val_top5", "epoch"], ascending=[False, False, True])["epoch"].iloc[0])
    assert load_model(run / "model")[1].provenance["epoch"] == best
    return settings, run, reference


def test_a_yaml_run_saves_the_best_model_and_resumes(tiny_cohort: Path, tmp_path: Path, bone2gene) -> None:
    _yaml_run_of_two_epochs(tiny_cohort, tmp_path, bone2gene)


@pytest.mark.slow
def test_a_two_process_torchrun_resumes_like_one_process(tiny_cohort: Path, tmp_path: Path, bone2gene) -> None:
    """A real two-process DistributedDataParallel job (torchrun, gloo on the CPU) resumes the
    epoch-1 checkpoint of a YAML run for its second epoch; the one-process second epoch is the
    reference. One rank speaks and writes. tests/test_distributed.py checks the gradients exactly
    in the default suite."""
    settings, _, reference = _yaml_run_of_two_epochs(tiny_cohort, tmp_path, bone2gene)
    (tmp_path / "cfg" / "ranks.yaml").write_text(yaml.safe_dump({**settings, "out": "ranks"}))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "api.cli"]
    job = subprocess.run(
        [*torchrun, "train", str(tmp_path / "cfg" / "ranks.yaml"), "--resume"], capture_output=True, text=True, timeout=900, cwd=REPO
    )
    assert job.returncode == 0, job.stderr[-3000:]
    assert job.stdout.count("resumed after epoch 1") == 1 and job.stdout.count("model: ") == 1, job.stdout  # one rank speaks
    ranks = tmp_path / "cfg" / "ranks"
    history = pd.read_csv(ranks / "log.csv")
    assert history["epoch"].tolist() == [1, 2] and len((ranks / "log.jsonl").read_text().splitlines()) == 2  # one writer
    for loss in ("loss_metric", "loss_age", "loss_sex"):  # batch-norm statistics and dropout masks differ per rank: a tolerance
        assert history[loss].iloc[1] == pytest.approx(reference[loss].iloc[1], rel=0.25), (loss, history, reference)
    best = int(history.sort_values(["val_top1", "val_top5", "epoch"], ascending=[False, False, True])["epoch"].iloc[0])
    provenance = load_model(ranks / "model")[1].provenance
    assert provenance["epoch"] == best and provenance["ranks"] == (2 if best == 2 else 1)


def test_batchnorm_recalibration_sets_running_statistics_for_the_final_weights() -> None:
    """After a short run with Deeplasia's BatchNorm momentum of 0.01 the running statistics trail the
    weights; one pass with cumulative averaging sets them to the statistics of the given images."""
    from training.batchnorm import recalibrate_batchnorm
    from training.train import new_model_config

    torch.manual_seed(0)
    model = Bone2GeneModel(new_model_config("b0", 64, 16, {"a": 0, "b": 1})).eval()
    crops = np.random.default_rng(0).integers(0, 255, size=(48, 64, 64), dtype=np.uint8)
    first = model.backbone.bn1  # the stem's BatchNorm: its input is the stem convolution of the images
    assert torch.allclose(first.running_mean, torch.zeros_like(first.running_mean))  # as initialised: nothing seen yet
    recalibrate_batchnorm(model, crops, batch_size=16)  # three batches, averaged
    with torch.no_grad():
        stem = model.backbone.conv_stem(to_model_input(torch.from_numpy(crops)))
    assert not model.training
    assert torch.allclose(first.running_mean, stem.mean(dim=(0, 2, 3)), atol=1e-4)
    per_batch_var = torch.stack([stem[i : i + 16].var(dim=(0, 2, 3)) for i in range(0, 48, 16)]).mean(0)
    assert torch.allclose(first.running_var, per_batch_var, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("sub_centers", [1, 3])
def test_arcface_sub_centers_reach_the_loss(sub_centers: int) -> None:
    """`arcface_sub_centers` sets how many centres each disorder gets (1: plain ArcFace)."""
    config = TrainConfig(manifest=Path("m.csv"), out=Path("o"), embedding_dim=8, arcface_sub_centers=sub_centers)
    parts = _build(config, torch.nn.Linear(8, 8), classes=5, steps_per_epoch=4, device=torch.device("cpu"))
    assert tuple(parts.metric_loss.W.shape) == (8, 5 * sub_centers)
