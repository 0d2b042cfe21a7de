"""Several processes training one model (`torchrun`): DistributedDataParallel on the network,
the metric loss on the embeddings of every rank, one rank writing.

    torchrun --nproc_per_node 4 -m api.cli train run.yaml                       # 4 GPUs, one machine
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 4 \\
             --rdzv_backend c10d --rdzv_endpoint host0:29500 -m api.cli train run.yaml   # and node_rank 1 on host1

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them training is one process. The
backend is NCCL on GPUs and gloo on CPUs. `TrainConfig.batch_size` stays the global batch:
every step, all ranks draw the same m-per-class batch (same seed) and each takes its own
contiguous share of whole m-groups, so every rank's share still holds several cases per
disorder. The metric loss sees the embeddings gathered from all ranks (each rank's own part
keeps its gradient), and is scaled by the world size so that DDP's gradient average equals
the one-process gradient of the whole batch; the loss's own parameters (ArcFace centres) live
outside DDP and see every embedding on every rank, so their gradient is divided back
(`loss_parameters_unscaled`). Bone age and sex are per-case means, which DDP's average already
makes whole-batch. Batch-norm statistics stay per rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        """The rank that validates and writes logs, checkpoints and models."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 when not launched by torchrun)."""
    return int(os.environ.get("RANK", "0"))


def join(device_name: str) -> tuple[Ranks, torch.device]:
    """Join the torchrun job if there is one; the device this rank trains on."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks(), pick_device(device_name)
    ranks = Ranks(launched_rank(), world, int(os.environ.get("LOCAL_RANK", "0")))
    cuda = torch.cuda.is_available() and not device_name.startswith("cpu")
    device = torch.device(f"cuda:{ranks.local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return ranks, device


def leave(ranks: Ranks) -> None:
    if ranks.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wait_for_all(ranks: Ranks) -> None:
    if ranks.active:
        dist.barrier()


def own_share(batch: np.ndarray, ranks: Ranks) -> np.ndarray:
    """This rank's contiguous share of a global batch (whole m-groups when the share is a multiple of m)."""
    size = len(batch) // ranks.world
    return batch[ranks.rank * size : (ranks.rank + 1) * size]


def gathered(tensor: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Every rank's `tensor` concatenated in rank order; this rank's part keeps its gradient."""
    if not ranks.active:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(ranks.world)]
    dist.all_gather(parts, tensor.detach().contiguous())
    parts[ranks.rank] = tensor
    return torch.cat(parts)


def loss_parameters_unscaled(loss: torch.nn.Module, ranks: Ranks) -> None:
    """After backward: the metric loss's own parameters got the world-size-scaled gradient of the
    whole batch on every rank (identically); bring it back to the one-process gradient."""
    if ranks.active:
        for parameter in loss.parameters():
            if parameter.grad is not None:
                parameter.grad.div_(ranks.world)


def mean_over_ranks(values: dict[str, float], ranks: Ranks) -> dict[str, float]:
    """Per-rank numbers (a rank's own half of every batch) averaged over all ranks, for the log."""
    if not ranks.active:
        return values
    names = sorted(values)
    totals = torch.tensor([values[name] for name in names], dtype=torch.float64)
    dist.all_reduce(totals)
    return {name: float(total) / ranks.world for name, total in zip(names, totals, strict=True)}
