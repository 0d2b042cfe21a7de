"""The node against a real PACS (Orthanc with DICOMweb, started by the test on loopback ports): a film
with fake PHI reaches the node by each route, and its SR and SC come back into the film's own study,
saying what `analyze` says of the same film; an outage of the PACS and a killed node lose nothing."""

from __future__ import annotations

import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pydicom
import pytest
from orthanc_server import AE_TITLE, PASSWORD, USER, Orthanc, free_port, require_orthanc
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import ComputedRadiographyImageStorage
from sr_reading import sr_values

from api.pacs.inbox import Inbox
from api.pacs.ledger import Ledger
from api.pacs.outbox import Outbox
from api.pacs.runner import NodeRunner, build_node
from api.pacs.scp import StorageSCP
from api.pacs.settings import NodeSettings
from api.pacs.watcher import DicomWebWatcher
from index.store import Gallery

pytestmark = pytest.mark.timeout(300)


def _answers(orthanc: Orthanc, study_id: str) -> dict[str, pydicom.Dataset]:
    """The film and the node's two answers in the study, by modality, read from Orthanc's copies."""
    series = orthanc.wait_for_series(study_id, 3)
    found = {}
    for s in series:
        found[s["MainDicomTags"]["Modality"]] = pydicom.dcmread(io.BytesIO(orthanc.instance_file(s["Instances"][0])))
    return found


