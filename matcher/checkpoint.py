"""Our model format: a directory with `model.safetensors`, `config.json` and a fingerprint.

safetensors holds tensors only (no code runs on load). The fingerprint is the sha256 of
the weights file: galleries record it so that embeddings of two models never mix.

An age and sex reader (`Bone2GeneModel.attach_reader`) lives in the subdirectory
`age_sex_reader/`, a model directory of its own with its own fingerprint; the encoder's
weights file, and so the fingerprint galleries check, does not change when a reader is
attached, replaced or removed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from matcher.deeplasia import DeeplasiaCheckpoint, read_deeplasia
from matcher.errors import Bone2GeneError
from matcher.model import Bone2GeneModel, ModelConfig

# The demo model shipped with the package (scripts/recipes/ holds the runs that made it).
BUNDLED_MODEL_DIR = Path(__file__).resolve().parent / "weights" / "demo_model"
# Its bone age and sex come from an age and sex reader trained on real RSNA films
# (`demo_model/age_sex_reader/`; demo_model/MODEL_CARD.md and benchmarks/real.md give the figures).
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
AGE_SEX_READER_DIR = "age_sex_reader"
MODEL_CARD_FILE = "MODEL_CARD.md"  # the people-written history of a model directory
# the specs of the disorders a model's encoder was trained on (drawn or written), kept beside it
TRAINING_SPECS_FILE = "training_disorders.yaml"
FORMAT = "bone2gene-model/1"


class ModelFormatError(Bone2GeneError, ValueError):
    """A model directory that is missing, incomplete or inconsistent."""


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """What `bone2gene model info` prints: config, fingerprint and provenance."""

    config: ModelConfig
    fingerprint: str
    provenance: dict
    parameters: int
    age_sex_reader: ModelCard | None = None  # the age and sex reader's card, when the directory has one


def fingerprint_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(
    model: Bone2GeneModel,
    directory: Path,
    provenance: dict | None = None,
    storage_dtype: torch.dtype = torch.float32,
    reader_provenance: dict | None = None,
) -> str:
    """Write weights and config atomically; returns the encoder's fingerprint.

    `storage_dtype=torch.float16` halves the file (the bundled demo model); weights are
    loaded back into float32 parameters either way. An attached reader is written to
    `age_sex_reader/` (with `reader_provenance`); a stale one from an earlier save is removed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if model.age_sex_reader is not None:
        save_model(model.age_sex_reader, directory / AGE_SEX_READER_DIR, reader_provenance, storage_dtype)
    elif (directory / AGE_SEX_READER_DIR).is_dir():
        shutil.rmtree(directory / AGE_SEX_READER_DIR)
    state = {
        k: (v.to(storage_dtype) if v.is_floating_point() else v).detach().contiguous().cpu() for k, v in model.encoder_state_dict().items()
    }
    return write_weights_and_card(directory, (WEIGHTS_FILE, CONFIG_FILE), FORMAT, state, model.config.to_json_dict(), provenance or {})


def write_weights_and_card(
    directory: Path, names: tuple[str, str], file_format: str, state: dict[str, torch.Tensor], config: dict, provenance: dict
) -> str:
    """Write a network's weights (safetensors) and its card (format, fingerprint, config,
    provenance with the time saved) under `names`, each through a temporary file renamed into
    place, so a crash leaves the old pair or the new; returns the weights' fingerprint."""
    weights_name, card_name = names
    tmp_weights = directory / (weights_name + ".tmp")
    save_file(state, str(tmp_weights), metadata={"format": file_format})
    fingerprint = fingerprint_of(tmp_weights)
    document = {
        "format": file_format,
        "fingerprint": fingerprint,
        "config": config,
        "provenance": {"saved": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **provenance},
    }
    tmp_card = directory / (card_name + ".tmp")
    tmp_card.write_text(json.dumps(document, indent=1))
    os.replace(tmp_weights, directory / weights_name)
    os.replace(tmp_card, directory / card_name)
    return fingerprint


