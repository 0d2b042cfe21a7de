"""The Bone2Gene encoder: one forward pass gives an embedding, bone age and a sex logit.

Backbone: timm `tf_efficientnet_b0`/`b4` with one input channel (TF "same" padding and BN
eps 1e-3 are what Deeplasia's weights need; plain `efficientnet_*` is numerically wrong).
Heads on the pooled features:

- `BoneAgeHead`: Deeplasia's head, sex as input. Legacy style: Swish on the features and
  after every layer; new style: ReLU, features untouched, plus a sex logit `fc_sex`.
- `EmbeddingHead`: projection to `embedding_dim` (default 256), L2-normalised; this is
  what metric learning trains and the gallery searches.
- a sex logit on the pooled features when the bone-age head has none (legacy weights);
  `ModelConfig.sex_head_trained` says whether it means anything yet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import timm
import torch
import torch.nn.functional as F
from torch import nn

from matcher.deeplasia import TIMM_NAMES, AgeCalibration, HeadSpec


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the model; stored as JSON beside the weights."""

    variant: str = "b0"
    input_size: int = 512
    head: HeadSpec = HeadSpec("new", (256,), 32, True)
    calibration: AgeCalibration = AgeCalibration(127.31657409667969, 41.17934799194336)
    embedding_dim: int = 256
    dropout: float = 0.2
    drop_path_rate: float = 0.2  # Deeplasia's fine-tuning settings
    bn_momentum: float = 0.01
    sex_head_trained: bool = False
    embedding_trained: bool = False
    labels: dict[str, int] = field(default_factory=dict)
    # how a radiograph becomes the model input: "deeplasia" (mask, square crop, resize:
    # imported Deeplasia weights) or "film" (the whole film as the RSNA 100-px copy shows it,
    # `matcher.film_view`: models trained on real 100-px radiographs)
    preprocessing: Literal["deeplasia", "film"] = "deeplasia"

    @property
    def backbone_name(self) -> str:
        return TIMM_NAMES[self.variant]

    def to_json_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json_dict(cls, data: dict) -> ModelConfig:
        data = dict(data)
        head = data.pop("head")
        head["dense_widths"] = tuple(head["dense_widths"])
        return cls(head=HeadSpec(**head), calibration=AgeCalibration(**data.pop("calibration")), **data)


@dataclass
class ModelOutput:
    features: torch.Tensor  # pooled backbone features (B, F)
    embedding: torch.Tensor  # (B, D), unit length
    bone_age_raw: torch.Tensor  # (B,), Deeplasia's z-scored age
    sex_logit: torch.Tensor  # (B,), > 0 means male


class BoneAgeHead(nn.Module):
    """Deeplasia's dense head; tensor names match Deeplasia's so its weights load as they are."""

    def __init__(self, in_features: int, spec: HeadSpec, dropout: float = 0.2) -> None:
        super().__init__()
        self.style: Literal["legacy", "new"] = spec.style
        self.fc_gender_in = nn.Linear(1, spec.sex_input_width)
        widths = [in_features + spec.sex_input_width, *spec.dense_widths]
        self.dense_blocks = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.fc_boneage = nn.Linear(widths[-1], 1)
        self.fc_sex = nn.Linear(widths[-1], 1) if spec.has_sex_head else None
        self.dropout = nn.Dropout(dropout)
        self.act: nn.Module = nn.SiLU() if spec.style == "legacy" else nn.ReLU()

    def forward(self, features: torch.Tensor, male: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.dropout(features)
        if self.style == "legacy":
            x = self.act(x)
        x = torch.cat([x, self.act(self.fc_gender_in(male))], dim=1)
        for layer in self.dense_blocks:
            x = self.act(self.dropout(layer(x)))
        sex = self.fc_sex(x)[:, 0] if self.fc_sex is not None else None
        return self.fc_boneage(x)[:, 0], sex


class EmbeddingHead(nn.Module):
    """Pooled features -> unit-length embedding (cosine similarity = inner product)."""

    def __init__(self, in_features: int, dim: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.project = nn.Linear(in_features, dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(self.dropout(features)), dim=1)


def _deeplasia_b4_padding(backbone: nn.Module) -> None:
    """Deeplasia's static padding for b4's `blocks.2.0.conv_dw` (5x5, stride 2) is symmetric 2."""
    old = backbone.blocks[2][0].conv_dw
    fixed = nn.Conv2d(old.in_channels, old.out_channels, 5, stride=2, padding=2, groups=old.groups, bias=old.bias is not None)
    fixed.weight = old.weight
    backbone.blocks[2][0].conv_dw = fixed


class Bone2GeneModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = timm.create_model(
            config.backbone_name, in_chans=1, num_classes=0, pretrained=False, drop_path_rate=config.drop_path_rate
        )
        if config.variant == "b4":
            _deeplasia_b4_padding(self.backbone)
        for module in self.backbone.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = config.bn_momentum
        features = self.backbone.num_features
        self.bone_age = BoneAgeHead(features, config.head, config.dropout)
        self.embedding = EmbeddingHead(features, config.embedding_dim, config.dropout)
        self.sex = None if config.head.has_sex_head else nn.Linear(features, 1)

    def forward(self, x: torch.Tensor, male: torch.Tensor) -> ModelOutput:
        """`x`: (B, 1, S, S) preprocessed input; `male`: (B, 1) 1.0 for boys, 0.0 for girls."""
        return self.heads(self.backbone(x), male)

    def heads(self, features: torch.Tensor, male: torch.Tensor) -> ModelOutput:
        """All heads on pooled features: re-running with another sex input skips the backbone."""
        raw, sex = self.bone_age(features, male)
        if sex is None:
            assert self.sex is not None
            sex = self.sex(features)[:, 0]
        return ModelOutput(features, self.embedding(features), raw, sex)

    def bone_age_months(self, raw: torch.Tensor) -> torch.Tensor:
        """Deeplasia's corrected bone age in months (float64 arithmetic)."""
        return torch.from_numpy(self.config.calibration.months(raw.detach().cpu().numpy()))
