"""The node without a PACS: its Storage SCP over real loopback DICOM (pynetdicom on both ends), the
disk queues that keep films and answers across failures, and the ledger that answers a film once."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from orthanc_server import free_port
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.sop_class import ComputedRadiographyImageStorage, Verification

from api.pacs.inbox import Inbox
from api.pacs.ledger import Ledger
from api.pacs.node import Node
from api.pacs.outbox import Backoff, Outbox
from api.pacs.runner import NodeRunner
from api.pacs.scp import StorageSCP
from api.pacs.senders import CStoreSender
from api.pacs.settings import NodeSettings
from index.store import Gallery


@pytest.fixture
def node_parts(pacs_world, tmp_path: Path):
    """A node whose answers go to a port nothing listens on (so they stay queued), and its SCP."""
    settings = NodeSettings(
        gallery=pacs_world.gallery_copy(tmp_path),
        state=tmp_path / "state",
        port=free_port(),
        allowed_calling_aes=["MODALITY"],
        peer_ae_title="NOBODY",
        peer_host="127.0.0.1",
        peer_port=free_port(),
    )
    outbox = Outbox(settings.state / "outbox", Backoff(60, 600))
    ledger = Ledger(settings.state / "ledger.sqlite")
    node = Node(settings, pacs_world.analyzer, Gallery.open(settings.gallery), pacs_world.card, outbox, ledger, CStoreSender(settings, 2))
    runner = NodeRunner(node, Inbox(settings.state / "inbox"))
    scp = StorageSCP(settings, runner.inbox, ledger)
    scp.start()
    yield settings, runner
    scp.stop()


def _associate(settings: NodeSettings, calling: str = "MODALITY"):
    ae = AE(ae_title=calling)
    ae.add_requested_context(ComputedRadiographyImageStorage, ExplicitVRLittleEndian)  # the films' own encoding, streamed as is
    ae.add_requested_context(Verification)
    return ae.associate("127.0.0.1", settings.port, ae_title=settings.ae_title)


def test_an_unknown_calling_ae_is_refused_and_counted(node_parts) -> None:
    settings, runner = node_parts
    assoc = _associate(settings, calling="STRANGER")
    assert assoc.is_rejected and not assoc.is_established
    assert runner.node.ledger.counts()["refused"] == 1 and len(runner.inbox) == 0
    known = _associate(settings)
    assert known.is_established and known.send_c_echo().Status == 0x0000
    known.release()


def _fuzzed(film: Path, folder: Path, rng: np.random.Generator, count: int) -> list[Path]:
    """Copies of `film`, each a new instance, with a valid file meta and a damaged dataset: flipped
    bytes in the header elements, truncation, garbage after the meta."""
    out = []
    for i in range(count):
        ds = pydicom.dcmread(film)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        path = folder / f"fuzz-{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        data, meta_end = path.read_bytes(), _meta_length(path)
        body = np.frombuffer(data[meta_end:], np.uint8).copy()
        kind = i % 3
        if kind == 0:
            body[rng.integers(0, min(len(body), 1500), size=12)] = rng.integers(0, 256, size=12)
        elif kind == 1:
            body = body[: int(rng.integers(8, len(body) // 2))]
        else:
            body = rng.integers(0, 256, size=2000).astype(np.uint8)
        path.write_bytes(data[:meta_end] + body.tobytes())
        out.append(path)
    return out


def _meta_length(film: Path) -> int:
    with film.open("rb") as handle:
        pydicom.filereader.read_preamble(handle, False)
        pydicom.filereader._read_file_meta_info(handle)
        return handle.tell()


def test_a_fuzzed_stream_is_logged_and_skipped_and_the_node_keeps_serving(node_parts, pacs_world, tmp_path: Path) -> None:
    settings, runner = node_parts
    fuzzed = _fuzzed(pacs_world.films[0], tmp_path, np.random.default_rng(37), 9)
    with socket.create_connection(("127.0.0.1", settings.port)) as raw:  # not even DICOM
        raw.sendall(np.random.default_rng(1).integers(0, 256, 4096).astype(np.uint8).tobytes())
    _config.STORE_SEND_CHUNKED_DATASET = True  # stream the files' bytes as they are, without decoding them
    try:
        assoc = _associate(settings)
        assert assoc.is_established
        statuses = [assoc.send_c_store(path) for path in fuzzed]
        good = assoc.send_c_store(pacs_world.films[1])
        again = assoc.send_c_store(pacs_world.films[1])
        assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
    acknowledged = sum(getattr(s, "Status", None) == 0x0000 for s in [*statuses, good, again])
    assert good.Status == 0x0000 and again.Status == 0x0000
    while runner.step():
        pass
    counts = runner.node.ledger.counts()
    assert len(runner.inbox) == 0 and not runner.inbox.quarantine.exists(), "every acknowledged object was handled, none failed"
    assert counts["received"] == acknowledged and counts["analysed"] >= 1 and counts["duplicate"] == 1
    assert counts["analysed"] + counts["refused"] + counts["duplicate"] == counts["received"]
    assert counts["refused"] >= 6, "the damaged copies were refused (unreadable, damaged pixels or UIDs), not analysed"
    assert len(runner.node.outbox) == counts["analysed"], "each analysed film's answer waits in the outbox"
    echo = _associate(settings)
    assert echo.send_c_echo().Status == 0x0000, "the node still serves"
    echo.release()


def test_undelivered_answers_wait_with_backoff_and_survive_a_reopen(pacs_world, tmp_path: Path) -> None:
    film = pydicom.dcmread(pacs_world.films[0])
    outbox = Outbox(tmp_path / "outbox", Backoff(first_s=5, max_s=40))
    job = outbox.put([film, film])
    (tmp_path / "outbox" / ".tmp-half-written").mkdir()  # a put interrupted by a crash
    now = time.time()
    waits = []
    for _ in range(5):
        job = outbox.failed(job, "peer down", now=now)
        waits.append(round(job.next_try - now))
    assert waits == [5, 10, 20, 40, 40]
    reopened = Outbox(tmp_path / "outbox")
    assert [j.job_id for j in reopened.jobs()] == [job.job_id] and not (tmp_path / "outbox" / ".tmp-half-written").exists()
    assert reopened.due(now) == [] and reopened.due(now + 41)[0].attempts == 5
    assert [ds.SOPInstanceUID for ds in reopened.datasets(job)] == [film.SOPInstanceUID] * 2
    reopened.delivered(job)
    assert len(Outbox(tmp_path / "outbox")) == 0


def test_the_ledger_keeps_films_by_digest_only_and_its_counts_across_reopens(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.record("1.2.840.99.1", "analysed", "analysed")
    ledger.count("received", 3)
    ledger.close()
    again = Ledger(tmp_path / "ledger.sqlite")
    assert again.seen("1.2.840.99.1") == "analysed" and again.seen("1.2.840.99.2") is None
    assert again.counts()["received"] == 3 and again.counts()["analysed"] == 1
    assert b"1.2.840.99.1" not in (tmp_path / "ledger.sqlite").read_bytes() + (tmp_path / "ledger.sqlite-wal").read_bytes()


def _certificates(folder: Path) -> dict[str, Path]:
    """A CA, and a certificate it signed for the node and one for a modality (openssl, on loopback)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    files = {name: folder / f"{name}.pem" for name in ("ca", "ca-key", "node", "node-key", "modality", "modality-key")}

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        str(files["ca-key"]),
        "-out",
        str(files["ca"]),
    )
    for name in ("node", "modality"):
        request = folder / f"{name}.csr"
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", str(files[f"{name}-key"]), "-out", str(request))
        extensions = folder / f"{name}.ext"
        extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        run("x509", "-req", "-in", str(request), "-CA", str(files["ca"]), "-CAkey", str(files["ca-key"]), "-CAcreateserial", "-days", "1",
            "-extfile", str(extensions), "-out", str(files[name]))  # fmt: skip
    return files


