"""A running node: its parts built from settings, and the loop that drains the inbox and the outbox.

`NodeRunner.step` does one round (analyse what arrived, deliver what is due, poll the PACS when a
watcher is attached); `run` repeats it until stopped, printing a status line now and then. The SCP
and the watcher only fill the inbox, so a slow analysis never holds up a sender.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from api.pacs.inbox import Inbox
from api.pacs.ledger import Ledger
from api.pacs.node import Node
from api.pacs.outbox import Backoff, Outbox
from api.pacs.senders import sender_for
from api.pacs.settings import NodeSettings
from api.pacs.watcher import DicomWebWatcher
from matcher.errors import Bone2GeneError

log = logging.getLogger("bone2gene.pacs")


class ModelMismatch(Bone2GeneError, ValueError):
    """The gallery was embedded with another model than the node's."""


def build_node(settings: NodeSettings) -> tuple[Node, Inbox]:
    """Load the model, open the gallery and the node's state (inbox, outbox, ledger)."""
    from index.store import Gallery
    from matcher.analysis import Analyzer
    from matcher.checkpoint import load_model

    model, card = load_model(settings.model)
    gallery = Gallery.open(settings.gallery)
    if gallery.model_fingerprint != card.fingerprint:
        raise ModelMismatch(
            f"the gallery holds model {gallery.model_fingerprint[:12]} but the node's model is {card.fingerprint[:12]}; "
            "give the gallery's model (--model)"
        )
    settings.state.mkdir(parents=True, exist_ok=True)
    outbox = Outbox(settings.state / "outbox", Backoff(settings.retry_first_s, settings.retry_max_s))
    ledger = Ledger(settings.state / "ledger.sqlite")
    node = Node(settings, Analyzer(model), gallery, card, outbox, ledger, sender_for(settings))
    return node, Inbox(settings.state / "inbox")


@dataclass
class NodeRunner:
    node: Node
    inbox: Inbox
    watcher: DicomWebWatcher | None = None
    poll_interval_s: float = 30.0
    status_every_s: float = 60.0
    stopping: threading.Event = field(default_factory=threading.Event)
    _last_poll: float = -1e18
    _last_status: float = 0.0

    def step(self) -> int:
        """One round; returns how many inbox objects it handled."""
        if self.watcher is not None and time.monotonic() - self._last_poll >= self.poll_interval_s:
            self._last_poll = time.monotonic()
            try:
                self.watcher.poll()
            except Exception as exc:  # the PACS may be down: try again next poll, keep delivering and analysing
                log.warning("the DICOMweb search failed (%s); trying again in %.0f s", type(exc).__name__, self.poll_interval_s)
        handled = 0
        for path in self.inbox.pending():
            if self.stopping.is_set():
                break
            try:
                self.node.receive(path.read_bytes(), Inbox.origin_of(path))
            except Exception:  # a fault of ours on one film must not stop the node: keep the film aside
                log.exception("the film %s could not be handled; it is kept in %s for inspection", path.name, self.inbox.quarantine)
                self.node.ledger.count("failed")
                self.inbox.set_aside(path)
            else:
                self.inbox.done(path)
            handled += 1
        self.node.deliver_due()
        if time.monotonic() - self._last_status >= self.status_every_s:
            self._last_status = time.monotonic()
            log.info("status: %s, waiting %d", self.node.status_line(), len(self.inbox))
        return handled

    def run(self, idle_s: float = 0.5) -> None:
        while not self.stopping.is_set():
            if self.step() == 0:
                self.stopping.wait(idle_s)
