"""A training run described in YAML, mapped onto its trainer's typed configuration.

    trainer: metric                  # which trainer (`training.trainers`); metric if absent
    manifest: data/manifest.csv      # the metric trainer's required keys: manifest and out
    out: runs/hospital-a
    init: weights/deeplasia_b0.ckpt  # random weights if absent; a Bone2Gene model dir or a Deeplasia checkpoint
    epochs: 20
    held_out: [trps1]
    augment: {rotation_deg: 10}

Every trainer's configuration is a dataclass; its fields are the keys. Relative paths (the
fields a class names in `path_fields`) are resolved against the YAML file's folder, so a
config travels with its data. Unknown keys, at the top or inside a nested section, are errors
that list the known ones (a typo must not silently train with a default); values are checked
against the field types by pydantic. The resolved configuration (every field, defaults
filled, with its `trainer`) is written beside the run (`config.yaml`), and reads back.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import TypeAdapter, ValidationError

from training.train import TrainConfig, TrainConfigError

Config = TypeVar("Config")
DEFAULT_TRAINER = "metric"


def _nested_dataclass(annotation: object) -> type | None:
    """The dataclass a field holds (also inside `X | None`), or None."""
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    return next((c for c in candidates if dataclasses.is_dataclass(c)), None)


def _check_keys(data: dict[str, Any], cls: type, where: str) -> None:
    """Unknown keys of `cls` (and of the dataclasses nested in it) are refused with the known ones."""
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise TrainConfigError(f"unknown key(s) {', '.join(map(repr, unknown))} in {where}; known keys: {', '.join(known)}")
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        nested = _nested_dataclass(hints[name])
        if nested is not None and isinstance(value, dict):
            _check_keys(value, nested, name)


def _required(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]


def config_from_dict(data: dict[str, Any], base: Path | None = None, cls: type[Config] = TrainConfig) -> Config:
    """A `cls` configuration from plain data (as YAML gives it); relative paths are taken from `base`."""
    if not isinstance(data, dict):
        raise TrainConfigError("a training configuration is a mapping of keys to values (YAML `key: value` lines)")
    _check_keys(data, cls, "the training configuration")
    missing = [name for name in _required(cls) if data.get(name) in (None, "")]
    if missing:
        raise TrainConfigError(
            f"the training configuration needs {' and '.join(missing)} ({getattr(cls, 'required_hint', 'see its fields')})"
        )
    data = dict(data)
    for name in getattr(cls, "path_fields", ()):
        if data.get(name) is not None and base is not None and not Path(data[name]).expanduser().is_absolute():
            data[name] = base / Path(data[name]).expanduser()
    try:
        return TypeAdapter(cls).validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise TrainConfigError(f"training configuration: {problems}") from None
    except ValueError as exc:  # a configuration's own check (`__post_init__`)
        raise TrainConfigError(f"training configuration: {exc}") from None


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise TrainConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise TrainConfigError(f"{path.name} is not valid YAML: {exc}") from None
    return data


def load_run(path: Path) -> tuple[str, Any]:
    """The trainer a YAML file names (`trainer`, default metric) and its configuration."""
    from training.trainers import trainer_named

    data = read_yaml(path)
    name = data.pop("trainer", DEFAULT_TRAINER) if isinstance(data, dict) else DEFAULT_TRAINER
    return name, config_from_dict(data, path.resolve().parent, trainer_named(name).config)


def load_train_config(path: Path) -> TrainConfig:
    """Read a YAML configuration of the metric trainer (see the module docstring)."""
    name, config = load_run(path)
    if not isinstance(config, TrainConfig):
        raise TrainConfigError(f"{path.name} configures the {name} trainer, not the metric trainer")
    return config


def plain_data(value: Any) -> Any:
    """A configuration as YAML/JSON types: dataclasses as mappings, paths as strings, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def write_resolved(config: Any, trainer: str, path: Path) -> None:
    """The configuration as run, every field filled, where `load_run` reads it back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"trainer": trainer, **plain_data(config)}, sort_keys=False))
