"""The packaged ImageNet weights mapped onto timm: the same logits as the package's own model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import timm
import torch
from efficientnet_lite_pytorch import EfficientNet

from matcher.checkpoint import BUNDLED_MODEL_DIR, load_model
from matcher.imagenet_weights import (
    PretrainedWeightsError,
    lite_imagenet_state,
    load_lite_imagenet,
    packaged_weights_path,
    start_from_imagenet,
)
from matcher.model import Bone2GeneModel
from training.synth.cohort import PlannedCase, simulate
from training.synth.spec import builtin_specs

SIZES = {"lite0": 224, "lite1": 240, "lite2": 260}  # each release's input size
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def _image(size: int) -> torch.Tensor:
    """A rendered hand film as an RGB ImageNet input (grey in three channels, normalised)."""
    spec = next(s for s in builtin_specs() if s.id == "achondroplasia")
    film = simulate(PlannedCase("c", "p", spec.id, "F", 8.0, 11, 12), spec, 320).radiograph.image.astype(np.float32)
    grey = cv2.resize((film - film.min()) / (np.ptp(film) or 1.0), (size, size), interpolation=cv2.INTER_AREA)
    rgb = (np.repeat(grey[..., None], 3, axis=-1) - MEAN) / STD
    return torch.from_numpy(rgb.transpose(2, 0, 1)[None].astype(np.float32))


@pytest.mark.parametrize("variant", ["lite0", pytest.param("lite1", marks=pytest.mark.slow), pytest.param("lite2", marks=pytest.mark.slow)])
def test_timm_with_the_mapped_weights_gives_the_packages_own_logits(variant: str) -> None:
    theirs = EfficientNet.from_pretrained(f"efficientnet-{variant}", weights_path=str(packaged_weights_path(variant))).eval()
    ours = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False).eval()
    load_lite_imagenet(ours, variant)
    image = _image(SIZES[variant])
    with torch.inference_mode():
        expected, found = theirs(image), ours(image)
    assert expected.shape == found.shape == (1, 1000)
    assert torch.allclose(found, expected, atol=1e-4, rtol=1e-4), float((found - expected).abs().max())
    assert expected.abs().max() > 1.0  # real logits, not a network of zeros on both sides


def test_a_grey_stem_reads_a_grey_image_as_the_rgb_network_reads_it_in_three_channels() -> None:
    rgb = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0).eval()
    grey = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0, in_chans=1).eval()
    load_lite_imagenet(rgb, "lite0")
    load_lite_imagenet(grey, "lite0", in_chans=1)
    image = torch.rand(1, 1, 96, 96)
    with torch.inference_mode():
        assert torch.allclose(grey(image), rgb(image.expand(1, 3, 96, 96)), atol=1e-5)


def test_the_encoder_starts_from_imagenet_and_deeplasia_variants_are_refused() -> None:
    config = load_model(BUNDLED_MODEL_DIR)[1].config
    model = Bone2GeneModel(type(config)(**{**config.__dict__, "variant": "lite0"}))
    assert model.config.backbone_name == "tf_efficientnet_lite0"
    start_from_imagenet(model.backbone, "lite0")
    stem = torch.load(packaged_weights_path("lite0"), map_location="cpu", weights_only=True)["_conv_stem.weight"]
    assert torch.equal(model.backbone.conv_stem.weight, stem.sum(dim=1, keepdim=True))
    with pytest.raises(PretrainedWeightsError, match="set `variant: lite0`"):
        start_from_imagenet(Bone2GeneModel(config).backbone, "b0")


def test_weights_that_do_not_fit_are_refused_with_the_tensor_named() -> None:
    lite1 = timm.create_model("tf_efficientnet_lite1", pretrained=False, num_classes=0)
    with pytest.raises(PretrainedWeightsError, match="does not fit"):
        lite_imagenet_state(lite1.state_dict(), "lite2")  # as many tensors, other widths
    with pytest.raises(PretrainedWeightsError, match="has 294 tensors, the network 384"):
        lite_imagenet_state(lite1.state_dict(), "lite0")
    with pytest.raises(PretrainedWeightsError, match="known: lite0, lite1, lite2"):
        packaged_weights_path("lite7")


def test_training_runs_start_from_imagenet_when_asked(tmp_path) -> None:
    from training.joint import JointConfig, initial_model
    from training.train import TrainConfig, TrainConfigError, _initial_model, train

    stem = torch.load(packaged_weights_path("lite1"), map_location="cpu", weights_only=True)["_conv_stem.weight"].sum(dim=1, keepdim=True)
    metric, reader = _initial_model(TrainConfig(tmp_path / "m.csv", tmp_path / "run", variant="lite1", imagenet=True), {"a": 0, "b": 1})
    assert reader is None and torch.equal(metric.backbone.conv_stem.weight, stem)
    joint = initial_model(JointConfig(tmp_path / "joint", variant="lite1", imagenet=True), {"a": 0})
    assert torch.equal(joint.backbone.conv_stem.weight, stem)
    with pytest.raises(TrainConfigError, match="give one of them"):
        train(TrainConfig(tmp_path / "m.csv", tmp_path / "run", variant="lite0", imagenet=True, init=BUNDLED_MODEL_DIR))
    assert not (tmp_path / "run").exists()
