"""Fine-tune (or train) the encoder: metric learning on disorders plus Deeplasia's bone-age
task and a sex head, in one network.

- Metric learning: pytorch-metric-learning's sub-centre ArcFace on the embedding head
  (GestaltMatcher-Arc uses ArcFace), batches from its `MPerClassSampler` so every batch
  holds several cases per disorder.
- Bone age: smooth-L1 on Deeplasia's z-scored age (`AgeCalibration`), sex given as input.
- Sex: a logit on the pooled features (no sex input, so nothing leaks).
- Start: random weights, or any Bone2Gene model directory (an imported Deeplasia
  checkpoint is the intended start for real data: `bone2gene model import-deeplasia`).

Disorders listed in `held_out` never reach training: they play GestaltMatcher's "rare"
disorders, added to the gallery afterwards without retraining.

A checkpoint with optimiser state is written after every epoch (`resume=True` continues
from it); the final model is saved in our format with the metrics and settings as provenance.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from pytorch_metric_learning import losses, samplers
from torch import nn

from matcher.checkpoint import load_model, save_model
from matcher.deeplasia import AgeCalibration, HeadSpec
from matcher.model import Bone2GeneModel, ModelConfig
from training.augment import AugmentConfig, augment
from training.checkpointing import TrainingParts, resume, save_checkpoint
from training.dataset import ManifestError, PreparedSet, prepare
from training.evaluate import disorder_ranks, embed_crops, topk_report
from training.schedule import warmup_cosine


@dataclass
class TrainConfig:
    manifest: Path
    out: Path
    variant: str = "b0"
    input_size: int = 256
    embedding_dim: int = 256
    init: Path | None = None  # a Bone2Gene model directory to start from
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
    arcface_margin_deg: float = 28.6
    arcface_scale: float = 64.0
    held_out: tuple[str, ...] = ()
    val_fraction: float = 0.15
    device: str = "auto"
    prepare_workers: int = 0
    seed: int = 0
    resume: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_json(self) -> dict:
        data = asdict(self)
        data["manifest"], data["out"] = str(self.manifest), str(self.out)
        data["init"] = None if self.init is None else str(self.init)
        data["held_out"] = list(self.held_out)
        return data


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def split_by_patient(table, held_out: tuple[str, ...], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks (train, val, held-out). A `split` column wins where it is filled."""
    disorder = table["disorder"].fillna("").astype(str).to_numpy()
    rare = np.isin(disorder, list(held_out))
    patients = table["patient_id"].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    unique = np.unique(patients[~rare])
    val_patients = set(rng.choice(unique, size=round(val_fraction * len(unique)), replace=False)) if len(unique) else set()
    val = np.array([p in val_patients for p in patients]) & ~rare
    if "split" in table.columns:
        split = table["split"].astype(object).where(table["split"].notna(), "").astype(str).to_numpy()
        val = np.where(split == "val", True, np.where(split == "train", False, val)) & ~rare
    train = ~val & ~rare & (disorder != "")
    return train, val, rare


def _initial_model(config: TrainConfig, labels: dict[str, int]) -> Bone2GeneModel:
    if config.init is not None:
        base, _ = load_model(config.init)
        model_config = ModelConfig(
            **{
                **asdict(base.config),
                "head": base.config.head,
                "calibration": base.config.calibration,
                "labels": labels,
                "sex_head_trained": True,
                "embedding_trained": True,
            }
        )
        model = Bone2GeneModel(model_config)
        model.load_state_dict(base.state_dict(), strict=False)
        return model
    return Bone2GeneModel(new_model_config(config.variant, config.input_size, config.embedding_dim, labels))


