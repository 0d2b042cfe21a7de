"""What every trainer checkpoints and how it resumes: the network, the loss's class centres and the
optimiser, after each epoch (written atomically); on resume the schedule is fast-forwarded to the
checkpoint's step (`training.schedule.fast_forward`), so a run may also resume under a longer plan."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from matcher.model import Bone2GeneModel
from training.schedule import fast_forward


@dataclass
class TrainingParts:
    model: Bone2GeneModel
    metric_loss: nn.Module
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


def save_checkpoint(path: Path, parts: TrainingParts, epoch: int, history: list[dict]) -> None:
    state = {
        "model": parts.model.state_dict(),
        "loss": parts.metric_loss.state_dict(),
        "optimiser": parts.optimiser.state_dict(),
        "epoch": epoch,
        "history": json.dumps(history),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def resume(path: Path, parts: TrainingParts, steps_per_epoch: int, device: torch.device) -> tuple[int, list[dict]]:
    """Load the checkpoint into `parts`; returns (epochs done, history so far)."""
    state = torch.load(path, map_location=device, weights_only=True)
    parts.model.load_state_dict(state["model"])
    parts.metric_loss.load_state_dict(state["loss"])
    parts.optimiser.load_state_dict(state["optimiser"])
    epoch = int(state["epoch"])
    fast_forward(parts.scheduler, epoch * steps_per_epoch)
    return epoch, json.loads(state["history"])
