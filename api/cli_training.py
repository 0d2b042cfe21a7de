"""`bone2gene train CONFIG.yaml`: run a trainer from a YAML run description."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli_helpers import fail


def train_command(
    config_file: Annotated[
        Path, typer.Argument(help="YAML run description: `trainer:` (metric, age_sex_reader or embedding_head) and its keys.")
    ],
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in the config's `out` from its last checkpoint.")] = False,
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1 ... (overrides the file; default: auto).")] = None,
) -> None:
    """Train from a YAML configuration: the encoder (`trainer: metric`, the default), an age and sex
    reader on real films (`age_sex_reader`) or a model's embedding head (`embedding_head`).

    Writes to the config's `out`: config.yaml (resolved, every key), checkpoints every epoch,
    logs, and the model (metric: best_model/ and model/; age_sex_reader: finished/; embedding_head:
    model/). Several GPUs or machines: start the metric trainer with torchrun (README).
    """
    from training.config_file import load_run
    from training.distributed import launched_rank
    from training.trainers import trainer_named

    name, config = load_run(config_file)
    trainer = trainer_named(name)
    if resume and not trainer.resumes:
        fail(f"the {name} trainer keeps no checkpoints to resume from (it runs in one go); run it again without --resume")
    if device is not None and not trainer.picks_device:
        fail(f"the {name} trainer runs on the CPU; leave out --device")
    if resume:
        config.resume = True
    if device is not None:
        config.device = device
    model_dir = trainer.run(config, log=typer.echo, progress=True)
    if launched_rank() == 0:  # under torchrun, one rank speaks
        typer.echo(f"model: {model_dir}")
