"""Delivering answers: C-STORE to a DICOM peer (pynetdicom) or STOW-RS to a DICOMweb server.

A sender either stores every dataset of an answer or raises `DeliveryError` saying why; the
outbox then keeps the answer for the next attempt.
"""

from __future__ import annotations

from typing import Protocol

import pydicom
from pynetdicom import AE
from pynetdicom.sop_class import ComprehensiveSRStorage, SecondaryCaptureImageStorage

from api.pacs.connections import client_tls, dicomweb_client
from api.pacs.settings import NodeSettings
from matcher.errors import Bone2GeneError

ANSWER_CLASSES = (ComprehensiveSRStorage, SecondaryCaptureImageStorage)
EXPLICIT_LE, IMPLICIT_LE = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"


class DeliveryError(Bone2GeneError, ConnectionError):
    """An answer could not be delivered now (peer down, refused, timed out); it stays queued."""


class Sender(Protocol):
    def send(self, datasets: list[pydicom.Dataset]) -> None: ...


class CStoreSender:
    def __init__(self, settings: NodeSettings, timeout_s: float = 30.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s

    def describe(self) -> str:
        s = self.settings
        return f"C-STORE to {s.peer_ae_title}@{s.peer_host}:{s.peer_port}{' (TLS)' if s.tls else ''}"

    def send(self, datasets: list[pydicom.Dataset]) -> None:
        s = self.settings
        ae = AE(ae_title=s.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        for sop_class in ANSWER_CLASSES:
            ae.add_requested_context(sop_class, [EXPLICIT_LE, IMPLICIT_LE])
        context = client_tls(s)
        tls_args = None if context is None else (context, s.peer_host)
        assoc = ae.associate(s.peer_host, s.peer_port, ae_title=s.peer_ae_title, tls_args=tls_args)
        if not assoc.is_established:
            raise DeliveryError(f"no association with {self.describe()}: the peer is down, unreachable or refused us")
        try:
            for ds in datasets:
                status = assoc.send_c_store(ds)
                code = getattr(status, "Status", None)
                if code is None or (code != 0x0000 and not 0xB000 <= code <= 0xBFFF):
                    raise DeliveryError(f"{self.describe()} did not store the {ds.Modality} object (status {code})")
        finally:
            assoc.release()


class StowSender:
    def __init__(self, settings: NodeSettings, timeout_s: float = 30.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s

    def describe(self) -> str:
        return f"STOW-RS to {self.settings.dicomweb_url}"

    def send(self, datasets: list[pydicom.Dataset]) -> None:
        client = dicomweb_client(self.settings, self.timeout_s)
        try:
            response = client.store_instances(datasets)
        except Exception as exc:  # requests and dicomweb-client raise many types for one cause: not stored
            raise DeliveryError(f"{self.describe()} failed: {type(exc).__name__}") from exc
        failed = response.get("FailedSOPSequence") if response is not None else None
        if failed:
            raise DeliveryError(f"{self.describe()}: the server refused {len(failed)} object(s)")


def sender_for(settings: NodeSettings) -> CStoreSender | StowSender:
    return CStoreSender(settings) if settings.destination == "dicom" else StowSender(settings)
