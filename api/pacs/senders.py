"""Delivering answers: C-STORE to a DICOM peer (pynetdicom) or STOW-RS to a DICOMweb server.

A sender either stores every file of an answer or raises `DeliveryError` saying why; the outbox
then keeps the answer for the next attempt. C-STORE streams the outbox's files as they are written
(Explicit VR Little Endian) when the peer accepts that encoding, instead of decoding and encoding
them again: for an SR that is most of the delivery's cost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import pydicom
from dicomweb_client import DICOMwebClient
from pynetdicom import AE, Association, _config
from pynetdicom.sop_class import ComprehensiveSRStorage, SecondaryCaptureImageStorage

from api.pacs.connections import client_tls, dicomweb_client
from api.pacs.scp import MAX_PDU
from api.pacs.settings import NodeSettings
from matcher.errors import Bone2GeneError

ANSWER_CLASSES = (ComprehensiveSRStorage, SecondaryCaptureImageStorage)
EXPLICIT_LE, IMPLICIT_LE = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"


class DeliveryError(Bone2GeneError, ConnectionError):
    """An answer could not be delivered now (peer down, refused, timed out); it stays queued."""


class Session(Protocol):
    def send(self, files: list[Path]) -> None: ...


class Sender(Protocol):
    """Opens a session (one association, one HTTP client) in which several answers are sent."""

    def describe(self) -> str: ...

    def session(self) -> AbstractContextManager[Session]: ...


class CStoreSender:
    def __init__(self, settings: NodeSettings, timeout_s: float = 30.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s

    def describe(self) -> str:
        s = self.settings
        return f"C-STORE to {s.peer_ae_title}@{s.peer_host}:{s.peer_port}{' (TLS)' if s.tls else ''}"

    @contextmanager
    def session(self) -> Iterator[Session]:
        s = self.settings
        ae = AE(ae_title=s.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        ae.maximum_pdu_size = MAX_PDU
        for sop_class in ANSWER_CLASSES:
            ae.add_requested_context(sop_class, [EXPLICIT_LE, IMPLICIT_LE])
        context = client_tls(s)
        tls_args = None if context is None else (context, s.peer_host)
        assoc = ae.associate(s.peer_host, s.peer_port, ae_title=s.peer_ae_title, tls_args=tls_args)
        if not assoc.is_established:
            raise DeliveryError(f"no association with {self.describe()}: the peer is down, unreachable or refused us")
        try:
            yield _AssociationSession(self, assoc)
        finally:
            if assoc.is_established:
                assoc.release()


class _AssociationSession:
    def __init__(self, sender: CStoreSender, assoc: Association) -> None:
        self.sender, self.assoc = sender, assoc

    def send(self, files: list[Path]) -> None:
        for path in files:
            self._store(path)

    def _store(self, path: Path) -> None:
        assoc = self.assoc
        if not assoc.is_established:
            raise DeliveryError(f"the association with {self.sender.describe()} was lost")
        sop_class = pydicom.filereader.read_file_meta_info(path).MediaStorageSOPClassUID
        streamable = any(c.abstract_syntax == sop_class and c.transfer_syntax[0] == EXPLICIT_LE for c in assoc.accepted_contexts)
        _config.STORE_SEND_CHUNKED_DATASET = True  # a path is then streamed from the file, not decoded
        status = assoc.send_c_store(path if streamable else pydicom.dcmread(path))
        code = getattr(status, "Status", None)
        if code is None or (code != 0x0000 and not 0xB000 <= code <= 0xBFFF):
            raise DeliveryError(f"{self.sender.describe()} did not store the {sop_class.name} object (status {code})")


class StowSender:
    def __init__(self, settings: NodeSettings, timeout_s: float = 30.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._client: DICOMwebClient | None = None

    def describe(self) -> str:
        return f"STOW-RS to {without_credentials(self.settings.dicomweb_url or '')}"

    @contextmanager
    def session(self) -> Iterator[Session]:
        yield self

    def send(self, files: list[Path]) -> None:
        client = self._client or dicomweb_client(self.settings, self.timeout_s)
        self._client = client
        try:
            response = client.store_instances([pydicom.dcmread(path) for path in files])
        except Exception as exc:  # requests and dicomweb-client raise many types for one cause: not stored
            raise DeliveryError(f"{self.describe()} failed: {type(exc).__name__}") from exc
        failed = response.get("FailedSOPSequence") if response is not None else None
        if failed:
            raise DeliveryError(f"{self.describe()}: the server refused {len(failed)} object(s)")


def without_credentials(url: str) -> str:
    """`url` without a user and password written into it (https://user:pw@host/...), for messages."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))) if parts.hostname else url


def sender_for(settings: NodeSettings) -> CStoreSender | StowSender:
    return CStoreSender(settings) if settings.destination == "dicom" else StowSender(settings)
