"""The DICOMweb watcher: ask the PACS for new hand films (QIDO-RS) and fetch them (WADO-RS).

Each poll searches instances of the filter's modalities (and studies, and recent study dates when
`days` is set), asks for the header fields the film filter reads, and fetches only the instances
that pass it and that the ledger has not seen. Fetched films go into the same inbox the SCP fills,
so both routes meet in one pipeline. Instances the filter skips are remembered as skipped, so a
later poll does not ask for them again.
"""

from __future__ import annotations

import datetime as dt
import logging

import pydicom
from dicomweb_client import DICOMwebClient

from api.pacs.film_filter import skip_reason
from api.pacs.inbox import Inbox
from api.pacs.ledger import Ledger
from api.pacs.settings import NodeSettings

log = logging.getLogger("bone2gene.pacs")

FIELDS = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "Modality", "BodyPartExamined", "ViewPosition")
FIELDS += ("SeriesDescription", "StudyDescription", "ProtocolName", "Rows")
ORIGIN = "dicomweb"


class DicomWebWatcher:
    def __init__(self, settings: NodeSettings, client: DICOMwebClient, inbox: Inbox, ledger: Ledger, days: int | None = 2) -> None:
        self.settings, self.client, self.inbox, self.ledger, self.days = settings, client, inbox, ledger, days
        self._fetched: set[str] = set()  # fetched into the inbox, perhaps not analysed yet: not fetched again

    def _filters(self, modality: str, study: str | None) -> dict:
        filters: dict = {"Modality": modality}
        if self.days is not None:
            since = dt.date.today() - dt.timedelta(days=self.days)
            filters["StudyDate"] = f"{since:%Y%m%d}-"
        if study is not None:
            filters["StudyInstanceUID"] = study
        return filters

    def _candidates(self) -> list[pydicom.Dataset]:
        found = []
        for study in self.settings.film_filter.studies or [None]:
            for modality in self.settings.film_filter.modalities:
                matches = self.client.search_for_instances(
                    search_filters=self._filters(modality, study), fields=list(FIELDS), get_remaining=True
                )
                found += [pydicom.Dataset.from_json(m) for m in matches]
        return found

    def poll(self) -> int:
        """One look at the PACS: fetch every new hand film into the inbox; returns how many."""
        fetched = 0
        for header in self._candidates():
            uid = str(header.get("SOPInstanceUID", ""))
            if not uid or uid in self._fetched or self.ledger.seen(uid) is not None:
                continue
            reason = skip_reason(header, self.settings.film_filter, check_pixels=False)
            if reason is not None:
                self.ledger.record(uid, "skipped", "refused")
                log.info("%s: skipped: %s", ORIGIN, reason)
                continue
            film = self.client.retrieve_instance(str(header.StudyInstanceUID), str(header.SeriesInstanceUID), uid)
            buffer = pydicom.filebase.DicomBytesIO()
            pydicom.dcmwrite(buffer, film, enforce_file_format=True)
            self.inbox.put(buffer.getvalue(), ORIGIN)
            self._fetched.add(uid)
            fetched += 1
        return fetched
