"""The `bone2gene` command line.

Heavy modules (the renderer, pandas, torch later) are imported inside the commands so
that `bone2gene --help` answers at once.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from api.cli_helpers import EXIT_NOT_ACCEPTED, EXIT_REFUSED, SexOpt, fail, sex_value
from matcher.progress import progress_bar

app = typer.Typer(
    name="bone2gene",
    help="Bone2Gene matcher: find the rare bone disease behind a child's hand radiograph.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class ImageFormat(StrEnum):
    png = "png"
    dicom = "dicom"


@app.command()
def synth(
    n: Annotated[int, typer.Option("--n", help="Number of images to generate.")] = 100,
    out: Annotated[Path, typer.Option("--out", help="Output directory (images/, masks/, manifest.csv).")] = Path("synthetic-cohort"),
    spec: Annotated[
        list[Path] | None,
        typer.Option("--spec", help="YAML file of extra disorder specs (adds or replaces by id); repeatable."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same files.")] = 0,
    size: Annotated[int, typer.Option("--size", help="Image height in pixels (width is 74-88% of it).")] = 1024,
    fmt: Annotated[
        ImageFormat, typer.Option("--format", help="png, or dicom (CR with fake PHI, MONOCHROME1 or 2 at random).")
    ] = ImageFormat.png,
    bits: Annotated[
        int | None, typer.Option("--bits", help="Bit depth: PNG 8 (default) or 16; DICOM 8, 12 (default) or 16 bits stored.")
    ] = None,
    disorders: Annotated[str | None, typer.Option("--disorders", help="Comma-separated disorder ids to draw from (default: all).")] = None,
    controls: Annotated[float, typer.Option("--controls", help="Fraction of unaffected controls.")] = 0.2,
    workers: Annotated[int, typer.Option("--workers", help="Parallel processes (0 = one per core).")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a cohort already in --out.")] = False,
    list_disorders: Annotated[bool, typer.Option("--list-disorders", help="List the disorders and exit.")] = False,
    renderer: Annotated[
        str, typer.Option("--renderer", help="classic (today's), or film (an oriented trabecular pattern in every tubular bone).")
    ] = "classic",
) -> None:
    """Generate synthetic hand radiographs with known ground truth (disorder, bone age, mask, bone lengths)."""
    from training.synth.cohort import CohortConfig, generate_cohort, summarise
    from training.synth.spec import builtin_specs, load_specs, merge_specs

    specs = builtin_specs()
    for path in spec or []:
        specs = merge_specs(specs, load_specs(path))
    if list_disorders:
        for s in specs:
            genes = ", ".join(s.genes) or "-"
            typer.echo(f"{s.id:28s} {s.category:30s} {genes:28s} {s.name}")
        return
    chosen = tuple(d.strip() for d in disorders.split(",") if d.strip()) if disorders else None
    config = CohortConfig(
        n=n,
        out=out,
        seed=seed,
        size=size,
        format=fmt.value,
        bits=bits,
        control_fraction=controls,  # type: ignore[arg-type]
        disorders=chosen,
        specs=tuple(specs),
        workers=workers,
        overwrite=overwrite,
        renderer=renderer,  # type: ignore[arg-type]
    )
    with progress_bar("rendering", unit="image") as progress:
        manifest = generate_cohort(config, progress=progress)
    typer.echo(summarise(manifest))
    typer.echo(f"manifest: {out / 'manifest.csv'}")


@app.command("synth-warped")
def synth_warped(
    real: Annotated[Path, typer.Option("--real", help="The folder holding dha/ and rsna_100px/ (real unaffected films).")],
    out: Annotated[Path, typer.Option("--out", help="Output directory (images/, manifest.csv).")] = Path("warped-cohort"),
    n: Annotated[int, typer.Option("--n", help="Number of films.")] = 400,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    controls: Annotated[float, typer.Option("--controls", help="Fraction of real films left unchanged (unaffected).")] = 0.2,
    rsna_share: Annotated[float, typer.Option("--rsna-share", help="Fraction of films drawn from RSNA (the rest: the atlas).")] = 0.5,
) -> None:
    """Real unaffected hands carrying disorders' bone lengths (derived films, for training only: never patients, never tests)."""
    from training.synth.warped_cohort import WarpedCohortConfig, generate_warped_cohort

    if not (real / "dha" / "labels.csv").is_file():
        fail(f"--real {real} holds no dha/labels.csv; point it to the folder with the Digital Hand Atlas and rsna_100px")
    if (out / "manifest.csv").exists():
        fail(f"{out} already holds a cohort; choose a new --out")
    config = WarpedCohortConfig(real, out, n, seed, controls, rsna_share)
    with progress_bar("warping", unit="film") as progress:
        manifest = generate_warped_cohort(config, progress)
    typer.echo(f"{len(manifest)} derived films ({(manifest['disorder'] != 'unaffected').sum()} warped): {out / 'manifest.csv'}")


