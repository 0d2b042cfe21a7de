"""Fine-tune (or train) the encoder: metric learning on disorders plus Deeplasia's bone-age
task and a sex head, in one network.

- Metric learning: pytorch-metric-learning's sub-centre ArcFace on the embedding head
  (GestaltMatcher-Arc uses ArcFace), batches from its `MPerClassSampler` so every batch
  holds several cases per disorder.
- Bone age: smooth-L1 on Deeplasia's z-scored age (`AgeCalibration`), sex given as input.
- Sex: a logit on the pooled features (no sex input, so nothing leaks).
- Start: random weights, a Deeplasia checkpoint file (legacy or new format, b0 or b4, with or
  without the explicit sex MLP: the intended start for real data) or a Bone2Gene model.

Disorders listed in `held_out` never reach training: they play GestaltMatcher's "rare"
disorders, added to the gallery afterwards without retraining.

A checkpoint with optimiser state is written after every epoch (`resume=True` continues
from it), the log as JSON lines and CSV; the epoch that retrieves best on the validation
patients is kept (`best_model/`) and becomes the final model (`model/`, our format, with the
metrics and settings as provenance). `bone2gene train CONFIG.yaml` is the command line.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
import yaml
from pytorch_metric_learning import samplers
from torch import nn
from tqdm.auto import tqdm

from matcher.checkpoint import load_model_or_deeplasia, save_model
from matcher.deeplasia import DEEPLASIA_AGE_SCALE, HeadSpec
from matcher.errors import Bone2GeneError
from matcher.imagenet_weights import start_from_imagenet
from matcher.model import Bone2GeneModel, ModelConfig
from training.augment import AugmentConfig, augment
from training.bone_age_targets import bone_age_targets
from training.checkpointing import TrainingParts, resume, save_checkpoint
from training.cohort_record import cohort_record, write_training_specs
from training.dataset import CropCache, ManifestError, prepare
from training.distributed import Ranks, gathered, join, leave, loss_parameters_unscaled, mean_over_ranks, own_share, wait_for_all
from training.evaluate import disorder_ranks, embed_crops, topk_report
from training.metric_loss import LossKind, MetricLossConfig, m_per_class_sampler
from training.protocol.splits import patient_split
from training.schedule import warmup_cosine

PATH_FIELDS = ("manifest", "out", "init", "deeplasia_parameters")  # TrainConfig's paths: strings in JSON/YAML


class TrainConfigError(Bone2GeneError, ValueError):
    """A training configuration that cannot be used, saying which key and why."""

    title = "Invalid training configuration"


@dataclass
class TrainConfig:
    path_fields: ClassVar[tuple[str, ...]] = PATH_FIELDS
    required_hint: ClassVar[str] = "the manifest CSV and the run folder"

    manifest: Path
    out: Path
    variant: str = "b0"
    input_size: int = 256
    embedding_dim: int = 256
    init: Path | None = None  # start from: a Bone2Gene model directory or a Deeplasia checkpoint file (None: random weights)
    imagenet: bool = False  # without `init`: the backbone starts from the packaged ImageNet weights (variant lite0/1/2)
    deeplasia_parameters: Path | None = None  # Deeplasia's parameters.yml, for a legacy checkpoint in `init`
    trust_pickle: bool = False  # allow a Deeplasia checkpoint that needs full unpickling (only from a trusted source)
    epochs: int = 30
    batch_size: int = 64
    m_per_class: int = 4
    lr: float = 2e-3
    loss_lr: float = 2e-2  # ArcFace class centres learn faster than the network
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    age_weight: float = 1.0
    sex_weight: float = 0.3
    metric_weight: float = 1.0
    distil_bone_age: bool = False  # films without a bone-age label: the starting model's bone age is the target (needs `init`)
    arcface_margin_deg: float = 28.6
    arcface_scale: float = 64.0
    # centres per disorder (SubCenterArcFaceLoss); 1 is plain ArcFace: every case of a disorder pulled to one centre
    arcface_sub_centers: int = 3
    held_out: tuple[str, ...] = ()
    val_fraction: float = 0.15
    device: str = "auto"
    prepare_workers: int = 0
    seed: int = 0
    resume: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def metric_loss(self) -> MetricLossConfig:
        return MetricLossConfig(LossKind.SUBCENTER_ARCFACE, self.arcface_margin_deg, self.arcface_scale, self.arcface_sub_centers)

    def to_json(self) -> dict:
        """Plain JSON/YAML types only (paths as strings, tuples as lists)."""
        data = asdict(self)
        for name in PATH_FIELDS:
            data[name] = None if data[name] is None else str(data[name])
        data["held_out"] = list(self.held_out)
        data["augment"] = {k: list(v) if isinstance(v, tuple) else v for k, v in data["augment"].items()}
        return data


def split_by_patient(table, held_out: tuple[str, ...], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks (train, val, held-out). A `split` column wins where it is filled."""
    disorder = table["disorder"].fillna("").astype(str).to_numpy()
    rare = np.isin(disorder, list(held_out))
    val = np.zeros(len(table), bool)
    val[~rare] = patient_split(table["patient_id"].to_numpy()[~rare], val_fraction, np.random.default_rng(seed))
    if "split" in table.columns:
        split = table["split"].astype(object).where(table["split"].notna(), "").astype(str).to_numpy()
        val = np.where(split == "val", True, np.where(split == "train", False, val)) & ~rare
    train = ~val & ~rare & (disorder != "")
    return train, val, rare


