"""Import Deeplasia checkpoints: the one place that knows Deeplasia's names and formats.

Two formats exist (../shared/fixtures/deeplasia/README.md, DESIGN.md section 3):

- legacy Lightning checkpoints of `EfficientDbam`: backbone under `base.*` with the
  lukemelas EfficientNet names, head `fc_gender_in`, `dense_blocks.i`, `fc_boneage`;
  age constants come from a `parameters.yml` entry named after the file;
- new-format checkpoints of `BoneAgeModel`: backbone under `backbone.base.*`, head under
  `dense.*` with a sex logit `fc_sex`, optionally computed by an explicit sex MLP on the
  features (`dense.explicit_sex_classifier.i`); constants `age_mean, age_std, slope, bias` in the file.

Files are read with `torch.load(weights_only=True)`, allowing only the numpy scalar types
the new format stores. A file that needs arbitrary unpickling (real legacy checkpoints
may hold an albumentations object) is refused unless the caller says it trusts it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml

from matcher.errors import Bone2GeneError

STAGE_REPEATS = {"b0": (1, 2, 2, 3, 3, 4, 1), "b4": (2, 4, 4, 6, 6, 8, 2)}
STEM_WIDTH = {32: "b0", 48: "b4"}
TIMM_NAMES = {"b0": "tf_efficientnet_b0", "b4": "tf_efficientnet_b4"}

_MODEL_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
_FIRST_STAGE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_OTHER_STAGES = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


class CheckpointError(Bone2GeneError, ValueError):
    """A checkpoint that cannot be imported, with what to do about it."""


@dataclass(frozen=True)
class AgeCalibration:
    """Deeplasia's output scale and linear bias correction, in months."""

    age_mean: float
    age_sd: float
    slope: float = 0.0
    intercept: float = 0.0

    def months(self, raw: np.ndarray | float) -> np.ndarray:
        """months = y * sd + mean, then months - (months * slope + intercept)."""
        age = np.asarray(raw, dtype=np.float64) * self.age_sd + self.age_mean
        return age - (age * self.slope + self.intercept)


# Deeplasia's output scale in `parameters.yml` (the RSNA training set's bone-age mean and SD, in
# months): every model of ours that is trained from scratch reads bone age on this scale too.
DEEPLASIA_AGE_SCALE = AgeCalibration(127.31657409667969, 41.17934799194336)


@dataclass(frozen=True)
class HeadSpec:
    """Deeplasia's bone-age head as read from the weights' shapes."""

    style: Literal["legacy", "new"]
    dense_widths: tuple[int, ...]
    sex_input_width: int
    has_sex_head: bool
    # new format, optional: an MLP from the pooled features to the sex logit (`explicit_sex_classifier`
    # in Deeplasia's `DenseNetwork`), whose detached logit is the bone-age head's sex input unless
    # the model was trained to take the given sex (`correct_predicted_sex`)
    explicit_sex_widths: tuple[int, ...] = ()
    uses_given_sex: bool = True


@dataclass
class DeeplasiaCheckpoint:
    """A Deeplasia checkpoint translated to our names."""

    source: Path
    style: Literal["legacy", "new"]
    variant: str  # "b0" or "b4"
    input_size: int
    backbone_state: dict[str, torch.Tensor]
    head_state: dict[str, torch.Tensor]
    head: HeadSpec
    calibration: AgeCalibration
    hyper_parameters: dict[str, Any] = field(default_factory=dict)


def _numpy_safe_globals() -> list[Any]:
    """The numpy types new-format checkpoints store (scalar constants), allowed explicitly, under
    numpy 1's name (Deeplasia's pinned stack) and numpy 2's (a file saved again by newer code)."""
    from numpy._core.multiarray import scalar

    return [(scalar, "numpy.core.multiarray.scalar"), scalar, np.dtype, np.dtypes.Float64DType]


