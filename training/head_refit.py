"""Refit the embedding head on a frozen backbone's pooled features, under a chosen metric loss.

Why: how spread out the feature space is (and so whether scores separate right from wrong)
depends on the metric loss's margin, scale and sub-centres. Training a whole encoder per loss
setting needs a GPU; the embedding head is one linear layer on the pooled features
(`matcher.model.EmbeddingHead`), so the loss's effect on the head can be measured in seconds
on stored features (`training.pooled_features`), and a better head can replace a bundled
model's head without touching its backbone or its bone-age and sex heads.

The loss is any of `training.metric_loss`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from matcher.checkpoint import load_model, save_model
from matcher.model import EmbeddingHead
from matcher.progress import progress_bar
from training.metric_loss import MetricLossConfig, m_per_class_sampler
from training.pooled_features import FeatureSet, Progress, read_features
from training.protocol.splits import EvaluationError


@dataclass(frozen=True)
class HeadRefitConfig:
    loss: MetricLossConfig = field(default_factory=MetricLossConfig)
    embedding_dim: int = 256
    epochs: int = 60
    batch_size: int = 120
    m_per_class: int = 6
    lr: float = 1e-3
    loss_lr: float = 1e-2
    weight_decay: float = 1e-4
    dropout: float = 0.2
    seed: int = 0

    def to_json(self) -> dict:
        return asdict(self)


def refit_head(features: np.ndarray, labels: Sequence[str], config: HeadRefitConfig, init: EmbeddingHead | None = None) -> EmbeddingHead:
    """A new `EmbeddingHead` trained on (N, F) pooled features with disorder `labels`
    (starting from `init`'s weights when given), returned in eval mode on the CPU."""
    x = torch.as_tensor(np.asarray(features, np.float32))
    names, codes = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    if len(names) < 2:
        raise ValueError("refitting a head needs cases of at least two disorders")
    y = torch.as_tensor(codes, dtype=torch.long)
    torch.manual_seed(config.seed)
    head = EmbeddingHead(x.shape[1], config.embedding_dim, config.dropout)
    if init is not None:
        head.load_state_dict(init.state_dict())
    loss = config.loss.build(len(names), config.embedding_dim)
    optimiser = torch.optim.AdamW(
        [{"params": head.parameters(), "lr": config.lr}, {"params": loss.parameters(), "lr": config.loss_lr}],
        weight_decay=config.weight_decay,
    )
    batch = config.batch_size
    sampler = m_per_class_sampler(codes, config.m_per_class, batch)
    steps = max(1, len(x) // batch)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=[config.lr, config.loss_lr], total_steps=steps * config.epochs)
    head.train()
    for _ in range(config.epochs):
        order = torch.as_tensor(np.fromiter(iter(sampler), dtype=np.int64))
        for step in range(steps):
            idx = order[step * batch : (step + 1) * batch]
            value = loss(head(x[idx]), y[idx])
            optimiser.zero_grad(set_to_none=True)
            value.backward()
            optimiser.step()
            scheduler.step()
    return head.eval()


@torch.inference_mode()
def embed_features(head: EmbeddingHead, features: np.ndarray) -> np.ndarray:
    """Unit embeddings of pooled features under `head`."""
    return head.eval()(torch.as_tensor(np.asarray(features, np.float32))).numpy()


@dataclass(frozen=True, kw_only=True)
class HeadRefitRun(HeadRefitConfig):
    """`trainer: embedding_head`: a model's embedding head refitted on its frozen backbone's pooled
    features of its training films; the held-out disorders of its provenance stay out.

    The films come from `manifest` (read once through the gate and stored as `out/features.npz`,
    which a rerun reuses) or from `features`, a feature set another run stored for the same model.
    """

    path_fields: ClassVar[tuple[str, ...]] = ("model", "manifest", "features", "out")
    required_hint: ClassVar[str] = "the model, its training films (manifest or features) and the run folder"

    model: Path
    out: Path  # the run folder: config.yaml, features.npz and model/ (float16, like the bundled model)
    manifest: Path | None = None  # the model's training films (a case manifest with diagnoses)
    features: Path | None = None  # or their stored features (`training.pooled_features.FeatureSet`)
    limit: int = 0  # read at most this many films of the manifest (a random sample), 0: all
    device: str = "auto"
    workers: int = 0

    def __post_init__(self) -> None:
        if (self.manifest is None) == (self.features is None):
            raise ValueError("give the training films as either manifest (a case manifest) or features (a stored set), one of them")

    def training_features(self, fingerprint: str, progress: Progress = None) -> FeatureSet:
        """The stored features when given (or cached in the run folder), else the manifest's films read now and cached."""
        from training.train import TrainConfigError

        cache = self.out / "features.npz"
        stored = self.features or (cache if cache.is_file() else None)
        try:
            if stored is not None:
                return FeatureSet.load(stored, fingerprint)
            return read_features(self.model, self.manifest, self.limit, self.device, self.workers, progress).save(cache)
        except EvaluationError as error:
            raise TrainConfigError(str(error)) from None


def refit_model_head(run: HeadRefitRun, log: Callable[[str], object] = print, progress: bool = False) -> Path:
    """Refit and save `run.model` with its new head in `run.out / 'model'`; returns that directory."""
    from training.config_file import plain_data, write_resolved
    from training.train import TrainConfigError

    model, card = load_model(run.model)
    if run.embedding_dim != model.config.embedding_dim:
        raise TrainConfigError(f"embedding_dim is {run.embedding_dim} but {run.model} embeds in {model.config.embedding_dim} dimensions")
    with progress_bar("reading training films", unit="film", disable=not progress) as bar:
        data = run.training_features(card.fingerprint, bar)
    disorders = data.cases["disorder"].to_numpy(dtype=str)
    keep = ~np.isin(disorders, sorted(card.provenance.get("held_out_disorders", [])))
    model.embedding = refit_head(data.features[keep], disorders[keep], run)
    provenance = {
        **card.provenance,
        "embedding_head_refit": {
            "from_model": card.fingerprint,
            "loss": run.loss.describe(),
            "config": plain_data(run),
            "train_films": int(keep.sum()),
        },
    }
    write_resolved(run, "embedding_head", run.out / "config.yaml")
    fingerprint = save_model(model.float(), run.out / "model", provenance=provenance, storage_dtype=torch.float16)
    log(f"refitted the head of {card.fingerprint[:12]} under {run.loss.describe()} on {int(keep.sum())} films: model {fingerprint[:12]}")
    return run.out / "model"