def new_model_config(
    variant: str, input_size: int, embedding_dim: int, labels: dict[str, int], preprocessing: str = "deeplasia"
) -> ModelConfig:
    """A model trained from scratch: Deeplasia's new-style head and age constants, every head trained."""
    return ModelConfig(
        variant=variant,
        input_size=input_size,
        embedding_dim=embedding_dim,
        head=HeadSpec("new", (256,), 32, False),
        calibration=AgeCalibration(127.31657409667969, 41.17934799194336),
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
    label_of: torch.Tensor  # class index, -1 outside training
    train_idx: np.ndarray
    sampler: samplers.MPerClassSampler
    steps_per_epoch: int


def _batches(
    data: PreparedSet, train_mask: np.ndarray, labels: dict[str, int], model: Bone2GeneModel, config: TrainConfig, device: torch.device
) -> _Batches:
    table = data.table
    train_idx = np.flatnonzero(train_mask)
    y_train = np.array([labels[d] for d in table["disorder"].astype(str).to_numpy()[train_idx]])
    sampler = samplers.MPerClassSampler(y_train, m=config.m_per_class, batch_size=config.batch_size, length_before_new_iter=len(train_idx))
    calibration = model.config.calibration
    ba_column = table["bone_age_months"] if "bone_age_months" in table.columns else table["age_months"]
    age = ((ba_column.to_numpy(np.float64) - calibration.age_mean) / calibration.age_sd).astype(np.float32)
    label_of = torch.full((len(table),), -1, dtype=torch.long)
    label_of[torch.from_numpy(train_idx)] = torch.from_numpy(y_train)
    male = torch.from_numpy((table["sex"] == "M").to_numpy(np.float32))
    return _Batches(
        torch.from_numpy(data.crops).to(device),
        male.to(device),
        torch.from_numpy(age).to(device),
        label_of.to(device),
        train_idx,
        sampler,
        len(sampler) // config.batch_size,
    )


def _epoch(
    parts: TrainingParts, batches: _Batches, config: TrainConfig, generator: torch.Generator, device: torch.device
) -> dict[str, float]:
    """One pass over the sampler's order; returns the summed loss parts."""
    parts.model.train()
    sums = {"metric": 0.0, "age": 0.0, "sex": 0.0}
    order = np.fromiter(iter(batches.sampler), dtype=np.int64)
    cuda = device.type == "cuda"
    for step in range(batches.steps_per_epoch):
        batch = torch.from_numpy(batches.train_idx[order[step * config.batch_size : (step + 1) * config.batch_size]]).to(device)
        x = augment(batches.crops[batch], config.augment, generator)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            out = parts.model(x, batches.male[batch, None])
        metric = parts.metric_loss(out.embedding.float(), batches.label_of[batch])
        age = nn.functional.smooth_l1_loss(out.bone_age_raw.float(), batches.age_target[batch], beta=0.1)
        sex = nn.functional.binary_cross_entropy_with_logits(out.sex_logit.float(), batches.male[batch])
        loss = config.metric_weight * metric + config.age_weight * age + config.sex_weight * sex
        parts.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(parts.model.parameters(), 5.0)
        parts.optimiser.step()
        parts.scheduler.step()
        for key, value in (("metric", metric), ("age", age), ("sex", sex)):
            sums[key] += value.item()
    return sums


def _build(config: TrainConfig, model: Bone2GeneModel, classes: int, steps_per_epoch: int, device: torch.device) -> TrainingParts:
    """The loss centres, optimiser and learning-rate schedule around a model already on `device`."""
    metric_loss = losses.SubCenterArcFaceLoss(
        num_classes=classes, embedding_size=config.embedding_dim, margin=config.arcface_margin_deg, scale=config.arcface_scale
    ).to(device)
    optimiser = torch.optim.AdamW(
        [{"params": model.parameters(), "lr": config.lr}, {"params": metric_loss.parameters(), "lr": config.loss_lr}],
        weight_decay=config.weight_decay,
    )
    scheduler = warmup_cosine(optimiser, int(config.warmup_epochs * steps_per_epoch), steps_per_epoch * config.epochs)
    return TrainingParts(model, metric_loss, optimiser, scheduler)


def train(config: TrainConfig, log=print) -> Path:
    """Train; returns the directory of the saved model (`config.out / 'model'`)."""
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    config.out.mkdir(parents=True, exist_ok=True)
    data: PreparedSet = prepare(config.manifest, config.input_size, workers=config.prepare_workers)
    train_mask, val_mask, _ = split_by_patient(data.table, config.held_out, config.val_fraction, config.seed)
    names = _training_labels(data.table, train_mask, config)
    labels = {name: i for i, name in enumerate(names)}
    model = _initial_model(config, labels).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    batches = _batches(data, train_mask, labels, model, config, device)
    steps = batches.steps_per_epoch
    parts = _build(config, model, len(names), steps, device)
    checkpoint_path = config.out / "checkpoint.pt"
    start_epoch, history = 0, []
    if config.resume and checkpoint_path.is_file():
        start_epoch, history = resume(checkpoint_path, parts, steps, device)
        log(f"resumed after epoch {start_epoch}")
    generator = torch.Generator(device=device).manual_seed(config.seed)
    (config.out / "config.json").write_text(json.dumps(config.to_json(), indent=1, default=str))
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        sums = _epoch(parts, batches, config, generator, device)
        record = {
            "epoch": epoch + 1,
            "seconds": round(time.perf_counter() - started, 1),
            **{f"loss_{k}": round(v / max(1, steps), 4) for k, v in sums.items()},
        }
        record.update(validate(parts.model, data, train_mask, val_mask, device))
        history.append(record)
        log(json.dumps(record))
        with (config.out / "log.jsonl").open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        save_checkpoint(checkpoint_path, parts, epoch + 1, history)
    model = parts.model.to("cpu", memory_format=torch.contiguous_format).eval()
    provenance = {
        "trained_by": "training.train",
        "train_config": config.to_json(),
        "history": history,
        "training_disorders": names,
        "held_out_disorders": list(config.held_out),
    }
    save_model(model, config.out / "model", provenance=provenance)
    return config.out / "model"


def validate(model: Bone2GeneModel, data: PreparedSet, train_mask: np.ndarray, val_mask: np.ndarray, device: torch.device) -> dict:
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
        emb.embeddings[is_val], disorder[is_val], patients[is_val], emb.embeddings[~is_val], disorder[~is_val], patients[~is_val]
    )
    reference = (table["bone_age_months"] if "bone_age_months" in table.columns else table["age_months"]).to_numpy()[index]
    return {
        "val_bone_age_mad_months": round(float(np.mean(np.abs(emb.bone_age_months[is_val] - reference[is_val]))), 2),
        "val_sex_accuracy": round(float(np.mean((emb.male_probability[is_val] > 0.5) == (male[index][is_val] > 0.5))), 4),
        **{f"val_{k}": v for k, v in topk_report(ranks, codes, (1, 5)).items()},
    }