def _check_answers(answers: dict[str, pydicom.Dataset], film_path: Path, analyzer, tmp_path: Path) -> None:
    film, sr, sc = pydicom.dcmread(film_path), answers["SR"], answers["OT"]
    expected = analyzer.analyze(film_path)
    values = sr_values(sr)
    assert values["Bone age"] == [pytest.approx(expected.bone_age_months, abs=0.01)]
    assert values["Model probability of male sex"] == [pytest.approx(expected.male_probability, abs=1e-5)]
    assert values["Source image"] == [film.SOPInstanceUID]
    for answer in (sr, sc):
        assert answer.StudyInstanceUID == film.StudyInstanceUID and answer.PatientName == film.PatientName
    if shutil.which("dciodvfy") is not None:
        for name, answer in (("sr", sr), ("sc", sc)):
            answer.save_as(tmp_path / f"{name}.dcm", enforce_file_format=True)
            report = subprocess.run(["dciodvfy", str(tmp_path / f"{name}.dcm")], capture_output=True, text=True, check=False)
            assert not [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")], name


def _settings(pacs_world, tmp_path: Path, **fields) -> NodeSettings:
    return NodeSettings(gallery=pacs_world.gallery_copy(tmp_path), state=tmp_path / "state", **fields)


def _in_process(settings: NodeSettings, pacs_world) -> NodeRunner:
    from api.pacs.node import Node
    from api.pacs.outbox import Backoff
    from api.pacs.senders import sender_for

    outbox = Outbox(settings.state / "outbox", Backoff(1, 2))
    ledger = Ledger(settings.state / "ledger.sqlite")
    gallery = Gallery.open(settings.gallery)
    node = Node(settings, pacs_world.analyzer, gallery, pacs_world.card, outbox, ledger, sender_for(settings))
    return NodeRunner(node, Inbox(settings.state / "inbox"), poll_interval_s=0.5)


def test_a_film_the_pacs_routes_to_the_node_is_answered_into_its_study(pacs_world, tmp_path: Path) -> None:
    require_orthanc()
    node_port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", node_port).start()
    try:
        peer = {"peer_ae_title": AE_TITLE, "peer_host": "127.0.0.1", "peer_port": orthanc.dicom_port}
        settings = _settings(pacs_world, tmp_path, port=node_port, allowed_calling_aes=[AE_TITLE], **peer)
        runner = _in_process(settings, pacs_world)
        cases_before = len(runner.node.gallery.cases())
        scp = StorageSCP(settings, runner.inbox, runner.node.ledger)
        scp.start()
        worker = threading.Thread(target=runner.run, kwargs={"idle_s": 0.1}, daemon=True)
        worker.start()
        stored = orthanc.store(pacs_world.films[0])
        orthanc.route_to_node(stored["ID"])
        answers = _answers(orthanc, stored["ParentStudy"])
        _check_answers(answers, pacs_world.films[0], pacs_world.analyzer, tmp_path)
        orthanc.route_to_node(stored["ID"])  # routed again: analysed once
        deadline = time.monotonic() + 30
        while runner.node.ledger.counts()["duplicate"] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        counts = runner.node.ledger.counts()
        assert counts["analysed"] == 1 and counts["duplicate"] == 1 and counts["sent"] == 2
        assert len(orthanc.series_of(stored["ParentStudy"])) == 3
        assert len(runner.node.gallery.cases()) == cases_before, "nothing enters the gallery"
        runner.stopping.set()
        worker.join(timeout=30)
        scp.stop()
    finally:
        orthanc.stop()


def test_a_film_found_by_dicomweb_is_answered_by_stow_with_the_secret_never_logged(pacs_world, tmp_path: Path, caplog) -> None:
    require_orthanc()
    orthanc = Orthanc(tmp_path / "orthanc", free_port()).start()
    caplog.set_level(logging.DEBUG)
    try:
        settings = _settings(
            pacs_world, tmp_path, destination="dicomweb", dicomweb_url=orthanc.dicomweb, dicomweb_username=USER, dicomweb_password=PASSWORD
        )
        runner = _in_process(settings, pacs_world)
        from api.pacs.connections import dicomweb_client

        runner.watcher = DicomWebWatcher(settings, dicomweb_client(settings), runner.inbox, runner.node.ledger, days=None)
        stored = orthanc.store(pacs_world.films[1])
        deadline = time.monotonic() + 120
        while runner.node.ledger.counts()["sent"] < 2 and time.monotonic() < deadline:
            runner.step()
            time.sleep(0.2)
        _check_answers(_answers(orthanc, stored["ParentStudy"]), pacs_world.films[1], pacs_world.analyzer, tmp_path)
        for _ in range(3):  # later polls find the film and its answers again, and fetch none of them
            runner._last_poll = -1e18
            runner.step()
        assert runner.node.ledger.counts()["analysed"] == 1 and runner.node.ledger.counts()["received"] == 1
        assert PASSWORD not in caplog.text
    finally:
        orthanc.stop()


def _node_process(settings_env: dict[str, str], log: Path) -> subprocess.Popen:
    env = {**os.environ, **settings_env}
    command = [sys.executable, "-c", "from api.cli import main; main()", "pacs", "listen"]
    return subprocess.Popen(command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _wait(condition, what: str, timeout_s: float = 120.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen in {timeout_s:.0f} s{': ' + log.read_text()[-3000:] if log else ''}")


@pytest.mark.slow  # a node process started, killed and restarted: about 20 s
def test_answers_wait_out_a_pacs_outage_and_a_killed_node(pacs_world, tmp_path: Path, monkeypatch) -> None:
    require_orthanc()
    node_port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", node_port).start()
    state, log = tmp_path / "state", tmp_path / "node.log"
    env = {
        "BONE2GENE_PACS_GALLERY": str(pacs_world.gallery_copy(tmp_path)),
        "BONE2GENE_PACS_STATE": str(state),
        "BONE2GENE_PACS_PORT": str(node_port),
        "BONE2GENE_PACS_ALLOWED_CALLING_AES": f'["{AE_TITLE}", "MODALITY"]',
        "BONE2GENE_PACS_PEER_AE_TITLE": AE_TITLE,
        "BONE2GENE_PACS_PEER_HOST": "127.0.0.1",
        "BONE2GENE_PACS_PEER_PORT": str(orthanc.dicom_port),
        "BONE2GENE_PACS_RETRY_FIRST_S": "0.5",
        "BONE2GENE_PACS_RETRY_MAX_S": "1",
    }
    node = _node_process(env, log)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        _wait(lambda: "listening as" in (log.read_text() if log.exists() else ""), "the node's start", log=log)
        stored = orthanc.store(pacs_world.films[2])  # the study is in the PACS ...
        orthanc.stop()  # ... which goes down; the modality sends the film to the node as well
        modality = AE(ae_title="MODALITY")
        modality.add_requested_context(ComputedRadiographyImageStorage, ExplicitVRLittleEndian)
        assoc = modality.associate("127.0.0.1", node_port, ae_title="BONE2GENE")
        assert assoc.send_c_store(pacs_world.films[2]).Status == 0x0000
        assoc.release()
        _wait(lambda: Ledger(state / "ledger.sqlite").counts()["failed"] >= 1, "a failed delivery", log=log)
        assert len(Outbox(state / "outbox")) == 1
        node.send_signal(signal.SIGKILL)  # the node dies with its answer undelivered
        node.wait(timeout=30)
        orthanc.start()
        restarted, _ = build_node(NodeSettings())  # the node starts again on its state, as `pacs listen` does
        _wait(lambda: restarted.deliver_due() == 1, "the queued answer's delivery")
        _check_answers(_answers(orthanc, stored["ParentStudy"]), pacs_world.films[2], pacs_world.analyzer, tmp_path)
        counts = restarted.ledger.counts()
        assert counts["analysed"] == 1 and counts["sent"] == 2 and len(restarted.outbox) == 0
    finally:
        node.kill()
        orthanc.stop()