@app.command("synth-mix")
def synth_mix(
    manifests: Annotated[list[Path], typer.Argument(help="Two or more cohort manifests (`synth`, `synth-warped`).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the combined manifest.csv (the images stay where they are).")],
) -> None:
    """One training manifest from several cohorts: phantoms of either renderer and warped real hands."""
    from training.synth.mix import MixError, combine_manifests

    try:
        combined = combine_manifests(manifests, out)
    except MixError as exc:
        fail(str(exc))
    counts = ", ".join(f"{name}: {count}" for name, count in combined["cohort"].value_counts(sort=False).items())
    typer.echo(f"{len(combined)} cases ({counts}): {out / 'manifest.csv'}")


@app.command("synth-specs")
def synth_specs(
    out: Annotated[Path, typer.Option("--out", help="The YAML file of drawn specs to write (`bone2gene synth --spec` reads it).")],
    n: Annotated[int, typer.Option("--n", help="Number of disorders to draw.")] = 300,
    seed: Annotated[int, typer.Option("--seed", help="The sampler's seed; the same seed draws the same disorders.")] = 0,
    magnitude: Annotated[float, typer.Option("--magnitude", help="Scale of every drawn effect (1: the catalogue's sizes).")] = 1.0,
    exclude: Annotated[
        str | None,
        typer.Option("--exclude", help="Comma-separated catalogue disorders to borrow nothing from (default: the held-out four)."),
    ] = None,
) -> None:
    """Draw procedural disorders from the spec grammar, shaped like the catalogue's, and report how far apart they lie."""
    from training.synth.disorder_sampler import CATALOGUE_HELD_OUT, DisorderSampler, SamplerConfig, write_specs
    from training.synth.spec import builtin_specs
    from training.synth.spec_space import diversity_rows

    if n < 2:
        fail(f"--n {n}: draw at least 2 disorders")
    if out.exists():
        fail(f"{out} already exists; choose a new --out (a drawn list is kept with the model trained on it)")
    catalogue = builtin_specs()
    known = {s.id for s in catalogue}
    held_out = tuple(x.strip() for x in exclude.split(",") if x.strip()) if exclude is not None else CATALOGUE_HELD_OUT
    unknown = sorted(set(held_out) - known)
    if unknown:
        fail(f"--exclude names disorders not in the catalogue: {', '.join(unknown)} (see bone2gene synth --list-disorders)")
    config = SamplerConfig(n=n, seed=seed, magnitude=magnitude, exclude=held_out)
    drawn = DisorderSampler(config, catalogue).sample()
    header = f"Drawn by `bone2gene synth-specs --n {n} --seed {seed} --magnitude {magnitude} --exclude {','.join(held_out)}`"
    write_specs(drawn, out, header)
    trained = [s for s in catalogue if s.category != "control" and s.id not in held_out]
    for row in diversity_rows({"catalogue (trained disorders)": trained, "drawn": drawn}):
        typer.echo("  ".join(f"{k}: {v}" for k, v in row.items()))
    typer.echo(f"{len(drawn)} disorders: {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Where the demo data lives (reused when present).")] = Path("demo-data"),
    n: Annotated[int, typer.Option("--n", help="Synthetic radiographs in the demo gallery.")] = 300,
    size: Annotated[int, typer.Option("--size", help="Image height in pixels.")] = 512,
    port: Annotated[int, typer.Option("--port", help="TCP port on 127.0.0.1.")] = 8000,
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the service (default) or only build the demo.")] = True,
) -> None:
    """The main job: a synthetic demo gallery with the bundled model, served with its web page on 127.0.0.1.

    Builds the cohort and gallery once (reused afterwards), writes a contact sheet of the
    cohort, prints a fresh admin key for the page and starts the service.
    """
    import pandas as pd

    from api.cli_service import run_service, settings_from
    from api.keys import KeyStore
    from api.use_cases import demo_gallery
    from index.store import GalleryError
    from training.synth.cohort import summarise
    from training.synth.montage import cohort_contact_sheet

    try:
        gallery = demo_gallery(out, n, size, typer.echo, lambda what: progress_bar(what, unit="image"))
    except GalleryError as exc:
        fail(str(exc))
    manifest = pd.read_csv(out / "cohort" / "manifest.csv", keep_default_na=False)
    typer.echo(summarise(manifest))
    sheet = out / "contact_sheet.png"
    if not sheet.exists():
        cohort_contact_sheet(out / "cohort", manifest, sheet)
    typer.echo(f"contact sheet (one image per disorder): {sheet}")
    keys = KeyStore(gallery / "keys.sqlite")
    for old in keys.list():
        if old.label == "demo":
            keys.revoke(old.key_id)
    secret, _ = keys.create("admin", "demo")
    typer.echo(f"demo API key (admin; paste it into the page to sign in): {secret}")
    typer.echo(f"try a radiograph from {out / 'cohort' / 'images'}")
    if serve:
        run_service(settings_from({"gallery": gallery}), "127.0.0.1", port)


