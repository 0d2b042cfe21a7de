"""`bone2gene norms fit`: pattern-profile norms from unaffected hands (annotated references or a site's controls)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli_helpers import fail
from matcher.progress import progress_bar

norms_app = typer.Typer(help="Bone-length norms for the metacarpophalangeal pattern profile.", no_args_is_help=True)


@norms_app.command("fit")
def fit_command(
    out: Annotated[
        Path, typer.Option("--out", help="Where the norms go (JSON); a gallery uses them after `bone2gene gallery norms G --use FILE`.")
    ],
    atlas: Annotated[Path | None, typer.Option("--atlas", help="A Digital Hand Atlas folder (labels.csv with 37 points).")] = None,
    rsna: Annotated[Path | None, typer.Option("--rsna", help="An rsna_100px folder with keypoints.csv and labels.csv.")] = None,
    reported: Annotated[Path | None, typer.Option("--reported", help="A folder of films reported elsewhere: never in the norms.")] = None,
    controls: Annotated[
        Path | None, typer.Option("--controls", help="A case manifest of your own unaffected films, measured by the landmark model.")
    ] = None,
    landmark_model: Annotated[Path | None, typer.Option("--landmark-model", help="For --controls (default: the bundled one).")] = None,
    population: Annotated[str | None, typer.Option("--population", help="Who the norms describe (written into them).")] = None,
    hold_out: Annotated[
        bool, typer.Option("--hold-out/--no-hold-out", help="Leave out the films the landmark and norm checks report on.")
    ] = True,
) -> None:
    """Fit norms of each bone's proportion by age and sex, and write them to --out."""
    import numpy as np
    import pandas as pd

    from matcher.landmark_files import BUNDLED_LANDMARKS_DIR
    from training.bone_norm_sources import measured_hands, reference_hands
    from training.bone_norms_fit import fit_norms

    for path, option in ((atlas, "--atlas"), (rsna, "--rsna"), (reported, "--reported"), (controls, "--controls")):
        if path is not None and not path.exists():
            fail(f"{option} {path} does not exist")
    if atlas is None and rsna is None and controls is None:
        fail("give unaffected hands: --atlas and/or --rsna (annotated), or --controls (your films)")
    parts = [reference_hands(atlas, rsna, reported, hold_out)] if atlas or rsna else []
    if controls is not None:
        with progress_bar("measuring controls", unit="film") as progress:
            parts.append(measured_hands(controls, landmark_model or BUNDLED_LANDMARKS_DIR, progress))
    hands = pd.concat(parts, ignore_index=True)
    counts = hands["source"].value_counts().to_dict()
    ages = f"{hands['age_years'].min():.1f}-{hands['age_years'].max():.1f} years"
    described = population or ", ".join(f"{n} {source} hands" for source, n in counts.items()) + f", {ages}"
    norms = fit_norms(hands, described)
    out.parent.mkdir(parents=True, exist_ok=True)
    norms.save(out)
    covered = int(np.isfinite(norms.age_range[:, 0]).sum())  # bones whose norm was fitted
    typer.echo(f"norms of {covered} bones from {described}: {out}")
