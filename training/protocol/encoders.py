"""The representations an evaluation compares, each a unit vector per accepted film.

- the model's embedding (what the gallery stores);
- an untrained encoder of the same architecture (what the architecture gives for free);
- bone-age features without metric learning: the pooled backbone features of a bone-age
  model (a Deeplasia checkpoint, or one of ours trained without the metric loss), the
  "Deeplasia features" baseline;
- pixel thumbnails: the model input shrunk to 16 x 16 (how far raw appearance goes).

Pooled features and thumbnails are not centred by training the way an embedding is: every
vector has a large common component, which makes all cosine similarities near 1. They are
centred on the mean over the evaluated films (no labels used) before normalising.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from matcher.batch import BatchItem, Reading, embed_many, read_batch
from matcher.model import Bone2GeneModel
from training.distributed import pick_device

THUMBNAIL_SIZE = 16


@torch.inference_mode()
def run_network(
    model: Bone2GeneModel,
    inputs: np.ndarray,
    male: np.ndarray,
    device: torch.device,
    batch_size: int = 32,
    reader_inputs: np.ndarray | None = None,
) -> Reading:
    """The model over float16 inputs (N, 1, S, S) with the given sex (1.0 male), read as users get it
    (`matcher.batch.read_batch`: its age and sex reader on `reader_inputs` when it has one, mirror
    averaging where configured), with the encoder's pooled features."""
    model = model.eval().to(device, memory_format=torch.channels_last)  # faster on the CPU, same outputs (benchmarks/model.md)
    parts = []
    for start in range(0, len(inputs), batch_size):
        batch = slice(start, start + batch_size)
        x = torch.from_numpy(inputs[batch].astype(np.float32)).to(device, memory_format=torch.channels_last)
        x_age = None
        if reader_inputs is not None:
            x_age = torch.from_numpy(reader_inputs[batch].astype(np.float32)).to(device, memory_format=torch.channels_last)
        m = torch.from_numpy(male[batch].astype(np.float32)).to(device)[:, None]
        parts.append(read_batch(model, x, m, x_age, with_features=True))
    reading = Reading.concatenate(parts, model.config.embedding_dim)
    if reading.features is None:
        reading.features = np.zeros((0, 0), np.float32)
    return reading


def centred_unit(vectors: np.ndarray) -> np.ndarray:
    """Subtract the mean vector, then scale every row to unit length."""
    centred = vectors.astype(np.float64) - vectors.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return (centred / np.maximum(norms, 1e-12)).astype(np.float32)


def thumbnails(inputs: np.ndarray, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """The model inputs averaged down to size x size, flattened, centred and unit length."""
    pooled = F.adaptive_avg_pool2d(torch.from_numpy(inputs.astype(np.float32)), size).reshape(len(inputs), -1).numpy()
    return centred_unit(pooled)


def embed_films(
    model: Bone2GeneModel, paths: Sequence[Path], sexes: Sequence[str], device: str = "auto", workers: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Films embedded as the gallery embeds them (`matcher.batch.embed_many`): the embeddings of those
    the gate accepts, in order, and which films those are."""
    items = [BatchItem(Path(p), s) for p, s in zip(paths, sexes, strict=True)]
    results = embed_many(model, items, batch_size=16, workers=workers, device=pick_device(device), embedding_only=True)
    accepted = np.array([r.accepted for r in results], dtype=bool)
    dim = model.config.embedding_dim
    return (np.stack([r.embedding for r in results if r.accepted]) if accepted.any() else np.zeros((0, dim), np.float32)), accepted
