"""The Storage SCP: a modality or PACS C-STOREs hand films to us (pynetdicom).

Only calling AE titles on the allowed list may associate; anyone else is rejected at association
(and counted). Every storage SOP class is accepted, so a routed study's other objects (a lateral
view, a report) are taken and then skipped by the filter with a logged reason, instead of failing
the sender's whole transfer. A received object is acknowledged once it is durably in the inbox;
one that cannot even be encoded (a fuzzed stream) is answered with an error status and logged.
C-ECHO answers, so the PACS's "test connection" works.
"""

from __future__ import annotations

import logging

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from api.pacs.connections import server_tls
from api.pacs.inbox import Inbox
from api.pacs.ledger import Ledger
from api.pacs.settings import NodeSettings

log = logging.getLogger("bone2gene.pacs")

MAX_PDU = 4 * 2**20  # senders may cut a film into 4 MiB PDUs instead of pynetdicom's default 16 KiB
CANNOT_UNDERSTAND = 0xC210
OUT_OF_RESOURCES = 0xA700


class StorageSCP:
    def __init__(self, settings: NodeSettings, inbox: Inbox, ledger: Ledger) -> None:
        if not settings.allowed_calling_aes:
            raise ValueError("no calling AE title is allowed to send films: give --allow AE (repeatable) for each PACS or modality")
        self.settings, self.inbox, self.ledger = settings, inbox, ledger
        self.server: ThreadedAssociationServer | None = None

    def _application_entity(self) -> AE:
        ae = AE(ae_title=self.settings.ae_title)
        ae.require_calling_aet = list(self.settings.allowed_calling_aes)
        ae.require_called_aet = True
        ae.maximum_pdu_size = MAX_PDU
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        return ae

    def start(self) -> ThreadedAssociationServer:
        """Listen on the configured address (in background threads); returns the server."""
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_REJECTED, self._on_rejected)]
        address = (self.settings.host, self.settings.port)
        server = self._application_entity().start_server(address, block=False, evt_handlers=handlers, ssl_context=server_tls(self.settings))
        self.server = server
        log.info("listening as %s on %s:%d%s", self.settings.ae_title, *address, " (TLS)" if self.settings.tls else "")
        return server

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    def _on_store(self, event: evt.Event) -> int:
        calling = event.assoc.requestor.ae_title
        try:
            encoded = event.encoded_dataset(include_meta=True)
        except Exception as exc:  # pynetdicom raises several types for an undecodable stream
            self.ledger.count("received")
            self.ledger.count("refused")
            log.warning("from %s: an object that cannot be encoded was refused (%s)", calling, type(exc).__name__)
            return CANNOT_UNDERSTAND
        try:
            self.inbox.put(encoded, calling)
        except OSError as exc:
            log.error("from %s: the inbox cannot take the object (%s); the sender is told to retry", calling, exc)
            return OUT_OF_RESOURCES
        return 0x0000

    def _on_rejected(self, event: evt.Event) -> None:
        self.ledger.count("refused")
        log.warning("association from %s refused: not an allowed calling AE title", event.assoc.requestor.ae_title)