def test_dicom_tls_admits_a_modality_with_a_signed_certificate_and_no_one_in_the_clear(tmp_path: Path) -> None:
    files = _certificates(tmp_path)
    settings = NodeSettings(
        gallery=tmp_path, state=tmp_path / "state", port=free_port(), allowed_calling_aes=["MODALITY"],
        peer_ae_title="PACS", peer_host="127.0.0.1", peer_port=free_port(),
        tls_certificate=files["node"], tls_key=files["node-key"], tls_ca=files["ca"],
    )  # fmt: skip
    scp = StorageSCP(settings, Inbox(tmp_path / "inbox"), Ledger(tmp_path / "ledger.sqlite"))
    scp.start()
    try:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(Verification)
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(files["ca"]))
        client.load_cert_chain(str(files["modality"]), str(files["modality-key"]))
        secure = ae.associate("127.0.0.1", settings.port, ae_title=settings.ae_title, tls_args=(client, "localhost"))
        assert secure.is_established and secure.send_c_echo().Status == 0x0000
        secure.release()
        assert not ae.associate("127.0.0.1", settings.port, ae_title=settings.ae_title).is_established, "no association in the clear"
        anonymous = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(files["ca"]))  # trusts us, shows nothing
        assert not ae.associate("127.0.0.1", settings.port, ae_title=settings.ae_title, tls_args=(anonymous, "localhost")).is_established
    finally:
        scp.stop()
