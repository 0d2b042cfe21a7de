"""Radiographs of an evaluation manifest, read and gated once for every model compared.

Reading, masking and the quality gate cost as much as a forward pass; an evaluation runs
three or four networks over the same films, so each film is prepared once and the inputs of
every distinct (preprocessing, input size) are kept, as float16 to halve the memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from matcher.batch import gate_and_prepare
from matcher.model import ModelConfig

InputKey = tuple[str, int]  # (preprocessing, input size)


def input_key(config: ModelConfig) -> InputKey:
    return (config.preprocessing, config.input_size)


@dataclass
class GatedInputs:
    """`accepted[i]`: film i passed the gate; `tensors[key]` holds the accepted films' inputs in order."""

    accepted: np.ndarray
    reasons: list[list[str]]
    tensors: dict[InputKey, np.ndarray]

    def for_config(self, config: ModelConfig) -> np.ndarray:
        return self.tensors[input_key(config)]


class _Films(Dataset):
    def __init__(self, paths: Sequence[Path], configs: Sequence[ModelConfig]) -> None:
        self.paths = list(paths)
        self.configs = list(configs)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, list[np.ndarray] | None, list[str]]:
        prepared = gate_and_prepare(self.paths[index], self.configs)
        inputs = None if prepared.inputs is None else [x.astype(np.float16) for x in prepared.inputs]
        return index, inputs, prepared.reasons


def _single_thread(_: int) -> None:
    torch.set_num_threads(1)


def prepare_inputs(
    paths: Sequence[Path], configs: Sequence[ModelConfig], workers: int = 0, progress: Callable[[int, int], None] | None = None
) -> GatedInputs:
    """Gate every film once and build the inputs each distinct config needs; `progress(done, total)` per film."""
    distinct: dict[InputKey, ModelConfig] = {}
    for config in configs:
        distinct.setdefault(input_key(config), config)
    loader = DataLoader(
        _Films(paths, list(distinct.values())),
        batch_size=None,
        num_workers=workers,
        worker_init_fn=_single_thread if workers else None,
    )
    accepted = np.zeros(len(paths), bool)
    reasons: list[list[str]] = [[] for _ in paths]
    kept: dict[InputKey, list[np.ndarray]] = {key: [] for key in distinct}
    for done, (index, inputs, why) in enumerate(loader, start=1):
        reasons[index] = list(why)
        if inputs is not None:
            accepted[index] = True
            for key, tensor in zip(distinct, inputs, strict=True):
                kept[key].append(np.asarray(tensor))
        if progress is not None:
            progress(done, len(paths))
    tensors = {key: np.stack(values) if values else np.zeros((0, 1, key[1], key[1]), np.float16) for key, values in kept.items()}
    return GatedInputs(accepted, reasons, tensors)