def load_raw(path: Path, trust_pickle: bool = False) -> dict[str, Any]:
    """torch.load with `weights_only=True` (numpy scalars allowed), or full unpickling if trusted."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors of every kind: corrupt file or untrusted objects
        if not trust_pickle:
            raise CheckpointError(
                f"{path.name} cannot be read as plain weights ({type(exc).__name__}). Either it is not a "
                "Deeplasia checkpoint or it is damaged, or it contains Python objects (older Deeplasia files "
                "store their augmentation pipeline). Loading those runs code from the file: only if you trust "
                "its source, repeat with --trust-pickle."
            ) from exc
        try:
            raw = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc2:
            raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint: {type(exc2).__name__}") from exc2
    if not isinstance(raw, dict) or "state_dict" not in raw:
        raise CheckpointError(f"{path.name} is not a Lightning checkpoint (no state_dict)")
    return raw


def remap_backbone(state: dict[str, torch.Tensor], prefix: str, variant: str) -> dict[str, torch.Tensor]:
    """lukemelas EfficientNet names under `prefix` -> timm `tf_efficientnet_*` names (drops `_fc`)."""
    repeats = STAGE_REPEATS[variant]
    block_to_stage = [(stage, j) for stage, n in enumerate(repeats) for j in range(n)]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        if name.startswith("_fc."):
            continue
        match = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)$", name)
        if match:
            index, module, leaf = int(match.group(1)), match.group(2), match.group(3)
            if index >= len(block_to_stage):
                raise CheckpointError(f"block {index} does not exist in efficientnet-{variant}")
            stage, j = block_to_stage[index]
            table = _FIRST_STAGE if stage == 0 else _OTHER_STAGES
            if module not in table:
                raise CheckpointError(f"unknown module {module!r} in block {index}")
            out[f"blocks.{stage}.{j}.{table[module]}.{leaf}"] = value
            continue
        module, _, leaf = name.partition(".")
        if module not in _MODEL_LEVEL:
            raise CheckpointError(f"unknown backbone tensor {key!r}")
        out[f"{_MODEL_LEVEL[module]}.{leaf}"] = value
    return out


def _layer_widths(head: dict[str, torch.Tensor], prefix: str) -> tuple[int, ...]:
    """Output widths of the linear layers `prefix.0`, `prefix.1`, ... as the weights give them."""
    widths = []
    while f"{prefix}.{len(widths)}.weight" in head:
        widths.append(int(head[f"{prefix}.{len(widths)}.weight"].shape[0]))
    return tuple(widths)


def _head_spec(head: dict[str, torch.Tensor], style: Literal["legacy", "new"], hyper: dict[str, Any]) -> HeadSpec:
    if "fc_gender_in.weight" not in head or "fc_boneage.weight" not in head:
        raise CheckpointError("the checkpoint has no bone-age head (fc_gender_in / fc_boneage missing)")
    explicit = _layer_widths(head, "explicit_sex_classifier")
    if explicit and "fc_sex.weight" not in head:
        raise CheckpointError("the checkpoint has an explicit sex classifier but no fc_sex layer after it")
    return HeadSpec(
        style,
        _layer_widths(head, "dense_blocks"),
        int(head["fc_gender_in.weight"].shape[0]),
        "fc_sex.weight" in head,
        explicit,
        # Deeplasia's default is False: such a model was trained on its own predicted sex as input
        uses_given_sex=not explicit or bool(hyper.get("correct_predicted_sex", False)),
    )


def _legacy_calibration(path: Path, parameters: Path | None) -> AgeCalibration:
    if parameters is None:
        raise CheckpointError(
            f"{path.name} is a legacy Deeplasia checkpoint: its age constants live in Deeplasia's parameters.yml; pass it with --parameters"
        )
    try:
        table = yaml.safe_load(parameters.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CheckpointError(f"cannot read {parameters}: {exc}") from exc
    entry = table.get(path.stem) if isinstance(table, dict) else None
    if not isinstance(entry, dict) or "slope" not in entry or "intercept" not in entry:
        raise CheckpointError(f"{parameters.name} has no slope/intercept entry named {path.stem!r}")
    return AgeCalibration(float(table["age_mean"]), float(table["age_sd"]), float(entry["slope"]), float(entry["intercept"]))


def read_deeplasia(path: Path | str, parameters: Path | str | None = None, trust_pickle: bool = False) -> DeeplasiaCheckpoint:
    """Read a Deeplasia checkpoint of either format into our names and constants."""
    path = Path(path)
    raw = load_raw(path, trust_pickle)
    state: dict[str, torch.Tensor] = raw["state_dict"]
    hyper = dict(raw.get("hyper_parameters") or {})
    if any(k.startswith("backbone.base.") for k in state):
        style: Literal["legacy", "new"] = "new"
        backbone_prefix, head_prefix = "backbone.base.", "dense."
    elif any(k.startswith("base.") for k in state):
        style, backbone_prefix, head_prefix = "legacy", "base.", ""
    else:
        raise CheckpointError(f"{path.name} does not hold a Deeplasia EfficientNet (no base.* weights)")
    stem = state.get(f"{backbone_prefix}_conv_stem.weight")
    if stem is None or int(stem.shape[0]) not in STEM_WIDTH:
        raise CheckpointError(f"{path.name}: unsupported backbone (stem width {None if stem is None else stem.shape[0]})")
    if int(stem.shape[1]) != 1:
        raise CheckpointError(f"{path.name}: the backbone expects {stem.shape[1]} input channels, not 1")
    variant = STEM_WIDTH[int(stem.shape[0])]
    backbone = remap_backbone(state, backbone_prefix, variant)
    head = {k[len(head_prefix) :]: v for k, v in state.items() if k.startswith(head_prefix) and not k.startswith(backbone_prefix)}
    head = {k: v for k, v in head.items() if not k.startswith(("base.", "backbone."))}
    spec = _head_spec(head, style, hyper)
    if style == "new":
        try:
            calibration = AgeCalibration(float(raw["age_mean"]), float(raw["age_std"]), float(raw["slope"]), float(raw["bias"]))
        except KeyError as exc:
            raise CheckpointError(f"{path.name} lacks the age constant {exc.args[0]!r}") from exc
    else:
        calibration = _legacy_calibration(path, Path(parameters) if parameters else None)
    size = hyper.get("input_size", (512, 512))
    input_size = int(size[-1]) if isinstance(size, (list, tuple)) else int(size)
    return DeeplasiaCheckpoint(path, style, variant, input_size, backbone, head, spec, calibration, hyper)
