"""A training run described in YAML, mapped onto the typed `TrainConfig`.

    manifest: data/manifest.csv     # the only required keys: manifest and out
    out: runs/hospital-a
    init: weights/deeplasia_b0.ckpt  # random weights if absent; a Bone2Gene model dir or a Deeplasia checkpoint
    epochs: 20
    held_out: [trps1]
    augment: {rotation_deg: 10}

Relative paths are resolved against the YAML file's folder, so a config travels with its
data. Unknown keys are errors that list the known ones (a typo must not silently train
with a default); values are checked against the field types by pydantic. The resolved
configuration (every field, defaults filled) is written beside the run by `train`
(`config.yaml`), and `load_train_config` reads that file back.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from training.augment import AugmentConfig
from training.train import PATH_FIELDS, TrainConfig, TrainConfigError


def _check_keys(data: dict[str, Any], cls: type, where: str) -> None:
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise TrainConfigError(f"unknown key(s) {', '.join(map(repr, unknown))} in {where}; known keys: {', '.join(known)}")


def config_from_dict(data: dict[str, Any], base: Path | None = None) -> TrainConfig:
    """A `TrainConfig` from plain data (as YAML gives it); relative paths are taken from `base`."""
    if not isinstance(data, dict):
        raise TrainConfigError("a training configuration is a mapping of keys to values (YAML `key: value` lines)")
    _check_keys(data, TrainConfig, "the training configuration")
    if isinstance(data.get("augment"), dict):
        _check_keys(data["augment"], AugmentConfig, "augment")
    missing = [name for name in ("manifest", "out") if data.get(name) in (None, "")]
    if missing:
        raise TrainConfigError(f"the training configuration needs {' and '.join(missing)} (the manifest CSV and the run folder)")
    data = dict(data)
    for name in PATH_FIELDS:
        if data.get(name) is not None and base is not None and not Path(data[name]).expanduser().is_absolute():
            data[name] = base / Path(data[name]).expanduser()
    try:
        return TypeAdapter(TrainConfig).validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise TrainConfigError(f"training configuration: {problems}") from None


def load_train_config(path: Path) -> TrainConfig:
    """Read a YAML training configuration (see the module docstring)."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise TrainConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise TrainConfigError(f"{path.name} is not valid YAML: {exc}") from None
    return config_from_dict(data, path.resolve().parent)
