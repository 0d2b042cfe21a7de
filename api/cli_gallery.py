"""`bone2gene gallery ...`, `bone2gene disorders ...` and `bone2gene query`.

Registered on the main app by `api.cli`. Heavy imports stay inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from api.cli_helpers import (
    EXIT_NOT_ACCEPTED,
    GalleryArg,
    GalleryOpt,
    JsonOpt,
    ModelOpt,
    RuleOpt,
    Sex,
    SexOpt,
    TopOpt,
    fail,
    load_model_or_bundled,
    open_gallery,
    same_model,
    sex_value,
)
from matcher.progress import progress_bar
from matcher.rank import DEFAULT_RULE, RankingRule

if TYPE_CHECKING:
    from api.use_cases import AnalysedFilms
    from index.evidence import ClinicalFindings
    from index.filters import Filters
    from index.query import QueryResult

DEFAULT_GALLERY = Path("demo-data") / "gallery"

gallery_app = typer.Typer(help="Create and curate a gallery of confirmed cases.", no_args_is_help=True)
disorders_app = typer.Typer(help="The disorder catalogue of a gallery.", no_args_is_help=True)


@gallery_app.command("init")
def gallery_init(
    path: GalleryArg,
    model: ModelOpt = None,
    index: Annotated[str, typer.Option("--index", help="FAISS index factory: Flat (exact), HNSW32, IVF1024,Flat ...")] = "Flat",
    seed: Annotated[bool, typer.Option("--seed/--no-seed", help="Seed the catalogue with the built-in disorders.")] = True,
) -> None:
    """Create an empty gallery tied to a model's fingerprint."""
    from index.store import Gallery
    from index.vectors import IndexSpec

    _, card = load_model_or_bundled(model)
    try:
        gallery = Gallery.create(path, card.fingerprint, card.config.embedding_dim, IndexSpec(index))
    except RuntimeError as exc:
        fail(f"FAISS cannot build index {index!r}: {str(exc).splitlines()[0]}")
    from index.builtin_catalogue import seed_catalogue

    seeded = seed_catalogue(gallery) if seed else 0
    typer.echo(
        f"created gallery {path} for model {card.fingerprint[:12]} ({card.config.embedding_dim}-d, index {index}); {seeded} disorders in the catalogue"
    )


@gallery_app.command("add")
def gallery_add(
    path: GalleryArg,
    manifest: Annotated[
        Path,
        typer.Argument(
            help="Case manifest CSV (DESIGN.md section 2, or Deeplasia's layout), or GA4GH phenopackets: a .json file or a folder of them."
        ),
    ],
    model: ModelOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")] = 8,
    workers: Annotated[int, typer.Option("--workers", help="Decoding processes.")] = 1,
) -> None:
    """Embed the manifest's images and add them as confirmed cases (already present case ids are skipped)."""
    import tempfile

    from index.ingest import add_manifest, manifest_from_phenopackets

    gallery = open_gallery(path)
    with tempfile.TemporaryDirectory() as folder, progress_bar("embedding", unit="image") as progress:
        if manifest.is_dir() or manifest.suffix.lower() == ".json":
            manifest = manifest_from_phenopackets(manifest, gallery, Path(folder))
        added, refusals = add_manifest(gallery, manifest, model, batch_size, workers, progress)
    for refusal in refusals:
        typer.echo(f"  not added: {refusal}", err=True)
    typer.echo(f"added {added} case(s) to {path}; {len(refusals)} refused by the quality gate; gallery now holds {gallery.stats().cases}")
    gallery.close()  # saves an index file that a large gallery deferred


@gallery_app.command("phenopacket")
def gallery_phenopacket(
    path: GalleryArg,
    case_id: Annotated[str, typer.Argument(help="The case to export.")],
    out: Annotated[Path | None, typer.Option("--out", help="Write here (default: print).")] = None,
    image_uri: Annotated[str | None, typer.Option("--image-uri", help="Where the receiver finds the radiograph (default: none).")] = None,
) -> None:
    """A gallery case as a GA4GH phenopacket (v2 JSON): sex, age, HPO terms, diagnosis and gene."""
    from index.phenopackets_io import case_phenopacket, to_json

    gallery = open_gallery(path)
    table = gallery.cases()
    rows = table[table["case_id"] == case_id]
    if rows.empty:
        fail(f"no case {case_id!r} in {path}; `bone2gene gallery list {path}` shows the ids")
    case = rows.iloc[0].to_dict()
    disorder = gallery.disorder(case["disorder"])
    text = to_json(case_phenopacket(case, disorder, image_uri))
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"wrote {out}")


