"""`bone2gene explore umap|compare`: cohort maps and cohort comparisons from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli_helpers import GalleryOpt, Sex, fail, same_model, sex_value

explore_app = typer.Typer(help="Cohort exploration: UMAP maps and cohort statistics.", no_args_is_help=True)


@explore_app.command("umap")
def explore_umap(
    gallery_path: GalleryOpt,
    out: Annotated[list[Path], typer.Option("-o", "--out", help="Output .html (interactive), .png, .svg or .pdf; repeatable.")],
    where: Annotated[
        str | None, typer.Option("--where", help="Subset, e.g. 'disorder=achondroplasia,hypochondroplasia;sex=F;age=60-120'.")
    ] = None,
    colour: Annotated[
        str, typer.Option("--colour", help="disorder, gene, sex, source, age_months or bone_age_deviation_months.")
    ] = "disorder",
    facet: Annotated[str | None, typer.Option("--facet", help="Static figures: one panel per disorder, gene, sex or source.")] = None,
    query_image: Annotated[Path | None, typer.Option("--query", help="A radiograph to place on the map with its nearest cases.")] = None,
    query_sex: Annotated[Sex | None, typer.Option("--query-sex", case_sensitive=False, help="M or F for --query.")] = None,
    thumbnails: Annotated[
        bool, typer.Option("--thumbnails", help="Embed case thumbnails in the HTML (only where sharing images is allowed).")
    ] = False,
    refit: Annotated[bool, typer.Option("--refit", help="Fit again even if a stored map is current.")] = False,
) -> None:
    """Fit (or reuse) a UMAP of the gallery or a subset and draw it."""
    import base64

    from api.cli_helpers import load_model_or_bundled, open_gallery
    from index.explore import cohort_map, map_table
    from index.filters import Filters
    from index.map_figures import write_html, write_static
    from matcher.analysis import AnalysisOptions, Analyzer

    gallery = open_gallery(gallery_path)
    filters = Filters.parse(where)
    cmap = cohort_map(gallery, filters if filters.active() else None, refit=refit)
    table = map_table(gallery, cmap)
    query_xy, neighbours = None, []
    if query_image is not None:
        model, card = load_model_or_bundled(None)
        same_model(gallery, card, "the bundled model (--query uses it)")
        analysis = Analyzer(model, AnalysisOptions(hand=None)).analyze(query_image, sex=sex_value(query_sex))  # placed by its embedding
        if analysis.embedding is None:
            fail(f"{query_image.name} was not accepted: {'; '.join(analysis.reasons)}")
        query_xy = cmap.place(analysis.embedding)[0]
        hits = gallery.search(analysis.embedding, 5, filters if filters.active() else None)
        rows = gallery.cases().set_index("row")
        neighbours = [str(rows.at[h.row, "case_id"]) for h in hits]
    thumbs = None
    if thumbnails:
        from api.pictures import png_bytes, thumbnail

        digests = gallery.cases().set_index("case_id")["image_sha256"]
        thumbs = {
            cid: base64.b64encode(png_bytes(thumbnail(gallery.images.get(d), 160))).decode()
            for cid, d in digests.loc[table["case_id"]].items()
            if isinstance(d, str)
        }
    title = f"Bone2Gene cohort map ({len(table)} cases{'; ' + where if where else ''})"
    for target in out:
        if target.suffix.lower() == ".html":
            write_html(table, colour, target, title, query_xy, neighbours, thumbs)
        else:
            write_static(table, colour, target, title, query_xy, neighbours, facet)
        typer.echo(f"wrote {target}")


@explore_app.command("compare")
def explore_compare(
    gallery_path: GalleryOpt,
    a: Annotated[str, typer.Option("--a", help="Cohort A, e.g. 'disorder=achondroplasia'.")],
    b: Annotated[str, typer.Option("--b", help="Cohort B, e.g. 'disorder=hypochondroplasia'.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Markdown report to write (figures go beside it).")],
    permutations: Annotated[int, typer.Option("--permutations", help="Random subsets for the tightness tests.")] = 1000,
) -> None:
    """Compare two cohorts: tightness, distance distributions, classifier AUC, heatmap, purity."""
    from api.cli_helpers import open_gallery
    from index.cohort_report import write_comparison
    from index.filters import Filters

    gallery = open_gallery(gallery_path)
    report = write_comparison(gallery, Filters.parse(a), Filters.parse(b), out, permutations)
    typer.echo(f"wrote {report}")
