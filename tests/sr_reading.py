"""Reading a Structured Report back, as a reporting system would: every content item by its concept."""

from __future__ import annotations

import pydicom


def sr_values(sr: pydicom.Dataset) -> dict[str, list]:
    """Every content item of an SR by its concept's meaning: numbers as floats, codes by meaning, text as text."""
    found: dict[str, list] = {}

    def walk(items) -> None:
        for item in items:
            name = item.ConceptNameCodeSequence[0].CodeMeaning
            if item.ValueType == "NUM":
                found.setdefault(name, []).append(float(item.MeasuredValueSequence[0].NumericValue))
            elif item.ValueType == "TEXT":
                found.setdefault(name, []).append(str(item.TextValue))
            elif item.ValueType == "CODE":
                found.setdefault(name, []).append(item.ConceptCodeSequence[0].CodeMeaning)
            elif item.ValueType == "IMAGE":
                found.setdefault(name, []).append(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
            walk(item.get("ContentSequence", []))

    walk(sr.ContentSequence)
    return found
