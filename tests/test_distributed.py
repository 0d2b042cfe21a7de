"""The distributed training step's arithmetic in a real two-process gloo group: the metric loss on
gathered embeddings, scaled by the world size, plus per-case means, gives DistributedDataParallel
the gradients of one process on the whole batch (`training.distributed`)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from pytorch_metric_learning import losses
from torch import nn

from training.distributed import Ranks, gathered, loss_parameters_unscaled, own_share

BATCH, FEATURES, DIM = 8, 6, 4
M_PER_CLASS = 2


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    x = torch.randn(BATCH, FEATURES, generator=generator)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 0])  # whole m-groups of 2, as the m-per-class sampler gives them
    age = torch.randn(BATCH, generator=generator)
    return x, labels, age


def one_step(rank: int, world: int, port: int, out: str) -> None:
    """One training step's gradients (network and loss centres), written to `out`/rank{rank}.pt."""
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    network = nn.Linear(FEATURES, DIM + 1)
    metric_loss = losses.SubCenterArcFaceLoss(num_classes=3, embedding_size=DIM)
    wrapped = nn.parallel.DistributedDataParallel(network) if world > 1 else network
    ranks = Ranks(rank, world)
    x, labels, age = _batch()
    rows = torch.from_numpy(own_share(np.arange(BATCH), ranks))
    output = wrapped(x[rows])
    embedding = nn.functional.normalize(output[:, :DIM], dim=1)
    metric = metric_loss(gathered(embedding, ranks), gathered(labels[rows], ranks))
    age_loss = nn.functional.smooth_l1_loss(output[:, DIM], age[rows])
    (world * metric + age_loss).backward()  # as training.train._epoch does
    loss_parameters_unscaled(metric_loss, ranks)
    torch.save(
        {"network": [p.grad.clone() for p in network.parameters()], "centres": metric_loss.W.grad.clone(), "metric": metric.item()},
        Path(out) / f"rank{rank}.pt",
    )
    if world > 1:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_get_the_gradients_of_one_process_on_the_whole_batch(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one_step(0, 1, 0, str(tmp_path / "one"))
    try:
        mp.spawn(one_step, args=(2, _free_port(), str(tmp_path / "two")), nprocs=2, join=True)
    except mp.ProcessExitedException as exc:
        # gloo now and then aborts a process at exit ("terminate called without an active exception",
        # SIGABRT) after its step is done: the saved gradients still stand; a crash before them fails below
        if exc.signal_name != "SIGABRT" or not all((tmp_path / "two" / f"rank{r}.pt").is_file() for r in (0, 1)):
            raise
    single = torch.load(tmp_path / "one" / "rank0.pt")
    for rank in (0, 1):
        part = torch.load(tmp_path / "two" / f"rank{rank}.pt")
        assert abs(part["metric"] - single["metric"]) < 1e-5  # every rank sees the loss of the whole batch
        for got, want in zip(part["network"], single["network"], strict=True):
            assert torch.allclose(got, want, atol=1e-6), (got - want).abs().max()  # DDP's average = one process
        assert torch.allclose(part["centres"], single["centres"], atol=1e-6)  # the centres see every embedding


def test_each_rank_takes_whole_m_groups_of_the_global_batch() -> None:
    batch = np.array([10, 11, 20, 21, 30, 31, 40, 41])  # pairs of one class each, as MPerClassSampler(m=2) yields them
    shares = [own_share(batch, Ranks(rank, 2)) for rank in (0, 1)]
    assert [s.tolist() for s in shares] == [[10, 11, 20, 21], [30, 31, 40, 41]]
    assert np.array_equal(np.concatenate(shares), batch) and own_share(batch, Ranks()).tolist() == batch.tolist()