model_app = typer.Typer(help="Import and inspect encoder models.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("import-deeplasia")
def model_import_deeplasia(
    checkpoints: Annotated[list[Path], typer.Argument(help="Deeplasia .ckpt files (legacy or new format).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output directory (one model per checkpoint if several).")],
    parameters: Annotated[
        Path | None, typer.Option("--parameters", help="Deeplasia's parameters.yml (legacy checkpoints need it).")
    ] = None,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Allow files that contain Python objects (runs code from the file).")
    ] = False,
) -> None:
    """Convert real Deeplasia weights into a Bone2Gene model directory (safetensors + config)."""
    from matcher.checkpoint import import_deeplasia

    targets = [out] if len(checkpoints) == 1 else [out / c.stem for c in checkpoints]
    for checkpoint, target in zip(checkpoints, targets, strict=True):
        fingerprint = import_deeplasia(checkpoint, target, parameters, trust_pickle)
        typer.echo(f"{checkpoint.name} -> {target}  fingerprint {fingerprint[:16]}")


@model_app.command("info")
def model_info(directory: Annotated[Path, typer.Argument(help="A Bone2Gene model directory.")]) -> None:
    """Describe a model: architecture, heads, age constants, fingerprint and provenance."""
    from matcher.checkpoint import AGE_SEX_READER_DIR, read_card

    card = read_card(directory)
    c = card.config
    lines = [
        f"model        {directory}",
        f"fingerprint  {card.fingerprint}",
        f"backbone     {c.backbone_name}, 1 channel, input {c.input_size} px, {card.parameters / 1e6:.2f} M parameters",
        f"bone age     Deeplasia {c.head.style} head, dense {list(c.head.dense_widths)}, sex input {c.head.sex_input_width}",
        f"age scale    mean {c.calibration.age_mean:.4f}, sd {c.calibration.age_sd:.4f}, "
        f"slope {c.calibration.slope}, intercept {c.calibration.intercept}",
        f"sex head     {'trained' if c.sex_head_trained else 'untrained (predictions not meaningful)'}"
        + (
            f"; explicit sex MLP {list(c.head.explicit_sex_widths)}, "
            + ("the given sex is the bone-age input" if c.head.uses_given_sex else "its own prediction is the bone-age sex input")
            if c.head.explicit_sex_widths
            else ""
        ),
        f"embedding    {c.embedding_dim}-d, {'trained' if c.embedding_trained else 'untrained (needs metric learning)'}",
        f"provenance   {card.provenance}",
    ]
    if card.age_sex_reader is not None:
        r = card.age_sex_reader.config
        lines[3:5] = [
            f"bone age     from the age and sex reader ({AGE_SEX_READER_DIR}/, fingerprint {card.age_sex_reader.fingerprint[:16]}): "
            f"{r.backbone_name}, input {r.input_size} px, {r.preprocessing} preprocessing, Deeplasia {r.head.style} head"
            + (", the mean of the film and its mirror image" if r.mirror_average else ""),
            f"age scale    mean {r.calibration.age_mean:.4f}, sd {r.calibration.age_sd:.4f}",
        ]
        lines[5] = f"sex head     the reader's, {'trained' if r.sex_head_trained else 'untrained'}"
    typer.echo("\n".join(lines))


