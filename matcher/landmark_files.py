"""The landmark model on disk: a folder with `landmarks.safetensors` and `landmarks.json` (its network
configuration, fingerprint and provenance: what it was trained on and which atlas films it never saw).

Written atomically and checked against its fingerprint on load, as the encoder's model is
(`matcher.checkpoint`); `bone2gene model install-landmarks` places one in `matcher/weights/landmarks`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file

from matcher.checkpoint import ModelFormatError, fingerprint_of, write_weights_and_card
from matcher.landmark_net import LandmarkNet, LandmarkNetConfig

BUNDLED_LANDMARKS_DIR = Path(__file__).resolve().parent / "weights" / "landmarks"
WEIGHTS, CARD = "landmarks.safetensors", "landmarks.json"
FORMAT = "bone2gene-landmarks-1"


@dataclass(frozen=True)
class LandmarkCard:
    config: LandmarkNetConfig
    fingerprint: str
    provenance: dict


def save_landmark_model(network: LandmarkNet, directory: Path, provenance: dict) -> str:
    """Write the network (float16) and its card; returns the fingerprint."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).detach().contiguous().cpu() for k, v in network.state_dict().items()}
    return write_weights_and_card(directory, (WEIGHTS, CARD), FORMAT, state, network.config.to_json(), provenance)


def read_landmark_card(directory: Path) -> LandmarkCard:
    path = directory / CARD
    if not path.is_file() or not (directory / WEIGHTS).is_file():
        raise ModelFormatError(f"{directory} is not a landmark model ({CARD} and {WEIGHTS} expected)")
    try:
        document = json.loads(path.read_text())
        config = LandmarkNetConfig(**document["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ModelFormatError(f"{path} is not a valid landmark model card: {error}") from error
    if document.get("format") != FORMAT:
        raise ModelFormatError(f"{path} has format {document.get('format')!r}, expected {FORMAT!r}")
    return LandmarkCard(config, document["fingerprint"], document.get("provenance", {}))


def load_landmark_model(directory: Path = BUNDLED_LANDMARKS_DIR) -> tuple[LandmarkNet, LandmarkCard]:
    """The network in eval mode (float32), after checking its weights against the card's fingerprint."""
    card = read_landmark_card(directory)
    if fingerprint_of(directory / WEIGHTS) != card.fingerprint:
        raise ModelFormatError(f"{directory / WEIGHTS} does not match its recorded fingerprint (changed or damaged)")
    network = LandmarkNet(card.config)
    network.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in load_file(str(directory / WEIGHTS)).items()})
    return network.eval(), card


def landmark_model_available(directory: Path = BUNDLED_LANDMARKS_DIR) -> bool:
    return (directory / CARD).is_file() and (directory / WEIGHTS).is_file()


def install_landmark_model(source: Path, target: Path = BUNDLED_LANDMARKS_DIR) -> str:
    """Make the landmark model in `source` the one in `target` (the bundled one unless told
    otherwise); written beside the old one and swapped in by renames, so a failure leaves the old
    one whole. Returns the fingerprint."""
    network, card = load_landmark_model(source)
    staged, retired = target.with_name(target.name + ".new"), target.with_name(target.name + ".old")
    for leftover in (staged, retired):
        if leftover.exists():
            shutil.rmtree(leftover)
    fingerprint = save_landmark_model(network, staged, card.provenance)
    if target.exists():
        os.replace(target, retired)
    os.replace(staged, target)
    shutil.rmtree(retired, ignore_errors=True)
    return fingerprint
