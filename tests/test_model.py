"""The encoder reproduces Deeplasia's own outputs for every reference checkpoint, and our
model format round-trips; untrusted or broken checkpoints are refused clearly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import timm
import torch

from matcher.analysis import Analyzer
from matcher.checkpoint import ModelFormatError, import_deeplasia, load_model, model_from_deeplasia, save_model
from matcher.deeplasia import STAGE_REPEATS, CheckpointError, load_raw, read_deeplasia, remap_backbone
from matcher.model import Bone2GeneModel, ModelConfig
from matcher.preprocess import deeplasia_input

CHECKPOINTS = ["legacy_b0_512", "legacy_b0_1024", "new_b0_512_sexhead"]


@pytest.fixture(scope="module")
def fixtures(shared_dir: Path) -> Path:
    path = shared_dir / "fixtures" / "deeplasia"
    if not (path / "reference.npz").is_file():
        pytest.skip("Deeplasia reference fixtures absent")
    return path


@pytest.fixture(scope="module")
def reference(fixtures: Path) -> dict[str, np.ndarray]:
    return dict(np.load(fixtures / "reference.npz"))


def load_fixture_model(fixtures: Path, name: str) -> Bone2GeneModel:
    return model_from_deeplasia(read_deeplasia(fixtures / f"{name}.ckpt", fixtures / "parameters.yml"))


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_matches_deeplasia_reference_outputs(fixtures: Path, reference: dict[str, np.ndarray], name: str) -> None:
    model = load_fixture_model(fixtures, name)
    x, male = torch.from_numpy(reference[f"{name}__x"]), torch.from_numpy(reference[f"{name}__male"])
    with torch.no_grad():
        out = model(x, male)
    assert np.allclose(out.features.numpy(), reference[f"{name}__features"], rtol=1e-5, atol=1e-4)
    assert np.abs(out.bone_age_raw.numpy() - reference[f"{name}__raw"][:, 0]).max() <= 1e-5
    months = model.bone_age_months(out.bone_age_raw).numpy()
    assert np.abs(months - reference[f"{name}__months"]).max() <= 5e-4
    assert np.abs(months - reference[f"{name}__months_f64"]).max() <= 5e-4
    if f"{name}__sex_logit" in reference:
        assert np.abs(out.sex_logit.numpy() - reference[f"{name}__sex_logit"][:, 0]).max() <= 1e-5
    calibration = model.config.calibration
    assert calibration.age_mean == pytest.approx(float(reference[f"{name}__age_mean"]))
    assert calibration.slope == pytest.approx(float(reference[f"{name}__slope"]))
    assert np.all(np.isclose(out.embedding.norm(dim=1).numpy(), 1.0, atol=1e-5))


def test_the_check_catches_a_flipped_sex_input(fixtures: Path, reference: dict[str, np.ndarray]) -> None:
    """The fixture comparison is sharp enough to fail on a classic mistake."""
    model = load_fixture_model(fixtures, "legacy_b0_512")
    x, male = torch.from_numpy(reference["legacy_b0_512__x"]), torch.from_numpy(reference["legacy_b0_512__male"])
    with torch.no_grad():
        wrong = model(x, 1.0 - male).bone_age_raw.numpy()
    assert np.abs(wrong - reference["legacy_b0_512__raw"][:, 0]).max() > 1e-3


def test_end_to_end_matches_deeplasia_predict(fixtures: Path) -> None:
    """Our preprocessing + model reproduce Deeplasia's predict.py on the fixture hands; the
    ensemble is the unweighted mean of corrected months, as Deeplasia computes it."""
    expected = pd.read_csv(fixtures / "preprocess" / "predict_e2e.csv")
    per_model: dict[str, dict[str, float]] = {}
    for name in ("legacy_b0_512", "legacy_b0_1024"):
        model = load_fixture_model(fixtures, name)
        for _, row in expected[expected["checkpoint"] == name].iterrows():
            stem = Path(row["image_ID"]).stem
            image = cv2.imread(str(fixtures / "preprocess" / row["image_ID"]), cv2.IMREAD_ANYDEPTH)
            mask = cv2.imread(str(fixtures / "preprocess" / f"{stem}_mask.png"), cv2.IMREAD_GRAYSCALE)
            x = torch.from_numpy(deeplasia_input(image, mask, size=model.config.input_size).tensor[None])
            with torch.no_grad():
                out = model(x, torch.tensor([[float(row["sex"])]]))
            assert abs(float(out.bone_age_raw[0]) - row["y_hat"]) <= 1e-5
            months = float(model.bone_age_months(out.bone_age_raw)[0])
            assert abs(months - row["pred_bone_age"]) <= 5e-4
            per_model.setdefault(row["image_ID"], {})[name] = months
    for image_id, months in per_model.items():
        mean = expected[expected["image_ID"] == image_id]["pred_bone_age"].mean()
        assert np.mean(list(months.values())) == pytest.approx(mean, abs=5e-4)


def test_own_format_round_trips_and_detects_tampering(fixtures: Path, reference: dict[str, np.ndarray], tmp_path: Path) -> None:
    fingerprint = import_deeplasia(fixtures / "new_b0_512_sexhead.ckpt", tmp_path / "m")
    model, card = load_model(tmp_path / "m")
    assert card.fingerprint == fingerprint and card.config.sex_head_trained and not card.config.embedding_trained
    x, male = torch.from_numpy(reference["new_b0_512_sexhead__x"]), torch.from_numpy(reference["new_b0_512_sexhead__male"])
    with torch.no_grad():
        assert np.abs(model(x, male).bone_age_raw.numpy() - reference["new_b0_512_sexhead__raw"][:, 0]).max() <= 1e-5
    weights = tmp_path / "m" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match="fingerprint"):
        load_model(tmp_path / "m")
    with pytest.raises(ModelFormatError, match="not a Bone2Gene model"):
        load_model(tmp_path)


def with_explicit_sex_mlp(fixtures: Path, out: Path, widths: tuple[int, ...], correct_sex: bool) -> Path:
    """The new-format fixture given Deeplasia's optional explicit sex MLP (`DenseNetwork` built with
    `explicit_sex_classifier=widths`): layers from the pooled features, `fc_sex` after them, and the
    hyper-parameters Deeplasia records."""
    raw = load_raw(fixtures / "new_b0_512_sexhead.ckpt")
    state, generator = raw["state_dict"], torch.Generator().manual_seed(7)
    sizes = [int(state["dense.dense_blocks.0.weight"].shape[1]) - int(state["dense.fc_gender_in.weight"].shape[0]), *widths]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        state[f"dense.explicit_sex_classifier.{i}.weight"] = torch.randn(b, a, generator=generator) / a**0.5
        state[f"dense.explicit_sex_classifier.{i}.bias"] = 0.1 * torch.randn(b, generator=generator)
    state["dense.fc_sex.weight"] = torch.randn(1, sizes[-1], generator=generator) / sizes[-1] ** 0.5
    state["dense.fc_sex.bias"] = torch.tensor([0.2])
    raw["hyper_parameters"] = {**raw["hyper_parameters"], "explicit_sex_classifier": list(widths), "correct_predicted_sex": correct_sex}
    torch.save(raw, out)
    return out


def deeplasia_dense(state: dict, features: torch.Tensor, male: torch.Tensor | None, correct_sex: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """`DenseNetwork.forward` in eval mode, written out from its description: the explicit MLP's
    detached logit is the sex input unless `correct_sex` and a sex is given."""
    linear = lambda name, v: v @ state[f"dense.{name}.weight"].T + state[f"dense.{name}.bias"]  # noqa: E731
    s, i = features, 0
    while f"dense.explicit_sex_classifier.{i}.weight" in state:
        s, i = torch.relu(linear(f"explicit_sex_classifier.{i}", s)), i + 1
    sex_hat = linear("fc_sex", s)
    sex_in = male if correct_sex and male is not None else sex_hat
    x, i = torch.cat([features, torch.relu(linear("fc_gender_in", sex_in))], dim=1), 0
    while f"dense.dense_blocks.{i}.weight" in state:
        x, i = torch.relu(linear(f"dense_blocks.{i}", x)), i + 1
    return linear("fc_boneage", x)[:, 0], sex_hat[:, 0]


@pytest.mark.parametrize("correct_sex", [False, True], ids=["predicted-sex-input", "given-sex-input"])
def test_new_format_with_an_explicit_sex_mlp_imports_and_matches(
    fixtures: Path, reference: dict[str, np.ndarray], tmp_path: Path, correct_sex: bool
) -> None:
    path = with_explicit_sex_mlp(fixtures, tmp_path / "explicit.ckpt", (128, 64), correct_sex)
    checkpoint = read_deeplasia(path)
    assert checkpoint.head.explicit_sex_widths == (128, 64) and checkpoint.head.uses_given_sex == correct_sex
    import_deeplasia(path, tmp_path / "m")  # strict loading: every tensor has its place
    model, card = load_model(tmp_path / "m")
    assert card.config.head == checkpoint.head and model.predicts_own_sex_input
    state = load_raw(path)["state_dict"]
    features = torch.from_numpy(reference["new_b0_512_sexhead__features"])
    male = torch.from_numpy(reference["new_b0_512_sexhead__male"])
    with torch.no_grad():
        for given in (male, 1.0 - male, None):
            age, sex = model.bone_age(features, given)
            expected_age, expected_sex = deeplasia_dense(state, features, given, correct_sex)
            assert torch.allclose(sex, expected_sex, atol=1e-5) and torch.allclose(age, expected_age, atol=1e-5)
        flipped = model.bone_age(features, 1.0 - male)[0]
        assert torch.allclose(flipped, model.bone_age(features, male)[0]) != correct_sex  # the given sex counts only if trained so
        x = torch.from_numpy(reference["new_b0_512_sexhead__x"])
        out = model(x, None)
        assert torch.allclose(out.bone_age_raw, deeplasia_dense(state, features, None, correct_sex)[0], atol=1e-4)
    result = Analyzer(model, channels_last=False).analyze(fixtures / "preprocess" / "hand_2.png")  # no sex given
    assert result.accepted and result.sex_source == "predicted"
    with torch.no_grad():
        raw, logit = model.bone_age(model.backbone(torch.from_numpy(result.model_input[None])), None)
    assert result.bone_age_months == pytest.approx(float(model.config.calibration.months(raw.numpy())[0]), abs=1e-3)
    assert result.sex == ("M" if float(logit[0]) > 0 else "F")


def test_the_fingerprint_is_the_weights_hash(tmp_path: Path) -> None:
    model = Bone2GeneModel(ModelConfig()).eval()
    a = save_model(model, tmp_path / "a")
    torch.nn.init.zeros_(model.embedding.project.bias)
    with torch.no_grad():
        model.embedding.project.bias += 1.0
    assert save_model(model, tmp_path / "b") != a


class NotAWeight:
    """An arbitrary object, as older Deeplasia files store their augmentation pipeline."""


def test_files_with_python_objects_need_explicit_trust(fixtures: Path, tmp_path: Path) -> None:
    raw = torch.load(fixtures / "legacy_b0_512.ckpt", map_location="cpu", weights_only=True)
    raw["hyper_parameters"]["train_augment"] = NotAWeight()
    path = tmp_path / "legacy_b0_512.ckpt"
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="--trust-pickle"):
        read_deeplasia(path, fixtures / "parameters.yml")
    assert read_deeplasia(path, fixtures / "parameters.yml", trust_pickle=True).style == "legacy"


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"not a checkpoint at all", "cannot be read as plain weights"), (None, "no base.* weights")],
)
def test_broken_checkpoints_are_refused(tmp_path: Path, payload: bytes | None, message: str) -> None:
    path = tmp_path / "x.ckpt"
    if payload is None:
        torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, path)
    else:
        path.write_bytes(payload)
    with pytest.raises(CheckpointError, match=message):
        read_deeplasia(path)


@pytest.mark.parametrize("variant", ["b0", "b4"])
def test_key_mapping_covers_every_timm_tensor(variant: str) -> None:
    """Deeplasia (lukemelas) names built from DESIGN.md's table map onto all of timm's."""
    timm_keys = set(timm.create_model(f"tf_efficientnet_{variant}", in_chans=1, num_classes=0).state_dict())
    inverse_first = {
        "conv_dw": "_depthwise_conv",
        "bn1": "_bn1",
        "se.conv_reduce": "_se_reduce",
        "se.conv_expand": "_se_expand",
        "conv_pw": "_project_conv",
        "bn2": "_bn2",
    }
    inverse_other = {
        "conv_pw": "_expand_conv",
        "bn1": "_bn0",
        "conv_dw": "_depthwise_conv",
        "bn2": "_bn1",
        "se.conv_reduce": "_se_reduce",
        "se.conv_expand": "_se_expand",
        "conv_pwl": "_project_conv",
        "bn3": "_bn2",
    }
    offsets = np.cumsum((0,) + STAGE_REPEATS[variant])
    lukemelas = {}
    for key in timm_keys:
        if key.startswith("blocks."):
            _, stage, j, rest = key.split(".", 3)
            table = inverse_first if stage == "0" else inverse_other
            module = next(m for m in sorted(table, key=len, reverse=True) if rest.startswith(m + "."))
            flat = offsets[int(stage)] + int(j)
            lukemelas[f"base._blocks.{flat}.{table[module]}{rest[len(module) :]}"] = torch.zeros(1)
        else:
            module, _, leaf = key.partition(".")
            lukemelas[f"base.{ {'conv_stem': '_conv_stem', 'bn1': '_bn0', 'conv_head': '_conv_head', 'bn2': '_bn1'}[module] }.{leaf}"] = (
                torch.zeros(1)
            )
    lukemelas["base._fc.weight"] = torch.zeros(1)
    assert set(remap_backbone(lukemelas, "base.", variant)) == timm_keys


def test_b4_uses_deeplasias_symmetric_padding() -> None:
    model = Bone2GeneModel(ModelConfig(variant="b4"))
    conv = model.backbone.blocks[2][0].conv_dw
    assert type(conv) is torch.nn.Conv2d and conv.padding == (2, 2) and conv.stride == (2, 2)


def test_cli_import_and_info(bone2gene, fixtures: Path, tmp_path: Path) -> None:
    result = bone2gene(
        "model",
        "import-deeplasia",
        str(fixtures / "legacy_b0_512.ckpt"),
        str(fixtures / "legacy_b0_1024.ckpt"),
        "--parameters",
        str(fixtures / "parameters.yml"),
        "-o",
        str(tmp_path / "models"),
    )
    assert result.returncode == 0, result.stderr
    info = bone2gene("model", "info", str(tmp_path / "models" / "legacy_b0_1024"))
    assert info.returncode == 0 and "input 1024 px" in info.stdout and "slope 0.0432" in info.stdout
    missing = bone2gene("model", "import-deeplasia", str(fixtures / "legacy_b0_512.ckpt"), "-o", str(tmp_path / "x"))
    assert missing.returncode == 2 and "--parameters" in missing.stderr and "Traceback" not in missing.stderr


def test_the_bundled_model_card_names_the_installed_fingerprints() -> None:
    """MODEL_CARD.md describes the networks that are installed: replacing either without its card fails here."""
    import re

    from matcher.checkpoint import AGE_SEX_READER_DIR, BUNDLED_MODEL_DIR, read_card

    text = (BUNDLED_MODEL_DIR / "MODEL_CARD.md").read_text()
    named = re.search(r"Encoder fingerprint `([0-9a-f]{12})`.*?reader `([0-9a-f]{12})`", text, re.S)
    assert named, "the card's first lines name the encoder's and the reader's fingerprints"
    assert named.group(1) == read_card(BUNDLED_MODEL_DIR).fingerprint[:12]
    assert named.group(2) == read_card(BUNDLED_MODEL_DIR / AGE_SEX_READER_DIR).fingerprint[:12]
