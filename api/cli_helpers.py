"""What every `bone2gene` command shares: failing with a clear message, opening a gallery or
a model, and the option types typer validates for us.

Errors of our family (`matcher.errors.Bone2GeneError`) need no handling in a command: the
entry point (`api.cli.main`) prints them as `error: ...` and exits with status 2.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from matcher.rank import RankingRule

if TYPE_CHECKING:
    from index.store import Gallery
    from matcher.checkpoint import ModelCard
    from matcher.model import Bone2GeneModel

EXIT_REFUSED = 2  # the command could not do its job: bad arguments, an unreadable model or gallery
EXIT_NOT_ACCEPTED = 1  # it ran, but the quality gate refused an image (each refusal is printed with its reasons)


def fail(message: str) -> NoReturn:
    """Print `error: message` in red on stderr and exit with status 2."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=EXIT_REFUSED)


class Sex(StrEnum):
    M = "M"
    F = "F"


GalleryArg = Annotated[Path, typer.Argument(help="Gallery directory.")]
GalleryOpt = Annotated[Path, typer.Option("--gallery", help="Gallery directory.")]
ModelOpt = Annotated[Path | None, typer.Option("--model", help="Model directory (default: the bundled demo model).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON instead of a table.")]
SexOpt = Annotated[Sex | None, typer.Option("--sex", case_sensitive=False, help="M or F.")]
TopOpt = Annotated[int, typer.Option("--top", min=1, help="How many disorders and similar cases to show.")]
RuleOpt = Annotated[
    RankingRule,
    typer.Option("--ranking-rule", help="density: class-balanced (default); nearest: GestaltMatcher's nearest case per disorder."),
]


def sex_value(sex: Sex | None) -> str | None:
    return None if sex is None else sex.value


def open_gallery(path: Path) -> Gallery:
    from index.store import Gallery

    return Gallery.open(path)


def load_model_or_bundled(model: Path | None) -> tuple[Bone2GeneModel, ModelCard]:
    from matcher.checkpoint import BUNDLED_MODEL_DIR, load_model

    return load_model(model or BUNDLED_MODEL_DIR)


def same_model(gallery: Gallery, card: ModelCard, option: str = "--model") -> None:
    if card.fingerprint != gallery.model_fingerprint:
        fail(f"the gallery holds model {gallery.model_fingerprint[:12]} but {option} is {card.fingerprint[:12]}; use the gallery's model")
