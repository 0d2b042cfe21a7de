"""`bone2gene pacs listen|watch|status|deliver`: the DICOM node beside the hospital PACS.

Settings come from these flags, else `BONE2GENE_PACS_*` environment variables (`api.pacs.settings`).
Secrets (the DICOMweb password or token) are read from the environment only, never from a flag,
because a command line is visible to every user of the machine.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from api.cli_helpers import fail

if TYPE_CHECKING:
    from api.pacs.runner import NodeRunner
    from api.pacs.settings import NodeSettings

pacs_app = typer.Typer(
    help="The DICOM node: receive hand films from a PACS, answer with an SR and a secondary capture.", no_args_is_help=True
)

GalleryOpt = Annotated[Path | None, typer.Option("--gallery", help="Gallery directory films are matched against.")]
StateOpt = Annotated[Path | None, typer.Option("--state", help="The node's folder (inbox, outbox of answers, ledger).")]
ModelOpt = Annotated[Path | None, typer.Option("--model", help="Model directory (default: the bundled model).")]
AeOpt = Annotated[str | None, typer.Option("--ae-title", help="This node's AE title (default BONE2GENE).")]
PeerOpt = Annotated[str | None, typer.Option("--peer", help="Where answers are C-STOREd: AE@HOST:PORT.")]
UrlOpt = Annotated[str | None, typer.Option("--dicomweb-url", help="DICOMweb root of the PACS (watch; STOW answers).")]
UserOpt = Annotated[
    str | None, typer.Option("--dicomweb-user", help="HTTP user; the password or token only from BONE2GENE_PACS_DICOMWEB_PASSWORD/_TOKEN.")
]
DestinationOpt = Annotated[str | None, typer.Option("--destination", help="dicom (C-STORE to --peer) or dicomweb (STOW-RS).")]
TlsOpt = Annotated[Path | None, typer.Option("--tls-cert", help="PEM certificate: DICOM TLS (needs --tls-key).")]
TlsKeyOpt = Annotated[Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert.")]
TlsCaOpt = Annotated[Path | None, typer.Option("--tls-ca", help="PEM CA bundle trusted for peers (required of senders when given).")]
ModalityOpt = Annotated[list[str] | None, typer.Option("--modality", help="Modality analysed (repeatable; default CR and DX).")]
StudyOpt = Annotated[list[str] | None, typer.Option("--study", help="Only this Study Instance UID (repeatable).")]
TopOpt = Annotated[int | None, typer.Option("--top", min=1, max=20, help="Disorders reported (default 5).")]


def _peer(peer: str | None) -> dict:
    if peer is None:
        return {}
    ae, _, address = peer.partition("@")
    host, _, port = address.rpartition(":")
    if not ae or not host or not port.isdigit():
        fail(f"--peer must read AE@HOST:PORT (e.g. ORTHANC@pacs.example.org:4242), not {peer!r}")
    return {"peer_ae_title": ae, "peer_host": host, "peer_port": int(port)}


def node_settings(flags: dict, peer: str | None, modality: list[str] | None, study: list[str] | None) -> NodeSettings:
    """Settings from the flags given, the rest from `BONE2GENE_PACS_*` variables, else defaults."""
    from pydantic import ValidationError

    from api.pacs.settings import FilmFilter, NodeSettings

    given = {name: value for name, value in flags.items() if value is not None} | _peer(peer)
    try:
        film_filter = FilmFilter(**{k: v for k, v in {"modalities": modality, "studies": study}.items() if v})
        return NodeSettings(**given, film_filter=film_filter)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
        fail(f"node settings: {problems} (a flag wins over its BONE2GENE_PACS_* variable; `bone2gene pacs listen --help` lists them)")


def _start(settings: NodeSettings) -> NodeRunner:
    from api.pacs.runner import NodeRunner, build_node

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("pynetdicom", "highdicom", "faiss", "dicomweb_client"):  # they log UIDs and chatter at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
    node, inbox = build_node(settings)
    runner = NodeRunner(node, inbox, poll_interval_s=settings.poll_interval_s)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: runner.stopping.set())
    return runner


@pacs_app.command("listen")
def listen(
    gallery: GalleryOpt = None,
    state: StateOpt = None,
    model: ModelOpt = None,
    ae_title: AeOpt = None,
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on (default 127.0.0.1; 0.0.0.0 for all).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="DICOM port (default 11112).")] = None,
    allow: Annotated[list[str] | None, typer.Option("--allow", help="Calling AE title allowed to send (repeatable).")] = None,
    peer: PeerOpt = None,
    dicomweb_url: UrlOpt = None,
    dicomweb_user: UserOpt = None,
    destination: DestinationOpt = None,
    tls_cert: TlsOpt = None,
    tls_key: TlsKeyOpt = None,
    tls_ca: TlsCaOpt = None,
    modality: ModalityOpt = None,
    study: StudyOpt = None,
    top: TopOpt = None,
) -> None:
    """Run a Storage SCP: films C-STOREd here are analysed and answered into their own study."""
    from api.pacs.scp import StorageSCP

    flags = {"gallery": gallery, "state": state, "model": model, "ae_title": ae_title, "host": host, "port": port}
    flags |= {"allowed_calling_aes": allow, "dicomweb_url": dicomweb_url, "dicomweb_username": dicomweb_user, "destination": destination}
    flags |= {"tls_certificate": tls_cert, "tls_key": tls_key, "tls_ca": tls_ca, "top": top}
    settings = node_settings(flags, peer, modality, study)
    if not settings.allowed_calling_aes:
        fail("no calling AE title is allowed to send films: give --allow AE (repeatable) for each PACS or modality")
    runner = _start(settings)
    scp = StorageSCP(settings, runner.inbox, runner.node.ledger)
    scp.start()
    typer.echo(f"listening as {settings.ae_title} on {settings.host}:{settings.port}; answers by {runner.node.sender.describe()}")
    try:
        runner.run()
    finally:
        scp.stop()
        typer.echo(f"stopped: {runner.node.status_line()}")


@pacs_app.command("watch")
def watch(
    gallery: GalleryOpt = None,
    state: StateOpt = None,
    model: ModelOpt = None,
    ae_title: AeOpt = None,
    dicomweb_url: UrlOpt = None,
    dicomweb_user: UserOpt = None,
    peer: PeerOpt = None,
    destination: DestinationOpt = None,
    tls_cert: TlsOpt = None,
    tls_key: TlsKeyOpt = None,
    tls_ca: TlsCaOpt = None,
    modality: ModalityOpt = None,
    study: StudyOpt = None,
    poll_s: Annotated[float | None, typer.Option("--poll-s", help="Seconds between searches (default 30).")] = None,
    days: Annotated[int, typer.Option("--days", min=0, help="Only studies of the last DAYS days (0: any date).")] = 2,
    top: TopOpt = None,
) -> None:
    """Watch a DICOMweb PACS (QIDO-RS), fetch new hand films (WADO-RS), answer into their own study."""
    from api.pacs.connections import dicomweb_client
    from api.pacs.senders import without_credentials
    from api.pacs.watcher import DicomWebWatcher

    flags = {"gallery": gallery, "state": state, "model": model, "ae_title": ae_title, "dicomweb_url": dicomweb_url}
    flags |= {"dicomweb_username": dicomweb_user, "destination": destination or ("dicom" if peer else "dicomweb")}
    flags |= {"tls_certificate": tls_cert, "tls_key": tls_key, "tls_ca": tls_ca, "poll_interval_s": poll_s, "top": top}
    settings = node_settings(flags, peer, modality, study)
    if not settings.dicomweb_url:
        fail("watching needs the PACS's DICOMweb root: --dicomweb-url URL (or BONE2GENE_PACS_DICOMWEB_URL)")
    runner = _start(settings)
    runner.watcher = DicomWebWatcher(settings, dicomweb_client(settings), runner.inbox, runner.node.ledger, days or None)
    typer.echo(
        f"watching {without_credentials(settings.dicomweb_url)} every {settings.poll_interval_s:.0f} s; answers by {runner.node.sender.describe()}"
    )
    try:
        runner.run()
    finally:
        typer.echo(f"stopped: {runner.node.status_line()}")


@pacs_app.command("status")
def status(state: Annotated[Path, typer.Option("--state", help="The node's folder.")]) -> None:
    """What a node has done (counters since it first ran) and what waits (films to analyse, answers to deliver)."""
    from api.pacs.inbox import Inbox
    from api.pacs.ledger import Ledger
    from api.pacs.outbox import Outbox

    if not (state / "ledger.sqlite").is_file():
        fail(f"no node state at {state}: start a node with `bone2gene pacs listen --state {state}` first")
    counts = Ledger(state / "ledger.sqlite").counts()
    outbox = Outbox(state / "outbox")
    jobs = outbox.jobs()
    typer.echo(", ".join(f"{name} {value}" for name, value in counts.items()))
    typer.echo(f"films waiting {len(Inbox(state / 'inbox'))}; answers queued {len(jobs)}")
    for job in jobs:
        typer.echo(f"  {job.job_id}: {job.attempts} attempt(s); last error: {job.last_error or '-'}")


@pacs_app.command("answer")
def answer(
    film: Annotated[Path, typer.Argument(help="A DICOM hand film, as the PACS would send it.")],
    gallery: Annotated[Path, typer.Option("--gallery", help="Gallery directory.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for sr.dcm, sc.dcm and sc.png.")],
    model: ModelOpt = None,
    top: Annotated[int, typer.Option("--top", min=1, max=20, help="Disorders reported.")] = 5,
) -> None:
    """Make the SR and the SC a node would send for FILM, without a PACS: see what the PACS will get."""
    import io

    import cv2
    import pydicom

    from api.cli_helpers import load_model_or_bundled, open_gallery, same_model
    from api.pacs.answering import FilmAnswerer
    from matcher.analysis import Analyzer

    encoded = film.read_bytes()
    try:
        header = pydicom.dcmread(io.BytesIO(encoded))
    except Exception as exc:  # pydicom raises many types for a file that is not DICOM
        fail(f"{film} is not a DICOM file ({type(exc).__name__}); the node answers DICOM films only")
    opened = open_gallery(gallery)
    loaded, card = load_model_or_bundled(model)
    same_model(opened, card)
    result = FilmAnswerer(Analyzer(loaded), opened, card, top).answer(encoded, header)
    if result.findings is None:
        fail(f"the quality gate refused the film: {result.refusal}")
    out.mkdir(parents=True, exist_ok=True)
    sr, sc = result.datasets()
    sr.save_as(out / "sr.dcm", enforce_file_format=True)
    sc.save_as(out / "sc.dcm", enforce_file_format=True)
    cv2.imwrite(str(out / "sc.png"), cv2.cvtColor(sc.pixel_array, cv2.COLOR_RGB2BGR))
    from api.pacs.findings import RESEARCH_NOTICE

    typer.echo("\n".join([RESEARCH_NOTICE, *result.findings.lines()]))
    typer.echo(f"wrote {out / 'sr.dcm'}, {out / 'sc.dcm'} and {out / 'sc.png'}")
