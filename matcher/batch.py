"""Embed many radiographs: decoding, masking and the gate run in worker processes while
the model runs batched in the main process (a DataLoader pipeline)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from matcher.errors import RadiographError
from matcher.inputs import model_input
from matcher.io import read_radiograph
from matcher.mask import segment_hand
from matcher.model import Bone2GeneModel, ModelConfig
from matcher.quality import assess_quality


@dataclass(frozen=True)
class BatchItem:
    path: Path
    sex: str  # "M" or "F": bone age needs it, so batch callers must know it


@dataclass
class FilmResult:
    path: Path
    accepted: bool
    reasons: list[str]
    embedding: np.ndarray | None = None
    bone_age_months: float | None = None
    male_probability: float | None = None
    pixels: np.ndarray | None = None  # the decoded radiograph, when asked for (gallery image store)


class _Prepared(Dataset):
    """The encoder's input ("x") and, for a model with an age and sex reader, the reader's ("x_age")."""

    def __init__(self, items: Sequence[BatchItem], configs: Sequence[ModelConfig], keep_pixels: bool = False) -> None:
        self.items = list(items)
        self.configs = list(configs)
        self.keep_pixels = keep_pixels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        prepared = gate_and_prepare(item.path, self.configs)
        inputs = prepared.inputs or [np.zeros((1, c.input_size, c.input_size), np.float32) for c in self.configs]
        sample = {"index": index, "ok": prepared.inputs is not None, "reasons": "\n".join(prepared.reasons), "x": inputs[0]}
        if len(inputs) > 1:
            sample["x_age"] = inputs[1]
        sample["pixels"] = prepared.pixels if self.keep_pixels and prepared.inputs is not None else None
        return sample


@dataclass
class GatedFilm:
    """One radiograph through decoding, the hand mask and the quality gate: the model inputs
    (one per config asked for; None when refused) and the gate's reasons."""

    inputs: list[np.ndarray] | None
    reasons: list[str]
    pixels: np.ndarray | None = None


def gate_and_prepare(path: Path, configs: Sequence[ModelConfig]) -> GatedFilm:
    """Decode, mask and gate once, then build each config's (1, S, S) input: the reads and the
    gate are the expensive part, so several models (an evaluation's baselines) share them."""
    try:
        radiograph = read_radiograph(path)
        hand = segment_hand(radiograph.pixels)
        verdict = assess_quality(radiograph, hand)
        if not verdict.accepted:
            return GatedFilm(None, list(verdict.reasons))
        inputs = [model_input(radiograph.pixels, hand.mask, config).tensor for config in configs]
    except RadiographError as exc:
        return GatedFilm(None, [str(exc)])
    return GatedFilm(inputs, [], radiograph.pixels)


def _collate(samples: list[dict]) -> dict:
    """Stack the model inputs; pixels of different sizes travel as a list."""
    batch = {
        "index": np.array([s["index"] for s in samples]),
        "ok": np.array([s["ok"] for s in samples]),
        "reasons": [s["reasons"] for s in samples],
        "x": torch.from_numpy(np.stack([s["x"] for s in samples])),
        "pixels": [s.get("pixels") for s in samples],
    }
    if "x_age" in samples[0]:
        batch["x_age"] = torch.from_numpy(np.stack([s["x_age"] for s in samples]))
    return batch


def _single_thread_worker(_: int) -> None:
    torch.set_num_threads(1)  # workers decode; the main process owns the cores for inference


def _to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@dataclass
class Reading:
    """What the model reads from a set of prepared inputs, as `analyze` and the gallery get it."""

    embedding: np.ndarray  # (N, D) unit length
    bone_age_months: np.ndarray  # (N,)
    male_probability: np.ndarray  # (N,)
    features: np.ndarray | None = None  # (N, F) the encoder's pooled features, when asked for (evaluation baselines)

    @classmethod
    def concatenate(cls, parts: Sequence[Reading], dim: int) -> Reading:
        if not parts:
            return cls(np.zeros((0, dim), np.float32), np.zeros(0), np.zeros(0), None)
        features = None if parts[0].features is None else np.concatenate([p.features for p in parts])
        return cls(
            *(np.concatenate([getattr(p, name) for p in parts]) for name in ("embedding", "bone_age_months", "male_probability")), features
        )


