"""From one film to its two DICOM answers: analyse, rank against the gallery, report.

The node runs this for every film it receives; `bone2gene pacs answer` runs it on a file, so an
administrator sees what the PACS will get before connecting one. The film is read by
`matcher.io.read_radiograph` (the de-identifying reader uploads go through) and ranked as
`bone2gene query` ranks; only the answers copy the film's identity, from its header.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pydicom

from api.pacs.film_header import answer_header
from api.pacs.findings import Findings, gather_findings
from api.pacs.secondary_capture import findings_picture, secondary_capture
from api.pacs.structured_report import structured_report
from api.use_cases import hand_profile, rank_gallery
from index.store import Gallery
from matcher.analysis import Analysis, Analyzer
from matcher.checkpoint import ModelCard
from matcher.io import read_radiograph
from matcher.rank import DEFAULT_RULE, RankingRule


@dataclass
class Answer:
    """A film analysed and ranked; `datasets` makes its two DICOM answers from it."""

    analysis: Analysis
    header: pydicom.Dataset | None = None  # the film's header as the answers need it
    pixels: np.ndarray | None = None  # the film, bone bright, for the secondary capture
    findings: Findings | None = None  # None: the quality gate refused the film

    @property
    def refusal(self) -> str | None:
        return None if self.analysis.accepted else "; ".join(self.analysis.reasons)

    def datasets(self) -> list[pydicom.Dataset]:
        """The Structured Report and the Secondary Capture."""
        if self.findings is None or self.header is None or self.pixels is None:
            raise ValueError("a refused film has no answers")
        picture = findings_picture(self.pixels, self.analysis, self.findings)
        return [structured_report(self.findings, self.header), secondary_capture(picture, self.header)]


class FilmAnswerer:
    def __init__(self, analyzer: Analyzer, gallery: Gallery, card: ModelCard, top: int = 5, rule: RankingRule = DEFAULT_RULE) -> None:
        self.analyzer, self.gallery, self.card, self.top, self.rule = analyzer, gallery, card, top, rule
        self._gene_of = {d.id: ", ".join(d.genes) or None for d in gallery.disorders()}

    def answer(self, encoded: bytes, film: pydicom.Dataset) -> Answer:
        """`film` (its header; `encoded`: the whole object) analysed and ranked. Raises `RadiographError`
        for pixels that cannot be read and `UnanswerableFilm` for a header that cannot carry an answer."""
        header = answer_header(film)
        radiograph = read_radiograph(encoded)
        analysis = self.analyzer.analyze(radiograph)
        if not analysis.accepted:
            return Answer(analysis)
        profile = hand_profile(analysis)
        result = rank_gallery(self.gallery, analysis.embedding, self.top, rule=self.rule, hand=[profile] if profile else [])
        findings = gather_findings(analysis, result, self.card, self._gene_of, self.top)
        return Answer(analysis, header, radiograph.pixels, findings)