@model_app.command("install")
def model_install(
    source: Annotated[
        Path, typer.Argument(help="A model directory (e.g. a `bone2gene train` run's model/) or, with --mask, hand-mask weights.")
    ],
    full_precision: Annotated[
        bool, typer.Option("--full-precision", help="Store float32 weights (default float16, half the size).")
    ] = False,
    mask: Annotated[bool, typer.Option("--mask", help="SOURCE is a hand-mask network (.safetensors) to ship instead.")] = False,
    landmarks: Annotated[
        bool, typer.Option("--landmarks", help="SOURCE is a hand landmark model (a `trainer: landmarks` run's model/) to ship instead.")
    ] = False,
) -> None:
    """Make a model the bundled one (what `analyze`, `demo` and `serve` use without --model); the only way into matcher/weights."""
    import torch

    from matcher.checkpoint import BUNDLED_MODEL_DIR, install_model
    from matcher.mask import WEIGHTS, install_mask_weights

    if mask:
        install_mask_weights(source)
        typer.echo(f"installed the hand-mask network {source} as {WEIGHTS}")
        return
    if landmarks:
        from matcher.landmark_files import BUNDLED_LANDMARKS_DIR, install_landmark_model

        fingerprint = install_landmark_model(source)
        typer.echo(f"installed the landmark model {fingerprint[:12]} from {source} in {BUNDLED_LANDMARKS_DIR}")
        return
    fingerprint = install_model(source, BUNDLED_MODEL_DIR, torch.float32 if full_precision else torch.float16)
    typer.echo(
        f"installed model {fingerprint[:12]} from {source} in {BUNDLED_MODEL_DIR}; galleries of the old model need `bone2gene gallery reembed`"
    )


@model_app.command("calibrate-age")
def model_calibrate_age(
    reader: Annotated[Path, typer.Argument(help="An age and sex reader's directory (e.g. MODEL/age_sex_reader).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the corrected reader (a new directory).")],
    rsna: Annotated[Path | None, typer.Option("--rsna", help="Fit on RSNA's development films (rsna_100px: never reported).")] = None,
    films: Annotated[
        Path | None, typer.Option("--films", help="Or on a site's own films: a CSV with path, sex (M/F), bone_age_months.")
    ] = None,
) -> None:
    """Fit a reader's linear correction for regression to the mean (infants read older, adolescents younger) on labelled films."""
    from training.age_correction import AgeCorrectionError, calibrate_reader, read_films_table, rsna_development_films

    if (rsna is None) == (films is None):
        fail("give --rsna ROOT (its development films) or --films CSV (path, sex, bone_age_months), one of them")
    if out.exists():
        fail(f"{out} already exists; choose a new --out (the reader in {reader} stays as it is)")
    try:
        if films is not None:
            table, source = read_films_table(films), str(films)
        else:
            assert rsna is not None
            table, source = rsna_development_films(rsna), f"RSNA development films ({rsna})"
        correction, fingerprint = calibrate_reader(reader, table, out, source)
    except AgeCorrectionError as exc:
        fail(str(exc))
    typer.echo(
        f"read = {correction.intercept:.1f} + {correction.slope:.3f} x bone age on {correction.films} films; "
        f"corrected reader {fingerprint[:16]} in {out} (attach it: bone2gene model attach-reader MODEL {out})"
    )