@gallery_app.command("remove")
def gallery_remove(path: GalleryArg, case_ids: Annotated[list[str], typer.Argument(help="Case ids to delete.")]) -> None:
    """Delete cases everywhere: vectors, metadata and stored images."""
    gallery = open_gallery(path)
    for case_id in case_ids:
        gallery.remove_case(case_id)
        typer.echo(f"removed {case_id}")
    gallery.close()


@gallery_app.command("relabel")
def gallery_relabel(
    path: GalleryArg,
    case_id: Annotated[str, typer.Argument(help="Case id.")],
    disorder: Annotated[str, typer.Option("--disorder", help="Catalogue id or name ('' = undiagnosed).")],
    gene: Annotated[str | None, typer.Option("--gene", help="Confirmed gene symbol.")] = None,
) -> None:
    """Change a case's confirmed diagnosis."""
    gallery = open_gallery(path)
    gallery.relabel(case_id, disorder or None, gene)
    typer.echo(f"{case_id}: now {disorder or 'undiagnosed'}{f' ({gene.upper()})' if gene else ''}")


def _filters(sex: Sex | None, age_min: float | None, age_max: float | None, source: str | None, disorder: list[str] | None) -> Filters:
    from index.filters import Filters

    return Filters.of(sex=sex_value(sex), age_min_months=age_min, age_max_months=age_max, source=source, disorders=tuple(disorder or ()))


