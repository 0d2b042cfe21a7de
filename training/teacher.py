"""A teacher's embeddings of a synthetic cohort, for distillation (`training.joint`).

The previous bundled model learned the disorder space from phantoms at 256 px with
Deeplasia's preprocessing, over 40 GPU epochs. A film-view student trained on a CPU cannot
relearn that space from ArcFace in a few epochs, but it can learn to reproduce the
teacher's embedding of each phantom (cosine distillation): a dense target per image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from matcher.checkpoint import load_model
from training.dataset import prepare
from training.evaluate import embed_crops


def teacher_embeddings(manifest: Path, teacher_dir: Path, cache: Path | None = None, skip_disorders: tuple[str, ...] = ()) -> pd.DataFrame:
    """`case_id` and the teacher's unit embedding per case (cached as `.npz` when `cache` is given);
    cases of `skip_disorders` (held out of training) are left out."""
    if cache is not None and cache.is_file():
        stored = np.load(cache)
        return pd.DataFrame({"case_id": stored["case_id"], "embedding": list(stored["embeddings"])})
    teacher, _ = load_model(teacher_dir)
    teacher = teacher.float().eval()
    teacher = teacher.to(memory_format=torch.channels_last)  # the faster layout on the CPU (benchmarks/model.md)
    prepared = prepare(manifest, teacher.config.input_size)
    keep = ~prepared.table["disorder"].fillna("").astype(str).isin(skip_disorders).to_numpy()
    male = (prepared.table["sex"] == "M").to_numpy(np.float32)[keep]
    embedded = embed_crops(teacher, prepared.crops[keep], male, torch.device("cpu"), batch_size=16)
    case_ids = prepared.table["case_id"].astype(str).to_numpy()[keep]
    if cache is not None:
        np.savez(cache, case_id=case_ids.astype(str), embeddings=embedded.embeddings)
    return pd.DataFrame({"case_id": case_ids, "embedding": list(embedded.embeddings)})