def _views(model: Bone2GeneModel, x: torch.Tensor, male: torch.Tensor):
    """The model's outputs over the input and, where its config asks for `mirror_average`, its
    mirror image; returns them with the number of views (1 or 2)."""
    views = 2 if model.config.mirror_average else 1
    if views == 2:
        x, male = torch.cat([x, x.flip(-1)]), torch.cat([male, male])
    return model(x, male), views


def _mean(values: torch.Tensor, views: int) -> torch.Tensor:
    return values.float().unflatten(0, (views, -1)).mean(0)


@torch.inference_mode()
def read_batch(
    model: Bone2GeneModel,
    x: torch.Tensor,
    male: torch.Tensor,
    x_age: torch.Tensor | None = None,
    with_features: bool = False,
    own_heads: bool = False,
) -> Reading:
    """One batch through the model as users get it: the encoder's unit embedding; bone age and sex
    from its age and sex reader (on `x_age`, the reader's input) when it has one; each network read
    from the input and its mirror image, averaged, where its config asks (the same views and means
    as `Analyzer` takes for one image). `male` is (B, 1), 1.0 for male. `own_heads`: the network's
    own bone-age and sex heads even where a reader is attached (what a trainer trains)."""
    out, views = _views(model, x, male)
    embedding = torch.nn.functional.normalize(_mean(out.embedding, views), dim=1)
    features = out.features[: len(x)].float().cpu().numpy() if with_features else None
    raw, probability = _mean(out.bone_age_raw, views), _mean(torch.sigmoid(out.sex_logit.float()), views)
    reader = None if own_heads else model.age_sex_reader
    if reader is not None:
        if x_age is None:
            raise ValueError("this model reads bone age and sex with its age and sex reader: pass the reader's input as x_age")
        age_out, age_views = _views(reader, x_age, male)
        raw, probability = _mean(age_out.bone_age_raw, age_views), _mean(torch.sigmoid(age_out.sex_logit.float()), age_views)
    months = (reader or model).config.calibration.months(raw.cpu().numpy())
    return Reading(embedding.cpu().numpy(), months, probability.cpu().numpy(), features)


def embed_many(
    model: Bone2GeneModel,
    items: Sequence[BatchItem],
    batch_size: int = 8,
    workers: int = 1,
    device: str | torch.device = "cpu",
    channels_last: bool = True,
    keep_pixels: bool = False,
    embedding_only: bool = False,
) -> list[FilmResult]:
    """Embeddings, bone ages and sex probabilities for many images, in input order (bone age and
    sex from the model's age and sex reader when it has one). `embedding_only`: the embeddings
    alone (bone age and sex left None), without the reader's second network and its input, for
    evaluations that read nothing else (half the work where a reader is attached).

    Channels-last is the default because it gives the same outputs (within 1e-4) and the
    forward was faster with it at batch 1 and 8 on the CPU (benchmarks/model.md).
    """
    device = torch.device(device)
    model = model.eval().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    reader = None if embedding_only else model.age_sex_reader
    loader = DataLoader(
        _Prepared(items, [model.config] if reader is None else [model.config, reader.config], keep_pixels),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        worker_init_fn=_single_thread_worker if workers else None,
        persistent_workers=False,
        pin_memory=torch.device(device).type == "cuda",
    )
    results: list[FilmResult | None] = [None] * len(items)
    for batch in loader:
        ok = batch["ok"].astype(bool)
        indices = batch["index"]
        for i in indices[~ok]:
            results[i] = FilmResult(items[i].path, False, batch["reasons"][list(indices).index(i)].split("\n"))
        if ok.any():
            male = torch.tensor([[1.0 if items[i].sex == "M" else 0.0] for i in indices[ok]], device=device)
            x = _to_device(batch["x"][ok], device, channels_last)
            x_age = _to_device(batch["x_age"][ok], device, channels_last) if reader is not None else None
            reading = read_batch(model, x, male, x_age, own_heads=embedding_only)
            pixels = [p for p, good in zip(batch["pixels"], ok, strict=True) if good]
            for row, i in enumerate(indices[ok]):
                results[i] = FilmResult(
                    items[i].path,
                    True,
                    [],
                    reading.embedding[row],
                    None if embedding_only else float(reading.bone_age_months[row]),
                    None if embedding_only else float(reading.male_probability[row]),
                    pixels[row],
                )
    return [r for r in results if r is not None]
