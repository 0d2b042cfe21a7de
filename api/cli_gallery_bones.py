"""`bone2gene gallery measure` and `bone2gene gallery norms`: the gallery's measured bones and
the norms their pattern-profile z-scores are read against.

Registered on the gallery app by `api.cli`. Heavy imports stay inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli_gallery import gallery_app
from api.cli_helpers import GalleryArg, fail, open_gallery
from matcher.progress import progress_bar


@gallery_app.command("measure")
def gallery_measure(
    path: GalleryArg,
    landmark_model: Annotated[
        Path | None, typer.Option("--landmark-model", help="A landmark model directory (default: the bundled one).")
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Measure every case again (a new landmark model), not only unmeasured ones.")
    ] = False,
) -> None:
    """Measure the 19 tubular bones on each case's stored image (cases added before bones were
    stored, or all of them with --all); the disorders' typical profiles follow."""
    from index.ingest import measure_gallery
    from matcher.hand_measure import HandMeasurer
    from matcher.landmark_files import BUNDLED_LANDMARKS_DIR, landmark_model_available, load_landmark_model

    directory = landmark_model or BUNDLED_LANDMARKS_DIR
    if not landmark_model_available(directory):
        fail(f"no landmark model in {directory}; install one with `bone2gene model install --landmarks DIR` or pass --landmark-model")
    gallery = open_gallery(path)
    measurer = HandMeasurer(load_landmark_model(directory)[0], gallery.bones.norms())
    with progress_bar("measuring", unit="case") as progress:
        count = measure_gallery(gallery, measurer, everything, progress)
    measured = len(gallery.bones.lengths())
    typer.echo(f"measured {count} case(s); {measured} of {gallery.stats().cases} cases in {path} have their bones")
    gallery.close()


@gallery_app.command("norms")
def gallery_norms(
    path: GalleryArg,
    use: Annotated[Path | None, typer.Option("--use", help="Norms JSON from `bone2gene norms fit` for this gallery from now on.")] = None,
    bundled: Annotated[bool, typer.Option("--bundled", help="Go back to the bundled norms.")] = False,
) -> None:
    """Show (or set) the norms this gallery's pattern-profile z-scores are read against."""
    from matcher.bone_norms import load_norms

    if use is not None and bundled:
        fail("give --use FILE or --bundled, not both")
    if use is not None and not use.is_file():
        fail(f"--use {use} does not exist; fit norms with `bone2gene norms fit --out FILE`")
    gallery = open_gallery(path)
    if use is not None or bundled:
        gallery.bones.set_norms(load_norms(use) if use is not None else None)
    norms = gallery.bones.norms()
    typer.echo(f"{path}: norms of {norms.population}")
    gallery.close()