@model_app.command("attach-reader")
def model_attach_reader(
    directory: Annotated[Path, typer.Argument(help="The model directory that gets the reader (its own files are not changed).")],
    reader: Annotated[
        Path | None, typer.Argument(help="A model directory trained for bone age and sex (e.g. on real radiographs).")
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the model's reader instead.")] = False,
    half: Annotated[bool, typer.Option("--half", help="Store the reader's weights in float16 (half the size).")] = False,
) -> None:
    """Let a second model read bone age and sex for this one; its embeddings, fingerprint and galleries stay as they are."""
    import torch

    from matcher.checkpoint import install_age_sex_reader

    if (reader is None) == (not remove):
        fail("give a READER directory, or --remove to take the model's reader away")
    fingerprint = install_age_sex_reader(directory, None if remove else reader, torch.float16 if half else torch.float32)
    typer.echo(f"{directory}: reader removed" if fingerprint is None else f"{directory}: reader {fingerprint[:16]} from {reader}")


@app.command()
def analyze(
    images: Annotated[list[Path], typer.Argument(help="Radiographs (DICOM, PNG, JPEG, TIFF).")],
    sex: SexOpt = None,
    age_months: Annotated[
        float | None, typer.Option("--age-months", help="Chronological age in months (default: from the header).")
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="Model directory (see `bone2gene model`; default: the bundled demo model).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per image.")] = False,
    overlay: Annotated[Path | None, typer.Option("--overlay", help="Write the attention overlay PNG here.")] = None,
    profile: Annotated[
        Path | None, typer.Option("--profile", help="Write the hand's pattern profile (19 bones, z for age and sex) as a PNG here.")
    ] = None,
    tta: Annotated[bool, typer.Option("--tta", help="Test-time augmentation (10 views, averaged).")] = False,
    ba_reference: Annotated[
        Path | None,
        typer.Option(
            "--ba-reference",
            help="YAML table of bone-age SDs by age and sex for the z-score (see matcher/bone_age_reference.py; "
            "default: the bundled Brush Foundation / Greulich & Pyle table).",
        ),
    ] = None,
) -> None:
    """Quality gate, bone age, sex check and embedding for each radiograph.

    Every image is analysed and printed; the exit status is 1 if the quality gate refused any of
    them (a script looping over films sees it without parsing the output), 2 on an error.
    """
    import json

    import cv2

    from matcher.analysis import AnalysisOptions, Analyzer, attention_overlay
    from matcher.bone_age_reference import reference_or_bundled
    from matcher.checkpoint import BUNDLED_MODEL_DIR, load_model
    from matcher.errors import RadiographError
    from matcher.io import read_radiograph

    model = model or BUNDLED_MODEL_DIR
    loaded, _ = load_model(model)
    reference = reference_or_bundled(ba_reference)
    analyzer = Analyzer(loaded, AnalysisOptions(tta=tta, attention=overlay is not None, reference=reference))
    refused: list[str] = []  # names of the images the gate refused
    for index, path in enumerate(images):
        try:
            source = read_radiograph(path)  # read once: the overlay is drawn on the same pixels
        except RadiographError:
            source = path  # let the analyzer report the problem with the file
        result = analyzer.analyze(source, sex=sex_value(sex), age_months=age_months)
        if not result.accepted:
            refused.append(path.name)
        if as_json:
            typer.echo(json.dumps({"image": path.name, **result.to_json()}))
        else:
            _print_analysis(path.name, result)
        if profile is not None and result.hand is not None:
            from index.profile_figure import profile_png

            _numbered(profile, index, len(images)).write_bytes(profile_png(result.hand.z, f"{path.name}: pattern profile"))
        if overlay is not None and result.attention is not None and not isinstance(source, Path):
            cv2.imwrite(str(_numbered(overlay, index, len(images))), attention_overlay(source.normalised(), result.attention))
    if refused:
        typer.echo(f"{len(refused)} of {len(images)} image(s) refused by the quality gate: {', '.join(refused)}", err=True)
        raise typer.Exit(code=EXIT_NOT_ACCEPTED)