def _initial_model(config: TrainConfig, labels: dict[str, int]) -> tuple[Bone2GeneModel, Bone2GeneModel | None]:
    """The model training starts from, and the age and sex reader of `config.init` if it has one:
    carried over to the trained model (fine-tuning changes the embedding, not how bone age and sex
    are read; without it a model fine-tuned from the bundled one would read real films with its
    phantom-trained heads)."""
    if config.init is not None:
        base = load_model_or_deeplasia(config.init, config.deeplasia_parameters, config.trust_pickle, config.embedding_dim, config.seed)
        model_config = ModelConfig(
            **{
                **asdict(base.config),
                "head": base.config.head,
                "calibration": base.config.calibration,
                "labels": labels,
                "input_size": config.input_size,  # the size this run trains at is the size it will infer at
                "sex_head_trained": True,
                "embedding_trained": True,
            }
        )
        model = Bone2GeneModel(model_config)
        model.load_state_dict(base.encoder_state_dict(), strict=False)
        return model, base.age_sex_reader
    model = Bone2GeneModel(new_model_config(config.variant, config.input_size, config.embedding_dim, labels))
    if config.imagenet:
        start_from_imagenet(model.backbone, config.variant)
    return model, None


def new_model_config(
    variant: str, input_size: int, embedding_dim: int, labels: dict[str, int], preprocessing: str = "deeplasia"
) -> ModelConfig:
    """A model trained from scratch: Deeplasia's new-style head and age constants, every head trained."""
    return ModelConfig(
        variant=variant,
        input_size=input_size,
        embedding_dim=embedding_dim,
        head=HeadSpec("new", (256,), 32, False),
        calibration=DEEPLASIA_AGE_SCALE,
        sex_head_trained=True,
        embedding_trained=True,
        labels=labels,
        preprocessing=preprocessing,
    )


def _training_labels(table, train_mask: np.ndarray, config: TrainConfig) -> list[str]:
    if not train_mask.any():
        raise ManifestError("no diagnosed training cases left after holding out disorders and validation")
    names = sorted(table.loc[train_mask, "disorder"].astype(str).unique())
    if len(names) * config.m_per_class < config.batch_size:
        raise ManifestError(
            f"{len(names)} training disorders x {config.m_per_class} cases per disorder cannot fill a batch of "
            f"{config.batch_size}; lower --batch-size or raise --m-per-class"
        )
    return names


@dataclass
class _Batches:
    """The prepared crops and every target, on the device; `train_idx` rows drawn by the sampler."""

    crops: torch.Tensor
    male: torch.Tensor
    age_target: torch.Tensor  # z-scored bone age
    age_known: torch.Tensor  # bool: a label or a distilled target (the others add no bone-age loss)
    label_of: torch.Tensor  # class index, -1 outside training
    train_idx: np.ndarray
    sampler: samplers.MPerClassSampler
    steps_per_epoch: int


def _batches(
    data: CropCache, train_mask: np.ndarray, labels: dict[str, int], model: Bone2GeneModel, config: TrainConfig, device: torch.device
) -> _Batches:
    table = data.table
    train_idx = np.flatnonzero(train_mask)
    y_train = np.array([labels[d] for d in table["disorder"].astype(str).to_numpy()[train_idx]])
    sampler = m_per_class_sampler(y_train, config.m_per_class, config.batch_size)
    targets = bone_age_targets(table, data.crops, model, device, config.distil_bone_age)
    label_of = torch.full((len(table),), -1, dtype=torch.long)
    label_of[torch.from_numpy(train_idx)] = torch.from_numpy(y_train)
    male = torch.from_numpy((table["sex"] == "M").to_numpy(np.float32))
    return _Batches(
        torch.from_numpy(data.crops).to(device),
        male.to(device),
        torch.from_numpy(targets.z).to(device),
        torch.from_numpy(targets.known).to(device),
        label_of.to(device),
        train_idx,
        sampler,
        len(sampler) // config.batch_size,
    )


