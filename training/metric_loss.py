"""The metric loss and the batch sampler of every trainer, built from configuration.

pytorch-metric-learning's losses (ArcFace, sub-centre ArcFace, CosFace) and its
`MPerClassSampler` (several cases per disorder in every batch, so that each batch holds
positives for every class it shows). A trainer names the loss in its configuration; swapping
one loss for another is a change of `kind`, not of code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from pytorch_metric_learning import losses, samplers
from torch import nn

from matcher.errors import Bone2GeneError


class SamplerError(Bone2GeneError, ValueError):
    """Batches the sampler cannot make from these labels; the message says what to change."""


class LossKind(StrEnum):
    ARCFACE = "arcface"
    SUBCENTER_ARCFACE = "subcenter_arcface"
    COSFACE = "cosface"


@dataclass(frozen=True)
class MetricLossConfig:
    kind: LossKind = LossKind.ARCFACE
    margin: float = 28.6  # degrees for ArcFace, a cosine margin for CosFace
    scale: float = 64.0
    sub_centers: int = 1  # sub-centre ArcFace only: centres per class

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", LossKind(self.kind))  # YAML gives the kind as a string
        if self.sub_centers < 1:
            raise ValueError(f"sub_centers is {self.sub_centers}; it must be 1 or more (1: one centre per disorder)")

    def build(self, classes: int, dim: int) -> nn.Module:
        """The loss module with `classes` learnable class centres in a `dim`-d embedding space."""
        if self.kind == LossKind.ARCFACE:
            return losses.ArcFaceLoss(classes, dim, margin=self.margin, scale=self.scale)
        if self.kind == LossKind.SUBCENTER_ARCFACE:
            return losses.SubCenterArcFaceLoss(
                num_classes=classes, embedding_size=dim, margin=self.margin, scale=self.scale, sub_centers=self.sub_centers
            )
        return losses.CosFaceLoss(classes, dim, margin=self.margin, scale=self.scale)

    def describe(self) -> str:
        if self.kind == LossKind.COSFACE:
            return f"CosFace margin {self.margin} scale {self.scale:g}"
        name = "ArcFace" if self.kind == LossKind.ARCFACE else f"sub-centre ArcFace ({self.sub_centers} centres)"
        return f"{name} margin {self.margin:g} deg scale {self.scale:g}"


def m_per_class_sampler(
    labels: Sequence[int] | np.ndarray, m: int, batch_size: int, length: int | None = None
) -> samplers.MPerClassSampler:
    """An order of the rows of `labels` in which every batch of `batch_size` holds `m` rows of each
    class it shows; one pass yields `length` rows (default: as many as there are rows)."""
    classes = len(np.unique(np.asarray(labels)))
    if classes * m < batch_size:
        raise SamplerError(
            f"{classes} disorders x {m} cases per disorder cannot fill a batch of {batch_size}; "
            "lower the batch size or the cases per disorder (m_per_class), or train on more disorders"
        )
    return samplers.MPerClassSampler(labels, m=m, batch_size=batch_size, length_before_new_iter=len(labels) if length is None else length)
