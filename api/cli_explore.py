"""`bone2gene explore umap|compare`: cohort maps and cohort comparisons from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

explore_app = typer.Typer(help="Cohort exploration: UMAP maps and cohort statistics.", no_args_is_help=True)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@explore_app.command("umap")
def explore_umap(
    gallery_path: Annotated[Path, typer.Option("--gallery", help="Gallery directory.")],
    out: Annotated[list[Path], typer.Option("-o", "--out", help="Output .html (interactive), .png, .svg or .pdf; repeatable.")],
    where: Annotated[str | None, typer.Option("--where", help="Subset, e.g. 'disorder=achondroplasia,hypochondroplasia;sex=F;age=60-120'.")] = None,
    colour: Annotated[str, typer.Option("--colour", help="disorder, gene, sex, source, age_months or bone_age_deviation_months.")] = "disorder",
    facet: Annotated[str | None, typer.Option("--facet", help="Static figures: one panel per disorder, gene, sex or source.")] = None,
    query_image: Annotated[Path | None, typer.Option("--query", help="A radiograph to place on the map with its nearest cases.")] = None,
    query_sex: Annotated[str | None, typer.Option("--query-sex", help="M or F for --query.")] = None,
    thumbnails: Annotated[bool, typer.Option("--thumbnails", help="Embed case thumbnails in the HTML (only where sharing images is allowed).")] = False,
    refit: Annotated[bool, typer.Option("--refit", help="Fit again even if a stored map is current.")] = False,
) -> None:
    """Fit (or reuse) a UMAP of the gallery or a subset and draw it."""
    import base64

    from api.cli_gallery import _errors, _model, _open
    from index.explore import MapError, cohort_map, map_table, parse_filter
    from index.map_figures import FigureError, write_html, write_static
    from matcher.analysis import Analyzer

    gallery = _open(gallery_path)
    try:
        filters = parse_filter(where)
        cmap = cohort_map(gallery, filters if filters.active() else None, refit=refit)
    except MapError as exc:
        _fail(str(exc))
        return
    table = map_table(gallery, cmap)
    query_xy, neighbours = None, []
    if query_image is not None:
        model, card = _model(None)
        if card.fingerprint != gallery.model_fingerprint:
            _fail("the gallery was built with another model than the bundled one; --query needs the gallery's model")
        analysis = Analyzer(model).analyze(query_image, sex=query_sex)
        if analysis.embedding is None:
            _fail(f"{query_image.name} was not accepted: {'; '.join(analysis.reasons)}")
        query_xy = cmap.place(analysis.embedding)[0]
        hits = gallery.search(analysis.embedding, 5, filters if filters.active() else None)
        rows = gallery.cases().set_index("row")
        neighbours = [str(rows.at[h.row, "case_id"]) for h in hits]
    thumbs = None
    if thumbnails:
        from api.runtime import png_bytes, thumbnail

        digests = gallery.cases().set_index("case_id")["image_sha256"]
        thumbs = {cid: base64.b64encode(png_bytes(thumbnail(gallery.images.get(d), 160))).decode()
                  for cid, d in digests.loc[table["case_id"]].items() if isinstance(d, str)}  # fmt: skip
    title = f"Bone2Gene cohort map ({len(table)} cases{'; ' + where if where else ''})"
    for target in out:
        try:
            if target.suffix.lower() == ".html":
                write_html(table, colour, target, title, query_xy, neighbours, thumbs)
            else:
                write_static(table, colour, target, title, query_xy, neighbours, facet)
        except (FigureError, *_errors()) as exc:
            _fail(str(exc))
        typer.echo(f"wrote {target}")


@explore_app.command("compare")
def explore_compare(
    gallery_path: Annotated[Path, typer.Option("--gallery", help="Gallery directory.")],
    a: Annotated[str, typer.Option("--a", help="Cohort A, e.g. 'disorder=achondroplasia'.")],
    b: Annotated[str, typer.Option("--b", help="Cohort B, e.g. 'disorder=hypochondroplasia'.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Markdown report to write (figures go beside it).")],
    permutations: Annotated[int, typer.Option("--permutations", help="Random subsets for the tightness tests.")] = 1000,
) -> None:
    """Compare two cohorts: tightness, distance distributions, classifier AUC, heatmap, purity."""
    from api.cli_gallery import _open
    from index.cohort_report import ReportError, write_comparison
    from index.explore import MapError, parse_filter

    gallery = _open(gallery_path)
    try:
        report = write_comparison(gallery, parse_filter(a), parse_filter(b), out, permutations)
    except (MapError, ReportError, ValueError) as exc:
        _fail(str(exc))
        return
    typer.echo(f"wrote {report}")
