"""Train one encoder on real films and synthetic disorders together.

Each step sees two batches (or the real one alone, `JointData.real_only`), both film views (`matcher.film_view`):
- synthetic phantoms after domain randomisation (`training.domain`), drawn by
  pytorch-metric-learning's `MPerClassSampler` (several cases per disorder): ArcFace on
  the embedding, and bone age with a small weight (the renderer's maturation is a model of
  bone age, not a reading of it);
- real RSNA films (`training.real_data`): Deeplasia's bone-age task (sex as input, z-scored
  age, smooth L1), the sex logit, and ArcFace with the label "unaffected". Real films share
  the synthetic controls' class centre (plain ArcFace, one centre per class), which pulls
  real control hands to where the gallery's unaffected cases lie.

A checkpoint (model, loss centres, optimiser) is written after every epoch and
`resume=True` continues from it; a CSV log has one row per epoch with the validation
figures (`training.joint_eval`).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from matcher.checkpoint import load_model, save_model
from matcher.imagenet_weights import start_from_imagenet
from matcher.model import Bone2GeneModel
from training.checkpointing import TrainingParts, resume, save_checkpoint
from training.config_file import plain_data
from training.distributed import pick_device
from training.film_augment import FilmAugmentConfig, augment_views
from training.joint_data import JointData
from training.joint_eval import evaluate_joint
from training.metric_loss import LossKind, MetricLossConfig, m_per_class_sampler
from training.schedule import warmup_cosine
from training.train import new_model_config

UNAFFECTED = "unaffected"


@dataclass
class JointConfig:
    out: Path
    init: Path | None = None  # a Bone2Gene model directory to start from
    # or a checkpoint.pt of an earlier joint run: its network and class centres, with a fresh
    # optimiser and schedule (continue training under a new plan; `resume` keeps the old plan)
    init_checkpoint: Path | None = None
    variant: str = "b0"
    imagenet: bool = False  # without `init`: the backbone starts from the packaged ImageNet weights (variant lite0/1/2)
    input_size: int = 100
    embedding_dim: int = 256
    epochs: int = 8
    synthetic_batch: int = 48
    real_batch: int = 48
    m_per_class: int = 4
    lr: float = 1.5e-3
    loss_lr: float = 1e-2
    weight_decay: float = 1e-4
    warmup_steps: int = 150
    arcface_weight: float = 1.0
    real_metric_weight: float = 0.3
    synthetic_age_weight: float = 0.2
    sex_weight: float = 0.5
    arcface_margin_deg: float = 28.6
    arcface_scale: float = 64.0
    device: str = "auto"
    seed: int = 0
    resume: bool = False
    augment: FilmAugmentConfig = field(default_factory=FilmAugmentConfig)

    def metric_loss(self) -> MetricLossConfig:
        """Plain ArcFace: one centre per class, which real films share with the synthetic controls."""
        return MetricLossConfig(LossKind.ARCFACE, self.arcface_margin_deg, self.arcface_scale)

    def to_json(self) -> dict:
        return plain_data(self)


def initial_model(config: JointConfig, labels: dict[str, int]) -> Bone2GeneModel:
    """A film-view model with `labels`, from `config.init`'s weights when given."""
    model = Bone2GeneModel(new_model_config(config.variant, config.input_size, config.embedding_dim, labels, preprocessing="film"))
    if config.imagenet and config.init is not None:
        raise ValueError("`imagenet` starts from the ImageNet weights and `init` from a model: give one of them")
    if config.imagenet:
        start_from_imagenet(model.backbone, config.variant)
    if config.init is not None:
        base, _ = load_model(config.init)
        if (base.config.variant, base.config.embedding_dim) != (config.variant, config.embedding_dim):
            raise ValueError(
                f"{config.init} is a {base.config.variant} model with {base.config.embedding_dim}-d embeddings; "
                f"set variant/embedding_dim to match it"
            )
        model.load_state_dict(base.float().encoder_state_dict(), strict=False)
    return model


