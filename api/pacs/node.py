"""One pipeline for every route a film arrives by: filter, once-only, analyse, rank, answer, deliver.

`Node.receive` takes the encoded DICOM object (as the SCP or the DICOMweb watcher got it) and
returns what became of it; `answering.FilmAnswerer` makes the answers (SR and SC), the only things
that carry the patient's identity, because they go back into the patient's own study. Nothing is
added to the gallery. Answers are queued on disk before the ledger marks the film done, so a crash
in between repeats an analysis but never loses an answer.
"""

from __future__ import annotations

import io
import logging
import threading
from dataclasses import dataclass
from typing import Literal

import pydicom

from api.pacs.answering import FilmAnswerer
from api.pacs.film_filter import skip_reason
from api.pacs.film_header import UnanswerableFilm
from api.pacs.ledger import Ledger
from api.pacs.outbox import Job, Outbox
from api.pacs.senders import DeliveryError, Sender
from api.pacs.settings import NodeSettings
from index.store import Gallery
from matcher.analysis import Analyzer
from matcher.checkpoint import ModelCard
from matcher.errors import RadiographError

log = logging.getLogger("bone2gene.pacs")

Outcome = Literal["answered", "skipped", "refused", "duplicate", "malformed"]


@dataclass(frozen=True)
class Received:
    outcome: Outcome
    reason: str = ""
    job_id: str | None = None


class Node:
    def __init__(
        self, settings: NodeSettings, analyzer: Analyzer, gallery: Gallery, card: ModelCard, outbox: Outbox, ledger: Ledger, sender: Sender
    ) -> None:
        self.settings, self.gallery = settings, gallery
        self.outbox, self.ledger, self.sender = outbox, ledger, sender
        self.answerer = FilmAnswerer(analyzer, gallery, card, settings.top, settings.ranking_rule)
        self._one_at_a_time = threading.Lock()  # one analysis at a time: the model is one copy, the ledger check-then-act

    def receive(self, encoded: bytes, origin: str) -> Received:
        """Handle one DICOM object; never raises for a bad object (it is logged and counted)."""
        self.ledger.count("received")
        try:
            header = pydicom.dcmread(io.BytesIO(encoded), force=True, stop_before_pixels=False)
            uid = str(header.SOPInstanceUID)
        except Exception as exc:  # a fuzzed or truncated stream: log the kind, never the content
            return self._refused("malformed", f"not a readable DICOM object ({type(exc).__name__})", origin)
        reason = skip_reason(header, self.settings.film_filter)
        if reason is not None:
            self.ledger.record(uid, "skipped", "refused")
            log.info("%s: skipped: %s", origin, reason)
            return Received("skipped", reason)
        with self._one_at_a_time:
            if self.ledger.seen(uid) == "analysed":  # a refused film may come again intact: it is read again
                self.ledger.count("duplicate")
                log.info("%s: film already handled (same SOP Instance UID); not analysed again", origin)
                return Received("duplicate", "this film was already handled")
            return self._analyse(encoded, header, uid, origin)

    def _refused(self, outcome: Outcome, reason: str, origin: str) -> Received:
        self.ledger.count("refused")
        log.warning("%s: %s: %s", origin, outcome, reason)
        return Received(outcome, reason)

    def _analyse(self, encoded: bytes, header: pydicom.Dataset, uid: str, origin: str) -> Received:
        try:
            answer = self.answerer.answer(encoded, header)
        except (RadiographError, UnanswerableFilm) as exc:
            self.ledger.record(uid, "refused", "refused")
            log.warning("%s: refused: %s", origin, exc)
            return Received("refused", str(exc))
        if answer.refusal is not None:
            self.ledger.record(uid, "refused", "refused")
            log.warning("%s: the quality gate refused the film: %s", origin, answer.refusal)
            return Received("refused", answer.refusal)
        job = self.outbox.put(answer.datasets())  # queued durably before the film counts as answered
        self.ledger.record(uid, "analysed", "analysed")
        log.info("%s: analysed; answer %s queued", origin, job.job_id)
        return Received("answered", job_id=job.job_id)

    def deliver_due(self) -> int:
        """Try every answer whose time has come, in one session with the peer; returns how many were delivered."""
        due = self.outbox.due()
        if not due:
            return 0
        delivered = 0
        try:
            with self.sender.session() as session:
                for job in due:
                    try:
                        session.send(self.outbox.files(job))
                    except DeliveryError as exc:
                        self._not_delivered(job, exc)
                        continue
                    self.outbox.delivered(job)
                    self.ledger.count("sent", len(job.files))
                    delivered += 1
        except DeliveryError as exc:  # no session at all: every due answer waits for the next attempt
            for job in due:
                self._not_delivered(job, exc)
        return delivered

    def _not_delivered(self, job: Job, exc: DeliveryError) -> None:
        job = self.outbox.failed(job, str(exc))
        self.ledger.count("failed")
        log.warning("answer %s not delivered (attempt %d, tried again later): %s", job.job_id, job.attempts, exc)

    def status_line(self) -> str:
        counts = self.ledger.counts()
        return ", ".join(f"{name} {value}" for name, value in counts.items()) + f", queued {len(self.outbox)}"
