"""Re-estimate BatchNorm running statistics after training.

With a small BatchNorm momentum (Deeplasia's 0.01) the running means and variances trail the
weights for thousands of steps; a model saved after a short run then predicts in eval mode
from statistics of much earlier weights (bone-age MAD in the hundreds of months while the
training loss is already low). One pass over training images with cumulative averaging
(`torch.optim.swa_utils.update_bn`) sets them for the final weights; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from matcher.model import Bone2GeneModel
from training.augment import to_model_input
from training.film_augment import views_to_input


@torch.no_grad()
def recalibrate_batchnorm(
    model: Bone2GeneModel,
    crops: np.ndarray,
    batch_size: int = 32,
    device: torch.device | None = None,
    to_input: Callable[[torch.Tensor], torch.Tensor] = to_model_input,
) -> Bone2GeneModel:
    """Running statistics of the backbone's BatchNorm layers from `crops` (uint8, as prepared for
    training: Deeplasia crops by default; film views with `to_input=film_views_input(size)`)."""
    device = device or next(model.parameters()).device
    batches = [to_input(torch.from_numpy(crops[i : i + batch_size]).to(device)) for i in range(0, len(crops), batch_size)]
    torch.optim.swa_utils.update_bn(batches, model.backbone, device=device)
    return model.eval()


def film_views_input(size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Film views (uint8, B x V x V) to the model input, as at inference (`training.film_augment.views_to_input`)."""
    return lambda views: views_to_input(views, size)
