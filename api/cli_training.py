"""`bone2gene train CONFIG.yaml`: fine-tune or train the encoder from a YAML run description."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def train_command(
    config_file: Annotated[Path, typer.Argument(help="YAML training configuration (keys: the fields of training.train.TrainConfig).")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in the config's `out` from its last checkpoint.")] = False,
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1 ... (overrides the file; default: auto).")] = None,
) -> None:
    """Train from a YAML configuration: random weights, a Deeplasia checkpoint or one of our models.

    Writes to the config's `out`: config.yaml (resolved), checkpoint.pt (every epoch), log.csv and
    log.jsonl, best_model/ and model/ (the epoch with the best validation retrieval).
    Several GPUs or machines: start it with torchrun (README, "Training on several GPUs").
    """
    from training.config_file import load_train_config
    from training.distributed import launched_rank
    from training.train import train

    config = load_train_config(config_file)
    config.resume = config.resume or resume
    if device is not None:
        config.device = device
    model_dir = train(config, log=typer.echo, progress=True)
    if launched_rank() == 0:  # under torchrun, one rank speaks
        typer.echo(f"model: {model_dir}")