def _numbered(target: Path, index: int, count: int) -> Path:
    """Where the picture of image `index` goes: `target` itself for one image, `<stem>_<index>` for several."""
    return target if count == 1 else target.with_name(f"{target.stem}_{index}{target.suffix}")


def _print_analysis(name: str, result) -> None:
    """One analysis for a reader: the verdict, bone age, sex, the bones outside +-2 SD, the time."""
    typer.echo(f"{name}: {'accepted' if result.accepted else 'REFUSED'}")
    for reason in result.reasons:
        typer.echo(f"  - {reason}")
    if result.bone_age_months is not None:
        deviation = "" if result.bone_age_deviation_months is None else f" ({result.bone_age_deviation_months:+.1f} months vs age)"
        typer.echo(f"  bone age {result.bone_age_months:.1f} months = {result.bone_age_months / 12:.1f} years{deviation}")
        if result.bone_age_z is not None:
            typer.echo(f"  z-score {result.bone_age_z:+.2f} against {result.bone_age_z_note}")
        typer.echo(
            f"  sex {result.sex} ({result.sex_source}); model P(male) {result.male_probability:.2f}"
            f"{'' if result.sex_head_trained else ' [sex head untrained]'}"
        )
    if result.sex_warning:
        typer.echo(f"  warning: {result.sex_warning}")
    if result.hand is not None:
        bones = result.hand.bones_json()
        scored = [b for b in bones if b["z"] is not None]
        outside = ", ".join(f"{b['bone']} {b['z']:+.1f}" for b in scored if abs(b["z"]) > 2) or "none"
        typer.echo(
            f"  bones: {sum(b['length_px'] is not None for b in bones)} of 19 measured, {len(scored)} scored; beyond +-2 SD: {outside}"
        )
    typer.echo(f"  time {result.timings_ms.get('total', sum(result.timings_ms.values())):.0f} ms")


from api.cli_evaluate import evaluate_command
from api.cli_explore import explore_app
from api.cli_gallery import disorders_app, gallery_app, query_command
from api.cli_gallery_bones import gallery_measure, gallery_norms  # noqa: F401  (registers on gallery_app)
from api.cli_norms import norms_app
from api.cli_pacs import pacs_app
from api.cli_service import keys_app, serve
from api.cli_training import train_command

app.add_typer(gallery_app, name="gallery")
app.add_typer(keys_app, name="keys")
app.add_typer(explore_app, name="explore")
app.command("serve")(serve)
app.add_typer(disorders_app, name="disorders")
app.add_typer(norms_app, name="norms")
app.add_typer(pacs_app, name="pacs")
app.command("query")(query_command)
app.command("train")(train_command)
app.command("evaluate")(evaluate_command)


def main() -> None:
    """The console entry point: every refusal of our error family ends as `error: ...`, status 2."""
    from matcher.errors import Bone2GeneError

    try:
        app()
    except Bone2GeneError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(EXIT_REFUSED) from None


if __name__ == "__main__":  # pragma: no cover
    main()