def read_card(directory: Path | str) -> ModelCard:
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise ModelFormatError(f"{directory} is not a Bone2Gene model directory ({CONFIG_FILE} and {WEIGHTS_FILE} expected)")
    try:
        document = json.loads(config_path.read_text())
        config = ModelConfig.from_json_dict(document["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ModelFormatError(f"{config_path} is not a valid model config: {exc}") from exc
    if document.get("format") != FORMAT:
        raise ModelFormatError(f"{config_path} has format {document.get('format')!r}, expected {FORMAT!r}")
    state = load_file(str(weights_path))
    reader = read_card(directory / AGE_SEX_READER_DIR) if (directory / AGE_SEX_READER_DIR).is_dir() else None
    return ModelCard(config, document["fingerprint"], document.get("provenance", {}), sum(v.numel() for v in state.values()), reader)


def load_model(directory: Path | str) -> tuple[Bone2GeneModel, ModelCard]:
    """The model in eval mode, after checking the weights against the recorded fingerprint."""
    directory = Path(directory)
    return _load_with_card(directory, read_card(directory))


def _load_with_card(directory: Path, card: ModelCard) -> tuple[Bone2GeneModel, ModelCard]:
    """`load_model` for a card already read (a reader's card comes with its encoder's)."""
    actual = fingerprint_of(directory / WEIGHTS_FILE)
    if actual != card.fingerprint:
        raise ModelFormatError(f"{directory / WEIGHTS_FILE} does not match its recorded fingerprint (changed or damaged)")
    model = Bone2GeneModel(card.config)
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)), strict=True)
    if card.age_sex_reader is not None:
        if card.age_sex_reader.age_sex_reader is not None:
            raise ModelFormatError(
                f"{directory / AGE_SEX_READER_DIR} carries a reader of its own; a reader must be a plain model directory"
            )
        model.attach_reader(_load_with_card(directory / AGE_SEX_READER_DIR, card.age_sex_reader)[0])
    return model.eval(), card


def model_from_deeplasia(checkpoint: DeeplasiaCheckpoint, embedding_dim: int = 256, seed: int = 0) -> Bone2GeneModel:
    """Deeplasia's backbone and bone-age head; a fresh (seeded) embedding head to be trained."""
    config = ModelConfig(
        variant=checkpoint.variant,
        input_size=checkpoint.input_size,
        head=checkpoint.head,
        calibration=checkpoint.calibration,
        embedding_dim=embedding_dim,
        sex_head_trained=checkpoint.head.has_sex_head,
    )
    torch.manual_seed(seed)
    model = Bone2GeneModel(config)
    model.backbone.load_state_dict(checkpoint.backbone_state, strict=True)
    model.bone_age.load_state_dict(checkpoint.head_state, strict=True)
    return model.eval()


def load_model_or_deeplasia(
    path: Path, parameters: Path | None = None, trust_pickle: bool = False, embedding_dim: int = 256, seed: int = 0
) -> Bone2GeneModel:
    """One of our model directories, or a Deeplasia checkpoint file (its embedding head fresh)."""
    path = Path(path)
    if path.is_file():
        return model_from_deeplasia(read_deeplasia(path, parameters, trust_pickle), embedding_dim=embedding_dim, seed=seed)
    return load_model(path)[0]


def import_deeplasia(checkpoint_path: Path, out: Path, parameters: Path | None = None, trust_pickle: bool = False) -> str:
    """Convert one Deeplasia checkpoint into a model directory; returns its fingerprint."""
    checkpoint = read_deeplasia(checkpoint_path, parameters, trust_pickle)
    model = model_from_deeplasia(checkpoint)
    provenance = {
        "imported_from": checkpoint_path.name,
        "source_sha256": fingerprint_of(checkpoint_path),
        "deeplasia_format": checkpoint.style,
        "parameters_yml": parameters.name if parameters else None,
    }
    return save_model(model, out, provenance)