def _build(config: JointConfig, labels: dict[str, int], total_steps: int, device: torch.device) -> TrainingParts:
    model = initial_model(config, labels).to(device).to(memory_format=torch.channels_last)
    metric_loss = config.metric_loss().build(len(labels), config.embedding_dim).to(device)
    if config.init_checkpoint is not None:
        state = torch.load(config.init_checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        metric_loss.load_state_dict(state["loss"])
    optimiser = torch.optim.AdamW(
        [{"params": model.parameters(), "lr": config.lr}, {"params": metric_loss.parameters(), "lr": config.loss_lr}],
        weight_decay=config.weight_decay,
    )
    scheduler = warmup_cosine(optimiser, min(config.warmup_steps, max(1, total_steps // 5)), total_steps, floor=0.01)
    return TrainingParts(model, metric_loss, optimiser, scheduler)


def _step(
    parts: TrainingParts, config: JointConfig, data: JointData, synth_idx: np.ndarray, real_idx: np.ndarray, generator: torch.Generator
) -> dict[str, float]:
    """One optimiser step on a synthetic and a real batch; returns the loss parts."""
    device = data.device
    s, r = torch.from_numpy(synth_idx).to(device), torch.from_numpy(real_idx).to(device)
    views = torch.cat([data.synth_views[s], data.real_views[r]])
    x = augment_views(views, config.augment, config.input_size, generator).contiguous(memory_format=torch.channels_last)
    male = torch.cat([data.synth_male[s], data.real_male[r]])
    out = parts.model(x, male[:, None])
    n = len(s)
    metric = (
        config.arcface_weight * _arcface(parts, config, data, out.embedding, s, len(r))
        if config.arcface_weight and n
        else torch.zeros((), device=device)
    )
    smooth_l1 = nn.functional.smooth_l1_loss
    age_real = smooth_l1(out.bone_age_raw[n:], data.real_age[r], beta=0.1)
    age_synth = smooth_l1(out.bone_age_raw[:n], data.synth_age[s], beta=0.1)
    sex = nn.functional.binary_cross_entropy_with_logits(out.sex_logit[n:], data.real_male[r])
    if n == 0:  # real films only (`JointData.real_only`): bone age and sex
        metric, age_synth = torch.zeros((), device=device), torch.zeros((), device=device)
    loss = metric + age_real + config.synthetic_age_weight * age_synth + config.sex_weight * sex
    parts.optimiser.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(parts.model.parameters(), 5.0)
    parts.optimiser.step()
    parts.scheduler.step()
    return {"metric": metric.item(), "age_real": age_real.item(), "age_synthetic": age_synth.item(), "sex": sex.item()}


def _arcface(
    parts: TrainingParts, config: JointConfig, data: JointData, embedding: torch.Tensor, s: torch.Tensor, n_real: int
) -> torch.Tensor:
    n = len(s)
    unaffected = torch.full((n_real,), data.labels[UNAFFECTED], dtype=torch.long, device=data.device)
    return parts.metric_loss(embedding[:n], data.synth_label[s]) + config.real_metric_weight * parts.metric_loss(embedding[n:], unaffected)


def _append_csv(path: Path, record: dict) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(record))
        if new:
            writer.writeheader()
        writer.writerow(record)


def train_joint(config: JointConfig, data: JointData, log=print) -> Path:
    """Train; returns the directory of the saved model (`config.out / 'model'`)."""
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    data = data.to(device)
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / "config.json").write_text(json.dumps(config.to_json(), indent=1, default=str))
    steps = len(data.real_train) // config.real_batch
    parts = _build(config, data.labels, steps * config.epochs, device)
    checkpoint = config.out / "checkpoint.pt"
    start, history = resume(checkpoint, parts, steps, device) if config.resume and checkpoint.is_file() else (0, [])
    generator = torch.Generator(device=device).manual_seed(config.seed + start)
    rng = np.random.default_rng(config.seed + start)
    synthetic_batch = config.synthetic_batch if data.has_synthetic else 0
    sampler = (
        m_per_class_sampler(data.synth_train_labels, config.m_per_class, synthetic_batch, steps * synthetic_batch)
        if synthetic_batch
        else []
    )
    for epoch in range(start, config.epochs):
        parts.model.train()
        started, sums = time.perf_counter(), {}
        synth_order = data.synth_train[np.fromiter(iter(sampler), dtype=np.int64)]
        real_order = rng.permutation(data.real_train)
        for step in tqdm(range(steps), desc=f"epoch {epoch + 1}/{config.epochs}", mininterval=30, file=sys.stderr):
            losses_now = _step(
                parts,
                config,
                data,
                synth_order[step * synthetic_batch : (step + 1) * synthetic_batch],
                real_order[step * config.real_batch : (step + 1) * config.real_batch],
                generator,
            )
            for key, value in losses_now.items():
                sums[key] = sums.get(key, 0.0) + value
        record = {
            "epoch": epoch + 1,
            "seconds": round(time.perf_counter() - started, 1),
            **{f"loss_{k}": round(v / steps, 4) for k, v in sums.items()},
        }
        record.update(evaluate_joint(parts.model, data, config.input_size))
        history.append(record)
        log(json.dumps(record))
        _append_csv(config.out / "log.csv", record)
        save_checkpoint(checkpoint, parts, epoch + 1, history)
    model = parts.model.to("cpu", memory_format=torch.contiguous_format).eval()
    provenance = {"trained_by": "training.joint", "train_config": config.to_json(), "history": history, **data.provenance()}
    save_model(model, config.out / "model", provenance=provenance)
    return config.out / "model"
