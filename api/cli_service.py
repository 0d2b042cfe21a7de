"""`bone2gene serve`, `bone2gene keys ...` and the demo: a synthetic gallery behind the web page."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

keys_app = typer.Typer(help="API keys of a service (stored hashed; the secret is shown once).", no_args_is_help=True)
KeysOpt = Annotated[Path, typer.Option("--keys", help="Key file (default: <gallery>/keys.sqlite).")]


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _key_store(gallery: Path | None, keys: Path | None):  # noqa: ANN202 - api.keys.KeyStore
    from api.keys import KeyStore

    if keys is None and gallery is None:
        _fail("give --gallery DIR (keys live in DIR/keys.sqlite) or --keys FILE")
    path = keys or gallery / "keys.sqlite"
    if keys is None and not (gallery / "gallery.sqlite").is_file():
        _fail(f"no gallery at {gallery}; create one with `bone2gene gallery init`")
    return KeyStore(path)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option("--role", help="reader, curator or admin.")],
    gallery: Annotated[Path | None, typer.Option("--gallery", help="Gallery directory.")] = None,
    keys: Annotated[Path | None, typer.Option("--keys", help="Key file (default: <gallery>/keys.sqlite).")] = None,
    label: Annotated[str, typer.Option("--label", help="Who or what the key is for.")] = "",
) -> None:
    """Create a key and print its secret (once)."""
    from api.keys import ROLES

    if role not in ROLES:
        _fail(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    secret, info = _key_store(gallery, keys).create(role, label)  # type: ignore[arg-type]
    typer.echo(f"{secret}\n(key id {info.key_id}, role {info.role}; store the secret now: it is not kept)")


@keys_app.command("list")
def keys_list(
    gallery: Annotated[Path | None, typer.Option("--gallery", help="Gallery directory.")] = None,
    keys: Annotated[Path | None, typer.Option("--keys", help="Key file.")] = None,
) -> None:
    """Active keys (ids, roles, labels; never secrets)."""
    for info in _key_store(gallery, keys).list():
        typer.echo(f"{info.key_id}  {info.role:8s}  {info.created}  {info.label}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id from `keys list`.")],
    gallery: Annotated[Path | None, typer.Option("--gallery", help="Gallery directory.")] = None,
    keys: Annotated[Path | None, typer.Option("--keys", help="Key file.")] = None,
) -> None:
    """Revoke a key at once."""
    if not _key_store(gallery, keys).revoke(key_id):
        _fail(f"no active key {key_id!r}")
    typer.echo(f"revoked {key_id}")


def run_service(gallery: Path, model: Path | None, host: str, port: int, ba_reference: Path | None = None) -> None:
    import uvicorn

    from api.runtime import ServiceSettings
    from api.service import create_app
    from index.store import GalleryError
    from matcher.checkpoint import BUNDLED_MODEL_DIR, ModelFormatError

    try:
        app = create_app(ServiceSettings(gallery=gallery, model=model or BUNDLED_MODEL_DIR, ba_reference=ba_reference))
    except (GalleryError, ModelFormatError, ValueError) as exc:
        _fail(str(exc))
        return
    typer.echo(f"Bone2Gene service on http://{host}:{port}/  (API: /api/v1, OpenAPI: /docs); Ctrl-C stops it")
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=True)


def serve(
    gallery: Annotated[Path, typer.Option("--gallery", help="Gallery directory.")],
    model: Annotated[Path | None, typer.Option("--model", help="Model directory (default: the bundled demo model).")] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to bind (127.0.0.1 = this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    ba_reference: Annotated[
        Path | None,
        typer.Option("--ba-reference", help="YAML table of bone-age SDs for z-scores (default: the bundled Brush Foundation / Greulich & Pyle table)."),
    ] = None,
) -> None:
    """Start the HTTP service and web page for a gallery (create keys with `bone2gene keys create`)."""
    run_service(gallery, model, host, port, ba_reference)


def build_demo_gallery(out: Path, n: int, size: int) -> Path:
    """The synthetic demo cohort and its gallery (built once, then reused)."""
    from api.cli_gallery import add_manifest, seed_catalogue
    from index.store import Gallery
    from matcher.checkpoint import BUNDLED_MODEL_DIR, read_card
    from training.synth.cohort import CohortConfig, ProgressPrinter, generate_cohort

    cohort = out / "cohort"
    if (cohort / "manifest.csv").exists() and (out / "gallery" / ".complete").exists():
        typer.echo(f"reusing the demo cohort and gallery in {out}")
    if not (cohort / "manifest.csv").exists():
        typer.echo(f"generating a demo cohort of {n} synthetic radiographs in {cohort} ...")
        generate_cohort(CohortConfig(n=n, out=cohort, seed=2027, size=size), progress=ProgressPrinter())
        sys.stderr.write("\n")
    path = out / "gallery"
    card = read_card(BUNDLED_MODEL_DIR)
    if (path / "gallery.sqlite").exists():
        gallery = Gallery.open(path)
        if gallery.model_fingerprint != card.fingerprint:
            _fail(f"{path} was built with another model; delete {out} to rebuild the demo")
    else:
        gallery = Gallery.create(path, card.fingerprint, card.config.embedding_dim)
        seed_catalogue(gallery)
    if gallery.stats().cases == 0 or not (path / ".complete").exists():
        typer.echo("embedding the demo cohort into the gallery (once) ...")
        added, refused = add_manifest(gallery, cohort / "manifest.csv", None, 8, 1, ProgressPrinter())
        sys.stderr.write("\n")
        (path / ".complete").write_text("ok\n")
        typer.echo(f"demo gallery: {gallery.stats().cases} cases ({len(refused)} refused by the quality gate)")
    return path