def install_age_sex_reader(model_dir: Path, reader_dir: Path | None, storage_dtype: torch.dtype = torch.float32) -> str | None:
    """Give the model in `model_dir` the age and sex reader in `reader_dir` (None: remove its reader).

    The encoder's files are not touched, so its fingerprint and every gallery built with it stay
    valid. The new reader is written beside the old one and swapped in by renames, so a failure
    leaves the previous reader in place. Returns the installed reader's fingerprint.
    """
    model_dir = Path(model_dir)
    encoder = read_card(model_dir)
    target = model_dir / AGE_SEX_READER_DIR
    if reader_dir is None:
        if target.is_dir():
            shutil.rmtree(target)
        return None
    reader, card = load_model(reader_dir)
    if card.age_sex_reader is not None:
        raise ModelFormatError(f"{reader_dir} carries a reader of its own; a reader must be a plain model directory")
    if not card.config.sex_head_trained:
        raise ModelFormatError(f"{reader_dir}'s sex head is untrained; a reader must give both bone age and sex")
    staging, old = model_dir / (AGE_SEX_READER_DIR + ".new"), model_dir / (AGE_SEX_READER_DIR + ".old")
    for leftover in (staging, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    provenance = {**card.provenance, "reader_of": encoder.fingerprint, "installed_from": str(reader_dir)}
    fingerprint = save_model(reader, staging, provenance, storage_dtype)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    if old.exists():
        shutil.rmtree(old)
    return fingerprint


def amend_config(directory: Path | str, changes: dict, why: str) -> ModelConfig:
    """Change fields of a model directory's config (an inference setting such as `mirror_average`)
    without touching its weights, so its fingerprint and every gallery built with it stay valid.

    Unknown fields or values the config cannot hold are refused before anything is written; the
    new `config.json` replaces the old one by a rename. The change, with `why`, is appended to the
    provenance's `amended` list. Returns the new config.
    """
    directory = Path(directory)
    read_card(directory)  # the directory must be a valid model as it stands
    config_path = directory / CONFIG_FILE
    document = json.loads(config_path.read_text())
    defaults = ModelConfig()
    known = [f.name for f in dataclasses.fields(ModelConfig)]
    for name, value in changes.items():
        if name not in known:
            raise ModelFormatError(f"{name!r} is not a field of a model config; the fields are {', '.join(known)}")
        expected = type(getattr(defaults, name))
        if expected in (bool, int, float, str) and type(value) is not expected:
            raise ModelFormatError(f"{name} takes a {expected.__name__}, not {value!r}; nothing was changed")
    amended = {**document["config"], **changes}
    try:
        config = ModelConfig.from_json_dict(amended)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"the change {changes} does not make a valid model config: {exc}") from exc
    document["config"] = config.to_json_dict()
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    document.setdefault("provenance", {}).setdefault("amended", []).append({"at": stamp, "changes": changes, "why": why})
    tmp_config = directory / (CONFIG_FILE + ".tmp")
    tmp_config.write_text(json.dumps(document, indent=1))
    os.replace(tmp_config, config_path)
    return config


def install_model(source: Path | str, target: Path = BUNDLED_MODEL_DIR, storage_dtype: torch.dtype = torch.float16) -> str:
    """Make the model in `source` (with its age and sex reader) the one in `target`, the bundled
    model unless told otherwise, stored in `storage_dtype`; returns its fingerprint.

    The new model is written beside the old one and swapped in by renames, so a failure leaves
    the old one whole. The target's MODEL_CARD.md stays (a model card is written by people);
    one in `source` replaces it. Galleries embedded with the old model need `gallery reembed`."""
    source, target = Path(source), Path(target)
    model, card = load_model(source)
    staged = target.with_name(target.name + ".new")
    if staged.exists():
        shutil.rmtree(staged)
    reader_provenance = card.age_sex_reader.provenance if card.age_sex_reader is not None else None
    fingerprint = save_model(model, staged, card.provenance, storage_dtype, reader_provenance)
    for notes in (source / MODEL_CARD_FILE, target / MODEL_CARD_FILE):
        if notes.is_file():
            shutil.copy2(notes, staged / MODEL_CARD_FILE)
            break
    if (source / TRAINING_SPECS_FILE).is_file():
        shutil.copy2(source / TRAINING_SPECS_FILE, staged / TRAINING_SPECS_FILE)
    retired = target.with_name(target.name + ".old")
    if retired.exists():
        shutil.rmtree(retired)
    if target.exists():
        os.replace(target, retired)
    os.replace(staged, target)
    shutil.rmtree(retired, ignore_errors=True)
    return fingerprint
