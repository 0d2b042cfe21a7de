"""The trainers `bone2gene train` runs, by the name a YAML file gives in `trainer:`.

Each is a configuration dataclass (its fields are the YAML keys, read strictly by
`training.config_file`) and a function that trains from it and returns the directory of the
model it made. Adding a trainer is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.train import TrainConfigError


@dataclass(frozen=True)
class Trainer:
    name: str
    config: type
    run: Callable[..., Path]  # run(config, log=..., progress=...) -> the model's directory
    summary: str
    resumes: bool  # checkpoints every epoch, so `--resume` continues a run
    picks_device: bool  # has a `device` setting


def _trainers() -> dict[str, Trainer]:
    from training.age_sex_reader import AgeSexReaderConfig, train_age_sex_reader
    from training.head_refit import HeadRefitRun, refit_model_head
    from training.landmark_training import LandmarkRun, train_landmarks
    from training.train import TrainConfig, train

    return {
        t.name: t
        for t in (
            Trainer("metric", TrainConfig, train, "the encoder: metric learning on disorders, with bone age and sex", True, True),
            Trainer(
                "age_sex_reader", AgeSexReaderConfig, train_age_sex_reader, "bone age and sex on real films (a model's reader)", True, True
            ),
            Trainer(
                "embedding_head", HeadRefitRun, refit_model_head, "a model's embedding head refitted on its frozen features", False, False
            ),
            Trainer("landmarks", LandmarkRun, train_landmarks, "the hand landmark model on annotated real films and phantoms", True, True),
        )
    }


def trainer_named(name: Any) -> Trainer:
    """The trainer called `name`; an unknown name is refused with the known ones."""
    trainers = _trainers()
    if name not in trainers:
        known = ", ".join(f"{t.name} ({t.summary})" for t in trainers.values())
        raise TrainConfigError(f"unknown trainer {name!r}; known trainers: {known}")
    return trainers[name]
