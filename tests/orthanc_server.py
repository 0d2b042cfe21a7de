"""A real Orthanc PACS for the node's tests: Debian's `orthanc` with its DICOMweb plugin, started
on free loopback ports in a folder of the test's own, with HTTP authentication on. Tests that need
it skip, with the reason, where the packages are not installed (`.ci/run` installs them)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "b2g", "pacs-secret-7f3a"
AE_TITLE = "ORTHANC"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_orthanc() -> str:
    binary = shutil.which("Orthanc")
    if binary is None or not DICOMWEB_PLUGIN.is_file():
        pytest.skip("Orthanc and its DICOMweb plugin are not installed (apt-get install orthanc orthanc-dicomweb)")
    return binary


@dataclass
class Orthanc:
    folder: Path
    node_port: int  # where Orthanc's modality "b2g" (the node) listens
    node_ae: str = "BONE2GENE"
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def peer(self) -> str:
        return f"{AE_TITLE}@127.0.0.1:{self.dicom_port}"

    def start(self) -> Orthanc:
        binary = require_orthanc()
        config = {
            "Name": "bone2gene-test",
            "StorageDirectory": str(self.folder / "db"),
            "IndexDirectory": str(self.folder / "db"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": AE_TITLE,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "DicomModalities": {"b2g": [self.node_ae, "127.0.0.1", self.node_port]},
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "orthanc.json").write_text(json.dumps(config))
        log = (self.folder / "orthanc.log").open("ab")
        self.process = subprocess.Popen([binary, str(self.folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                if self.get("/system").status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"Orthanc did not start: {(self.folder / 'orthanc.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, auth=(USER, PASSWORD), timeout=10)

    def post(self, path: str, content: bytes | str) -> httpx.Response:
        response = httpx.post(self.url + path, content=content, auth=(USER, PASSWORD), timeout=60)
        response.raise_for_status()
        return response

    def store(self, film: Path) -> dict:
        """Store a DICOM file (as a modality would); returns Orthanc's ids of it."""
        return self.post("/instances", film.read_bytes()).json()

    def route_to_node(self, instance_id: str) -> None:
        """Orthanc C-STOREs an instance to the node (its modality `b2g`), as a PACS routing rule does."""
        self.post("/modalities/b2g/store", json.dumps([instance_id]))

    def series_of(self, study_id: str) -> list[dict]:
        return self.get(f"/studies/{study_id}/series?expand").json()

    def instance_file(self, instance_id: str) -> bytes:
        return self.get(f"/instances/{instance_id}/file").content

    def wait_for_series(self, study_id: str, count: int, timeout_s: float = 120.0) -> list[dict]:
        """The study's series once it holds `count` of them (the film and the two answers)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            series = self.series_of(study_id)
            if len(series) >= count:
                return series
            time.sleep(0.25)
        pytest.fail(f"the study has {len(self.series_of(study_id))} series after {timeout_s:.0f} s, expected {count}")
