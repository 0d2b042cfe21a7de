"""`bone2gene serve`, `bone2gene keys ...` and the demo: a synthetic gallery behind the web page."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from api.cli_helpers import fail
from matcher.rank import RankingRule

if TYPE_CHECKING:
    from api.settings import ServiceSettings

keys_app = typer.Typer(help="API keys of a service (stored hashed; the secret is shown once).", no_args_is_help=True)
KeysOpt = Annotated[Path, typer.Option("--keys", help="Key file (default: <gallery>/keys.sqlite).")]


def _key_store(gallery: Path | None, keys: Path | None):
    from api.keys import KeyStore

    if keys is None and gallery is None:
        fail("give --gallery DIR (keys live in DIR/keys.sqlite) or --keys FILE")
    path = keys or gallery / "keys.sqlite"
    if keys is None and not (gallery / "gallery.sqlite").is_file():
        fail(f"no gallery at {gallery}; create one with `bone2gene gallery init`")
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
        fail(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
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
        fail(f"no active key {key_id!r}")
    typer.echo(f"revoked {key_id}")


def settings_from(flags: dict) -> ServiceSettings:
    """Settings from the flags given, the rest from `BONE2GENE_*` environment variables, else defaults."""
    from pydantic import ValidationError

    from api.settings import ServiceSettings

    try:
        return ServiceSettings(**{name: value for name, value in flags.items() if value is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        missing_gallery = any(e["loc"] == ("gallery",) for e in exc.errors())
        hint = "give --gallery DIR or set BONE2GENE_GALLERY" if missing_gallery else "a flag wins over its BONE2GENE_* variable"
        fail(f"service settings: {problems} ({hint}; `bone2gene serve --help` lists every setting)")


def run_service(settings: ServiceSettings, host: str, port: int) -> None:
    import uvicorn

    from api.service import create_app

    app = create_app(settings)
    typer.echo(f"Bone2Gene service on http://{host}:{port}/  (API: /api/v1, OpenAPI: /docs); Ctrl-C stops it")
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=True)


def _env(name: str) -> str:
    """The variable pydantic-settings reads for a field; typer shows it in --help."""
    return f"BONE2GENE_{name.upper()}"


def serve(
    gallery: Annotated[Path | None, typer.Option("--gallery", help="Gallery directory.", envvar=_env("gallery"))] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="Model directory (default: the bundled model).", envvar=_env("model"))
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to bind (127.0.0.1 = this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    ba_reference: Annotated[
        Path | None,
        typer.Option(
            "--ba-reference",
            help="YAML table of bone-age SDs for z-scores (default: the bundled Brush Foundation / Greulich & Pyle table).",
            envvar=_env("ba_reference"),
        ),
    ] = None,
    keys: Annotated[Path | None, typer.Option("--keys", help="API key file (default: <gallery>/keys.sqlite).", envvar=_env("keys"))] = None,
    inference_slots: Annotated[
        int | None, typer.Option("--inference-slots", help="Analyses at the same time (default 1).", envvar=_env("inference_slots"))
    ] = None,
    queue_limit: Annotated[
        int | None, typer.Option("--queue-limit", help="Analyses that may wait (default 16).", envvar=_env("queue_limit"))
    ] = None,
    queue_timeout_s: Annotated[
        float | None, typer.Option("--queue-timeout-s", help="Longest wait (default 60).", envvar=_env("queue_timeout_s"))
    ] = None,
    max_upload_bytes: Annotated[
        int | None, typer.Option("--max-upload-bytes", help="Largest upload (default 40 MiB).", envvar=_env("max_upload_bytes"))
    ] = None,
    max_pixels: Annotated[int | None, typer.Option("--max-pixels", help="Largest image (default 40e6).", envvar=_env("max_pixels"))] = None,
    analyses_kept: Annotated[
        int | None, typer.Option("--analyses-kept", help="Recent analyses kept (default 256).", envvar=_env("analyses_kept"))
    ] = None,
    analyses_memory_bytes: Annotated[
        int | None,
        typer.Option("--analyses-memory-bytes", help="Their memory bound (default 1 GiB).", envvar=_env("analyses_memory_bytes")),
    ] = None,
    ranking_rule: Annotated[
        RankingRule | None,
        typer.Option(
            "--ranking-rule",
            help="density (class-balanced, the default) or nearest (GestaltMatcher's nearest case).",
            envvar=_env("ranking_rule"),
        ),
    ] = None,
) -> None:
    """Start the HTTP service and web page for a gallery (create keys with `bone2gene keys create`).

    Every setting can also come from the environment (BONE2GENE_<NAME>); a flag wins.
    """
    flags = {name: value for name, value in locals().items() if name not in ("host", "port")}
    run_service(settings_from(flags), host, port)