@gallery_app.command("list")
def gallery_list(
    path: GalleryArg,
    disorder: Annotated[list[str] | None, typer.Option("--disorder", help="Only these disorder ids (repeatable).")] = None,
    sex: SexOpt = None,
    age_min: Annotated[float | None, typer.Option("--age-min", help="Minimum age (months).")] = None,
    age_max: Annotated[float | None, typer.Option("--age-max", help="Maximum age (months).")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only this source site.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List cases, optionally filtered."""
    gallery = open_gallery(path)
    table = gallery.cases(_filters(sex, age_min, age_max, source, disorder)).drop(columns=["row", "image_sha256"])
    if as_json:
        typer.echo(table.to_json(orient="records"))
    else:
        typer.echo(table.to_string(index=False) if len(table) else "(no cases)")


@gallery_app.command("stats")
def gallery_stats(path: GalleryArg, as_json: JsonOpt = False) -> None:
    """Counts by disorder, sex, source and age; index and model."""
    from dataclasses import asdict

    stats = open_gallery(path).stats()
    if as_json:
        typer.echo(json.dumps(asdict(stats)))
        return
    lines = [
        f"cases {stats.cases} ({stats.patients} patients), {stats.disorders_with_cases} of {stats.catalogue_disorders} catalogue disorders have cases",
        f"model {stats.model_fingerprint[:16]} ({stats.embedding_dim}-d); index {stats.index_factory} holding {stats.index_vectors} vectors; "
        f"generation {stats.generation}; images {stats.image_bytes / 1e6:.1f} MB",
        "by sex: " + ", ".join(f"{k} {v}" for k, v in stats.by_sex.items()),
        "by age: " + ", ".join(f"{k} {v}" for k, v in stats.by_age_band.items()),
        "by source: " + ", ".join(f"{k} {v}" for k, v in stats.by_source.items()),
        "by disorder:",
        *[f"  {k:32s} {v}" for k, v in stats.by_disorder.items()],
    ]
    typer.echo("\n".join(lines))


@gallery_app.command("calibration")
def gallery_calibration(path: GalleryArg, as_json: JsonOpt = False, rule: RuleOpt = DEFAULT_RULE) -> None:
    """How well a ranking rule's scores are calibrated on this gallery (reliability table), recomputing if stale."""
    from index.query import calibration_for

    calibration = calibration_for(open_gallery(path), rule=rule)
    if calibration is None:
        fail("too few cases to calibrate: at least 10 cases whose disorder has another patient are needed")
        return
    if as_json:
        typer.echo(json.dumps(calibration.to_json()))
        return
    lines = [
        f"calibrated leave-one-patient-out on {calibration.queries} cases of {calibration.disorders} disorders",
        f"expected calibration error (two-fold cross-fitted): {calibration.expected_calibration_error:.3f}",
        f"'no close match' when the nearest diagnosed case's similarity is below {calibration.no_match_threshold:.4f}, "
        f"or its log(1 - similarity) exceeds the first-ranked disorder's typical one by more than "
        f"{calibration.no_match_relative_threshold or float('nan'):.2f}: "
        + (
            f"fires on {calibration.no_match_fires_when_absent:.0%} of cases whose disorder is absent, "
            f"stays off for {calibration.no_match_off_when_present:.0%} of cases whose disorder is present and "
            f"{calibration.no_match_off_when_right:.0%} of right answers (leave one patient out)"
            if calibration.no_match_off_when_present is not None
            else "(a calibration from an older version: recompute it)"
        ),
        "each disorder's probability is P(the query's disorder is in the gallery, from the nearest diagnosed case's "
        "similarity) x P(this disorder | in the gallery); the reliability is that of the second factor",
        "reliability (predicted probability bins vs observed share of right disorders):",
        f"  {'bin':>9}  {'pairs':>6}  {'predicted':>9}  {'observed':>8}",
        *[f"  {r['bin']:>9}  {r['pairs']:>6}  {r['mean_predicted']:>9.3f}  {r['observed']:>8.3f}" for r in calibration.reliability],
    ]
    typer.echo("\n".join(lines))


@gallery_app.command("reembed")
def gallery_reembed(path: GalleryArg, model: Annotated[Path, typer.Option("--model", help="The new model directory.")]) -> None:
    """Re-embed every case from its stored image with a new model (one atomic swap)."""
    from index.ingest import reembed_gallery

    gallery = open_gallery(path)
    loaded, card = load_model_or_bundled(model)
    with progress_bar("re-embedding", unit="case") as progress:
        count = reembed_gallery(gallery, loaded, card, progress)
    typer.echo(f"re-embedded {count} case(s) with model {card.fingerprint[:12]}")


@gallery_app.command("export")
def gallery_export(path: GalleryArg, out: Annotated[Path, typer.Option("-o", "--out", help="Snapshot file (.tar) to write.")]) -> None:
    """Write a consistent snapshot of the gallery (database + images)."""
    open_gallery(path).export_snapshot(out)
    typer.echo(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


@gallery_app.command("import")
def gallery_import(
    snapshot: Annotated[Path, typer.Argument(help="Snapshot .tar from `gallery export`.")],
    path: Annotated[Path, typer.Argument(help="New gallery directory.")],
) -> None:
    """Create a gallery from a snapshot (every image is checked against its digest)."""
    from index.store import Gallery

    gallery = Gallery.import_snapshot(snapshot, path)
    typer.echo(f"imported {gallery.stats().cases} case(s) into {path}")


@disorders_app.command("add")
def disorders_add(
    gallery_path: GalleryOpt,
    disorder_id: Annotated[str, typer.Option("--id", help="Short id: lower case, digits, underscores.")],
    name: Annotated[str, typer.Option("--name", help="Dyadic name, e.g. 'Geleophysic dysplasia, ADAMTSL2-related'.")],
    gene: Annotated[list[str] | None, typer.Option("--gene", help="Gene symbol (repeatable).")] = None,
    category: Annotated[
        str, typer.Option("--category", help="skeletal_dysplasia, growth_disorder_non_nosology or control.")
    ] = "skeletal_dysplasia",
    omim: Annotated[str | None, typer.Option("--omim", help="OMIM phenotype number (6 digits).")] = None,
    orpha: Annotated[str | None, typer.Option("--orpha", help="ORPHA code (digits).")] = None,
    mondo: Annotated[str | None, typer.Option("--mondo", help="MONDO:0000000.")] = None,
    group: Annotated[int | None, typer.Option("--nosology-group", help="Nosology group number.")] = None,
    revision: Annotated[int | None, typer.Option("--nosology-revision", help="Nosology revision year, e.g. 2023.")] = None,
    hpo: Annotated[
        list[str] | None,
        typer.Option("--hpo", help="HPO term of the disorder (repeatable; default: the ontology's annotations of --omim/--orpha)."),
    ] = None,
) -> None:
    """Add a disorder (e.g. a newly described syndrome) to the catalogue."""
    from pydantic import ValidationError

    from index.catalogue import Disorder

    try:
        disorder = Disorder(
            id=disorder_id,
            name=name,
            genes=gene or [],
            category=category,
            omim=omim,
            orpha=orpha,
            mondo=mondo,
            nosology_group=group,
            nosology_revision=revision,
        )
    except ValidationError as exc:
        fail("; ".join(f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}" for e in exc.errors()))
        return
    disorder = disorder.with_phenotypes(add=hpo or [], from_ontology=not hpo)
    open_gallery(gallery_path).add_disorders([disorder])
    typer.echo(f"added {disorder.id}: {disorder.name} ({len(disorder.phenotypes)} HPO terms)")


@disorders_app.command("phenotypes")
def disorders_phenotypes(
    gallery_path: GalleryOpt,
    disorder_id: Annotated[str, typer.Argument(help="The disorder's id.")],
    add: Annotated[list[str] | None, typer.Option("--add", help="HPO term to add (repeatable).")] = None,
    remove: Annotated[list[str] | None, typer.Option("--remove", help="HPO term to remove (repeatable).")] = None,
    from_ontology: Annotated[
        bool, typer.Option("--from-ontology", help="Start from the ontology's annotations of its OMIM/ORPHA entry.")
    ] = False,
) -> None:
    """Show or edit a disorder's HPO annotations (curators)."""
    from index.hpo import term_name

    gallery = open_gallery(gallery_path)
    current = gallery.disorder(disorder_id)
    if current is None:
        fail(f"disorder {disorder_id!r} is not in the catalogue; `bone2gene disorders list` shows the ids")
        return
    if add or remove or from_ontology:
        try:
            current = current.with_phenotypes(add or [], remove or [], from_ontology)
        except ValueError as exc:
            fail(str(exc))
        gallery.add_disorders([current], replace=True)
    for term in current.phenotypes:
        typer.echo(f"{term}  {term_name(term)}")
    typer.echo(f"{current.id}: {len(current.phenotypes)} HPO terms")


@disorders_app.command("list")
def disorders_list(gallery_path: GalleryOpt, as_json: JsonOpt = False) -> None:
    """The catalogue, with how many gallery cases each disorder has."""
    gallery = open_gallery(gallery_path)
    counts = gallery.stats().by_disorder
    rows = [{**d.model_dump(), "cases": counts.get(d.id, 0)} for d in gallery.disorders()]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        group = f"G{r['nosology_group']} ({r['nosology_revision']})" if r["nosology_group"] else r["category"]
        typer.echo(f"{r['id']:28s} {r['cases']:5d}  {group:28s} {r['name']}  [{', '.join(r['genes'])}]")


def query_command(
    images: Annotated[
        list[Path],
        typer.Argument(
            help="The radiograph(s) to match (DICOM, PNG, JPEG, TIFF); several films of ONE patient are combined into one query."
        ),
    ],
    sex: Annotated[
        Sex | None, typer.Option("--sex", case_sensitive=False, help="M or F (default: from the DICOM header, else predicted).")
    ] = None,
    age_months: Annotated[float | None, typer.Option("--age-months", help="Chronological age in months (one film).")] = None,
    gallery_path: Annotated[Path, typer.Option("--gallery", help="Gallery directory.")] = DEFAULT_GALLERY,
    top: TopOpt = 10,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
    rule: RuleOpt = DEFAULT_RULE,
    hpo: Annotated[list[str] | None, typer.Option("--hpo", help="HPO term seen in the patient (repeatable, or comma-separated).")] = None,
    exclude_hpo: Annotated[list[str] | None, typer.Option("--exclude-hpo", help="HPO term looked for and absent (repeatable).")] = None,
    genes: Annotated[str | None, typer.Option("--genes", help="Candidate genes from an exome, comma-separated.")] = None,
    genes_file: Annotated[
        Path | None, typer.Option("--genes-file", help="Candidate genes from a variant pipeline's export (text or table).")
    ] = None,
    phenopacket: Annotated[
        Path | None, typer.Option("--phenopacket", help="Also write the ranking as a GA4GH phenopacket (v2 JSON) here.")
    ] = None,
    profile: Annotated[
        Path | None,
        typer.Option("--profile", help="Write the patient's pattern profile with the top 3 disorders' typical profiles (PNG) here."),
    ] = None,
) -> None:
    """Rank the gallery's disorders for a radiograph, with the similar cases as evidence.

    Several films of one patient (follow-up visits, both hands) are combined into one query
    (GestaltMatcher's multi-image setting); a film the quality gate refuses is left out and named."""
    from api.use_cases import analyse_films, rank_gallery, ranking_phenopacket
    from index.phenopackets_io import to_json
    from matcher.analysis import Analyzer

    if len(images) > 1 and age_months is not None:
        fail("--age-months is the age at one film; leave it out when several films (visits) are combined")
    findings = _findings(hpo, exclude_hpo, genes, genes_file)
    gallery = open_gallery(gallery_path)
    loaded, card = load_model_or_bundled(model)
    same_model(gallery, card)
    films = analyse_films(Analyzer(loaded), images, sex_value(sex), age_months)
    if not films.accepted:
        if as_json:
            typer.echo(json.dumps({"images": films.records(), "disorders": [], "cases": [], "no_close_match": None}))
            raise typer.Exit(code=EXIT_NOT_ACCEPTED)
        fail("; ".join(films.refusals))
    result = rank_gallery(gallery, films.embedding(), top, rule=rule, findings=findings, hand=films.hand_profiles())
    if phenopacket is not None:
        packet = ranking_phenopacket(gallery, result, images[0].stem, films.accepted[0][1].sex, age_months, findings, top)
        phenopacket.write_text(to_json(packet) + "\n")
    if profile is not None:
        _write_profile(profile, result, images[0].name)
    if as_json:
        records = films.records()
        combined = {"images": records, "films_combined": len(films.accepted)}
        typer.echo(json.dumps({**(records[0] if len(images) == 1 else combined), **result.to_json()}))
        return
    _print_query(films, result, rule, top)


def _write_profile(target: Path, result: QueryResult, name: str) -> None:
    """The query's pattern profile (as the ranking read it) with the typical profiles of its top 3 disorders."""
    import numpy as np

    from index.profile_figure import profile_png

    if result.profile_z is None:
        fail(
            "no pattern profile: the hand was not measured (no landmark model, or too few bones found) or the gallery holds no measured cases"
        )
    typical = {
        d.name or d.label: np.array(d.sources["typical_profile"], float)
        for d in result.disorders[:3]
        if d.sources and d.sources.get("typical_profile") is not None
    }
    target.write_bytes(profile_png(result.profile_z, f"{name}: pattern profile and the top disorders' typical profiles", typical))


def _findings(hpo: list[str] | None, excluded: list[str] | None, genes: str | None, genes_file: Path | None) -> ClinicalFindings:
    """The query's HPO terms and candidate genes, checked (a bad id or file stops before any image work)."""
    from index.evidence import ClinicalFindings
    from index.gene_lists import parse_gene_list, read_gene_list
    from index.hpo import split_terms

    candidates = None
    if genes is not None or genes_file is not None:
        candidates = (parse_gene_list(genes) if genes else []) + (read_gene_list(genes_file) if genes_file else [])
    terms = lambda values: [t for v in values or [] for t in split_terms(v)]  # noqa: E731  (repeatable and comma-separated)
    return ClinicalFindings.of(terms(hpo), terms(excluded), candidates)


def _print_query(films: AnalysedFilms, result: QueryResult, rule: RankingRule, top: int) -> None:
    accepted = films.accepted
    lines = [f"{name}: bone age {a.bone_age_months / 12:.1f} y, sex {a.sex} ({a.sex_source})" for name, a in accepted]
    lines += [f"left out: {reason}" for reason in films.refusals]
    if len(accepted) > 1:
        lines.append(f"{len(accepted)} films of one patient combined into one query")
    lines += [
        "NO CLOSE MATCH: no gallery disorder is closer than unrelated cases typically are, or than its own cases lie to each other"
        if result.no_close_match
        else "",
        ""
        if result.in_gallery_probability is None
        else f"P(the disorder is one of the gallery's) {result.in_gallery_probability:.2f}: every P(right) below includes it",
        f"{'rank':>4}  {rule.value + ' score':>13}  {'P(right)':>14}  {'cases':>5}  disorder (nearest case)",
    ]
    for d in result.disorders[:top]:
        probability = "-" if d.probability is None else f"{d.probability:.2f} [{d.interval[0]:.2f}-{d.interval[1]:.2f}]"
        score = "-" if d.score is None else f"{d.score:.4f}"
        lines.append(
            f"{d.rank:>4}  {score:>13}  {probability:>14}  {d.cases_in_gallery:>5}  {d.name or d.label} ({', '.join(d.nearest_cases[:1]) or '-'})"
        )
        if d.sources is not None:
            parts = ", ".join(f"{name} {value:+.2f}" for name, value in d.sources["contributions"].items())
            hits = f"; genes in the list: {', '.join(d.sources['gene_hits'])}" if d.sources["gene_hits"] else ""
            lines.append(f"{'':>6}combined P {d.sources['combined_probability']:.2f} (logit parts: {parts}){hits}")
    lines.append("genes: " + ", ".join(f"{g.label} {g.score:.3f}" for g in result.genes[:5] if g.score is not None))
    lines.append(result.calibration_note)
    lines.append("Similarity ranking to support a geneticist's differential diagnosis; it is not a diagnosis.")
    typer.echo("\n".join(line for line in lines if line))
