"""The learning-rate plan every trainer uses: a linear warm-up, then a cosine decay (torch's schedulers)."""

from __future__ import annotations

import warnings

import torch


def warmup_cosine(
    optimiser: torch.optim.Optimizer, warmup_steps: int, total_steps: int, floor: float = 0.0
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step schedule: each group's rate rises linearly over `warmup_steps`, then follows a cosine down to
    `floor` times its base rate at `total_steps`. Call `step()` after every optimiser step; its state goes in checkpoints."""
    warmup = max(1, min(warmup_steps, total_steps))
    rise = torch.optim.lr_scheduler.LinearLR(optimiser, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup)
    if total_steps <= warmup:
        return rise
    floors = [group["lr"] * floor for group in optimiser.param_groups]
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total_steps - warmup, eta_min=min(floors) if floors else 0.0)
    return torch.optim.lr_scheduler.SequentialLR(optimiser, [rise, decay], milestones=[warmup])


def fast_forward(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> None:
    """Move a fresh schedule to step `steps`: how a resumed run continues, also under a longer plan
    (more epochs) than the one its checkpoint was written with; the rate depends only on the step."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "scheduler.step() before optimizer.step()": intended here
        for _ in range(steps):
            scheduler.step()
