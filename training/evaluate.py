"""Embedding cached crops and scoring a model the way DESIGN.md section 5 asks.

Disorder ranking follows GestaltMatcher (nearest gallery case per disorder, top-k macro
averaged over disorders); cases of the query's own patient are never evidence. Bone age is
reported as mean absolute deviation in months, sex as accuracy.
"""

from __future__ import annotations

import numpy as np
import torch

from matcher.batch import Reading, read_batch
from matcher.model import Bone2GeneModel
from matcher.rank import LabelIndex, label_ranks, macro_topk, nearest_per_label
from training.augment import to_model_input


@torch.inference_mode()
def embed_crops(model: Bone2GeneModel, crops: np.ndarray, male: np.ndarray, device: torch.device, batch_size: int = 128) -> Reading:
    """Run the network over cached uint8 crops (no augmentation), given sex as 1.0/0.0: bone age and sex
    from its own heads, the ones a trainer trains."""
    model.eval()
    parts = []
    autocast = device.type == "cuda"
    for start in range(0, len(crops), batch_size):
        x = to_model_input(torch.from_numpy(crops[start : start + batch_size]).to(device))
        if next(model.parameters()).is_contiguous(memory_format=torch.channels_last) and x.shape[1] == 1:
            x = x.contiguous(memory_format=torch.channels_last)
        m = torch.from_numpy(male[start : start + batch_size].astype(np.float32)).to(device)[:, None]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            parts.append(read_batch(model, x, m, own_heads=True))
    return Reading.concatenate(parts, model.config.embedding_dim)


def disorder_ranks(
    query: np.ndarray,
    query_labels: np.ndarray,
    query_patients: np.ndarray,
    gallery: np.ndarray,
    gallery_labels: np.ndarray,
    gallery_patients: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, LabelIndex]:
    """Rank of each query's true disorder among the gallery's disorders.

    Returns the ranks, the queries' label codes, and the label index; queries whose
    disorder is not in the gallery are dropped (rank -1 would be meaningless).
    """
    labels = LabelIndex.of(list(gallery_labels))
    lookup = {name: i for i, name in enumerate(labels.names)}
    keep = np.array([str(lab) in lookup for lab in query_labels])
    sims = query[keep] @ gallery.T
    same_patient = np.asarray(query_patients)[keep][:, None] == np.asarray(gallery_patients)[None, :]
    sims[same_patient] = -np.inf
    best, _ = nearest_per_label(sims, labels)
    codes = np.array([lookup[str(lab)] for lab in np.asarray(query_labels)[keep]], dtype=np.int64)
    return label_ranks(best, codes), codes, labels


def topk_report(ranks: np.ndarray, codes: np.ndarray, ks: tuple[int, ...] = (1, 5, 10, 30)) -> dict[str, float]:
    return {f"top{k}": round(v, 4) for k, v in macro_topk(ranks, codes, ks).items()}