def _epoch(
    parts: TrainingParts,
    network: nn.Module,
    batches: _Batches,
    config: TrainConfig,
    generator: torch.Generator,
    ranks: Ranks,
    advanced: Callable[[int], object] = lambda _: None,
) -> dict[str, float]:
    """One pass over the sampler's order (the same on every rank); returns the summed loss parts.
    `network` is the model, or its DistributedDataParallel wrapper (`training.distributed`)."""
    parts.model.train()
    device = batches.crops.device
    sums = {"metric": 0.0, "age": 0.0, "sex": 0.0}
    order = np.fromiter(iter(batches.sampler), dtype=np.int64)
    cuda = device.type == "cuda"
    for step in range(batches.steps_per_epoch):
        rows = own_share(batches.train_idx[order[step * config.batch_size : (step + 1) * config.batch_size]], ranks)
        batch = torch.from_numpy(rows).to(device)
        x = augment(batches.crops[batch], config.augment, generator)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            out = network(x, batches.male[batch, None])
        embeddings, labels = gathered(out.embedding.float(), ranks), gathered(batches.label_of[batch], ranks)
        metric = parts.metric_loss(embeddings, labels)
        known = batches.age_known[batch].float()
        age_errors = nn.functional.smooth_l1_loss(out.bone_age_raw.float(), batches.age_target[batch], beta=0.1, reduction="none")
        age = (age_errors * known).sum() / known.sum().clamp(min=1.0)  # films without a target add nothing
        sex = nn.functional.binary_cross_entropy_with_logits(out.sex_logit.float(), batches.male[batch])
        # x world size: DDP averages the ranks' gradients, each of which only reaches its own embeddings
        loss = ranks.world * config.metric_weight * metric + config.age_weight * age + config.sex_weight * sex
        parts.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        loss_parameters_unscaled(parts.metric_loss, ranks)
        nn.utils.clip_grad_norm_(parts.model.parameters(), 5.0)
        parts.optimiser.step()
        parts.scheduler.step()
        for key, value in (("metric", metric), ("age", age), ("sex", sex)):
            sums[key] += value.item()
        advanced(1)
    return sums


def _build(config: TrainConfig, model: Bone2GeneModel, classes: int, steps_per_epoch: int, device: torch.device) -> TrainingParts:
    """The loss centres, optimiser and learning-rate schedule around a model already on `device`."""
    metric_loss = config.metric_loss().build(classes, config.embedding_dim).to(device)
    optimiser = torch.optim.AdamW(
        [{"params": model.parameters(), "lr": config.lr}, {"params": metric_loss.parameters(), "lr": config.loss_lr}],
        weight_decay=config.weight_decay,
    )
    scheduler = warmup_cosine(optimiser, int(config.warmup_epochs * steps_per_epoch), steps_per_epoch * config.epochs)
    return TrainingParts(model, metric_loss, optimiser, scheduler)


def _refuse_contradictions(config: TrainConfig) -> None:
    """Settings that cannot go together, refused before anything is read or written."""
    if config.distil_bone_age and config.init is None:
        raise TrainConfigError(
            "distil_bone_age keeps the starting model's bone age, but `init` is empty (random weights have none to keep)"
        )
    if config.imagenet and config.init is not None:
        raise TrainConfigError("`imagenet` starts from the ImageNet weights and `init` from a model: give one of them")
    if config.arcface_sub_centers < 1:
        raise TrainConfigError(
            f"arcface_sub_centers is {config.arcface_sub_centers}; it must be 1 or more (1: plain ArcFace, one centre per disorder)"
        )


