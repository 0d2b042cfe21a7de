"""Where a landmark run's weights start: ImageNet (or random), or a trained landmark model.

Why start from a trained model: adding an annotation scheme's channels (`LandmarkNetConfig.
foreign_schemes`) should not cost a whole run from ImageNet. Every channel of the new network
starts from the trained one's channel for the same point: its own scheme's channel where it has
one, or else the atlas channel of the point the scheme marks, so a new scheme starts from the
atlas's answer and learns only how its annotators differ.
"""

from __future__ import annotations

from pathlib import Path

import torch

from matcher.hand_scheme import FOREIGN_SCHEMES
from matcher.landmark_files import load_landmark_model
from matcher.landmark_net import LandmarkNet, LandmarkNetConfig
from training.train import TrainConfigError


def head_rows(trained: LandmarkNetConfig, new: LandmarkNetConfig) -> list[int]:
    """For each of `new`'s heatmap channels, the channel of `trained` that starts it."""
    rows = list(range(new.n_landmarks))
    for scheme in new.foreign_schemes:
        if scheme in trained.foreign_schemes:
            rows += list(range(trained.channels)[trained.scheme_channels(scheme)[0]])
        else:
            rows += list(FOREIGN_SCHEMES[scheme])
    return rows


def started_network(config: LandmarkNetConfig, imagenet: bool, start_from: Path | None) -> LandmarkNet:
    """A network of `config` with ImageNet (or random) weights, or those of the model in `start_from`."""
    if start_from is None:
        return LandmarkNet(config, imagenet=imagenet)
    trained, card = load_landmark_model(start_from)
    if (card.config.backbone, card.config.decoder_channels, card.config.n_landmarks) != (
        config.backbone,
        config.decoder_channels,
        config.n_landmarks,
    ):
        raise TrainConfigError(
            f"start_from {start_from} is a {card.config.backbone} landmark model with {card.config.decoder_channels} decoder "
            f"channels; this run builds {config.backbone} with {config.decoder_channels}: set them alike or start from ImageNet"
        )
    network = LandmarkNet(config)
    body = {k: v for k, v in trained.state_dict().items() if not k.startswith("head.")}
    missing, unexpected = network.load_state_dict(body, strict=False)
    assert not unexpected and set(missing) == {"head.weight", "head.bias"}, (missing, unexpected)
    rows = head_rows(card.config, config)
    with torch.no_grad():
        network.head.weight.copy_(trained.head.weight[rows])
        network.head.bias.copy_(trained.head.bias[rows])
    return network