def train(config: TrainConfig, log=print, progress: bool = False) -> Path:
    """Train; returns the directory of the saved model (`config.out / 'model'`): the epoch with the
    best validation retrieval (top-1, then top-5), or the last epoch without a validation split."""
    _refuse_contradictions(config)
    torch.manual_seed(config.seed)
    ranks, device = join(config.device)
    if config.batch_size % (ranks.world * config.m_per_class):
        raise ManifestError(
            f"the batch of {config.batch_size} must split into {ranks.world} rank(s) x whole groups of {config.m_per_class} "
            "cases per disorder; choose a batch size that is a multiple of both"
        )
    config.out.mkdir(parents=True, exist_ok=True)
    data: CropCache = prepare(config.manifest, config.input_size, workers=config.prepare_workers)
    train_mask, val_mask, _ = split_by_patient(data.table, config.held_out, config.val_fraction, config.seed)
    names = _training_labels(data.table, train_mask, config)
    labels = {name: i for i, name in enumerate(names)}
    model, reader = _initial_model(config, labels)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    batches = _batches(data, train_mask, labels, model, config, device)
    steps = batches.steps_per_epoch
    parts = _build(config, model, len(names), steps, device)
    checkpoint_path = config.out / "checkpoint.pt"
    start_epoch, history = 0, []
    if config.resume and checkpoint_path.is_file():
        start_epoch, history = resume(checkpoint_path, parts, steps, device)
        if ranks.main:
            log(f"resumed after epoch {start_epoch}")
    network = (
        nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if ranks.active else model
    )
    generator = torch.Generator(device=device).manual_seed(config.seed + ranks.rank)  # each rank augments its own cases
    if ranks.main:
        (config.out / "config.yaml").write_text(yaml.safe_dump(config.to_json(), sort_keys=False))  # resolved: every field
    provenance = {"trained_by": "training.train", "train_config": config.to_json(), "training_disorders": names, "ranks": ranks.world}
    provenance["held_out_disorders"] = list(config.held_out)
    provenance["cohort"] = cohort_record(config.manifest)
    if reader is not None:
        provenance["age_sex_reader_from"] = str(config.init)
        if ranks.main:
            log(f"bone age and sex stay with the age and sex reader of {config.init}: it is carried over to the trained model")
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        np.random.seed(config.seed + epoch)  # the sampler's order: the same on every rank, and after a resume
        with tqdm(
            total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", unit="step", disable=not (progress and ranks.main), leave=False
        ) as bar:
            sums = mean_over_ranks(_epoch(parts, network, batches, config, generator, ranks, bar.update), ranks)
        record = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - started, 1)}
        record.update({f"loss_{k}": round(v / max(1, steps), 4) for k, v in sums.items()})
        if ranks.main:  # the other ranks keep no history: they neither validate nor write
            record.update(validate(parts.model, data, train_mask, val_mask, device))
            history.append(record)
            log(json.dumps(record))
            _write_logs(config.out, record, history)
            if _is_best(record, history):
                _save_copy(parts.model, config.out / "best_model", {**provenance, "history": history, "epoch": epoch + 1}, reader)
                write_training_specs(config.out / "best_model", config.manifest, names)
            save_checkpoint(checkpoint_path, parts, epoch + 1, history)
        wait_for_all(ranks)
    final = config.out / "model"
    if not ranks.main:
        leave(ranks)
        return final
    shutil.rmtree(final, ignore_errors=True)
    if (config.out / "best_model").is_dir():
        shutil.copytree(config.out / "best_model", final)
    else:
        _save_copy(parts.model, final, {**provenance, "history": history, "epoch": len(history)}, reader)
        write_training_specs(final, config.manifest, names)
    leave(ranks)
    return final


def _write_logs(out: Path, record: dict, history: list[dict]) -> None:
    """One JSON line per epoch (`log.jsonl`) and the whole history as a table (`log.csv`)."""
    with (out / "log.jsonl").open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    pd.DataFrame(history).to_csv(out / "log.csv", index=False)


def _quality(record: dict) -> tuple[float, float]:
    return (record.get("val_top1", float("-inf")), record.get("val_top5", float("-inf")))


def _is_best(record: dict, history: list[dict]) -> bool:
    """The newest epoch retrieves better on validation than every earlier one (needs a validation split)."""
    if "val_top1" not in record:
        return False
    return all(_quality(record) > _quality(earlier) for earlier in history[:-1])


def _save_copy(model: Bone2GeneModel, directory: Path, provenance: dict, reader: Bone2GeneModel | None = None) -> None:
    """The model as trained, with the starting model's age and sex reader (`_initial_model`) when it had one."""
    shutil.rmtree(directory, ignore_errors=True)
    saved = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).eval()
    saved.attach_reader(reader)
    save_model(saved, directory, provenance=provenance)


def validate(model: Bone2GeneModel, data: CropCache, train_mask: np.ndarray, val_mask: np.ndarray, device: torch.device) -> dict:
    """Bone-age MAD, sex accuracy and disorder top-k of validation cases against the training gallery."""
    if not val_mask.any():
        return {}
    table = data.table
    male = (table["sex"] == "M").to_numpy(np.float32)
    both = train_mask | val_mask
    emb = embed_crops(model, data.crops[both], male[both], device)
    index = np.flatnonzero(both)
    is_val = val_mask[index]
    disorder = table["disorder"].astype(str).to_numpy()[index]
    patients = table["patient_id"].astype(str).to_numpy()[index]
    ranks, codes, _ = disorder_ranks(
        emb.embedding[is_val], disorder[is_val], patients[is_val], emb.embedding[~is_val], disorder[~is_val], patients[~is_val]
    )
    reference = pd.to_numeric(table["bone_age_months"], errors="coerce").to_numpy(np.float64)[index]
    labelled = is_val & ~np.isnan(reference)
    return {
        "val_bone_age_mad_months": round(float(np.mean(np.abs(emb.bone_age_months[labelled] - reference[labelled]))), 2)
        if labelled.any()
        else None,
        "val_sex_accuracy": round(float(np.mean((emb.male_probability[is_val] > 0.5) == (male[index][is_val] > 0.5))), 4),
        **{f"val_{k}": v for k, v in topk_report(ranks, codes, (1, 5)).items()},
    }
