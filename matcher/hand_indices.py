"""The classical derived indices of the hand film, where its landmarks allow them.

- **Metacarpal sign** (Archibald): a line along the heads of the 4th and 5th metacarpals
  normally passes distal to the 3rd metacarpal's head; it crosses the head when MC4 (and MC5)
  are short (Turner syndrome, pseudohypoparathyroidism, brachydactyly E), and in about one
  unaffected hand in ten. Read here from the landmarks: the line through the 4th and 5th
  metacarpophalangeal joints, and how far the 3rd joint reaches beyond it along the middle ray,
  as a share of MC3's length (a joint point sits alike beyond each metacarpal head, so the
  offset compares like with like). The sign is positive when the 3rd joint reaches the line.
  On the 93 annotated atlas films the offset's median is -0.036 and 10% reach the line.
- **Metacarpal index** (Marfan syndrome): the mean length-to-width ratio of MC2-MC5. Widths are
  not among the landmarks, so it is reported as not measurable rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from matcher.hand_scheme import MC_BASES, RAYS

MCP = {ray: points[1] for ray, points in RAYS.items()}  # each ray's metacarpophalangeal joint
SIGN_POSITIVE_AT = 0.0  # the 3rd joint's reach beyond the MC4-MC5 line (share of MC3's length) from which the sign is positive
NOT_MEASURABLE = "needs the metacarpals' widths at mid-shaft, which the 37 landmarks do not give"


@dataclass(frozen=True)
class MetacarpalSign:
    offset: float | None  # how far the 3rd MCP joint reaches beyond the MC4-MC5 line, as a share of MC3's length (normally < 0)
    positive: bool | None  # None: not measurable (a joint or the MC3 base not found)

    def to_json(self) -> dict:
        return {
            "offset_of_mc3": None if self.offset is None else round(self.offset, 3),
            "positive": self.positive,
            "how": "the 3rd metacarpophalangeal joint against the line through the 4th and 5th, along the middle ray",
        }


def metacarpal_sign(points: np.ndarray) -> MetacarpalSign:
    """The sign from (37, 2) landmarks (NaN where missing)."""
    head3, head4, head5, base3 = (points[i].astype(float) for i in (MCP[3], MCP[4], MCP[5], MC_BASES[3]))
    if not all(np.isfinite(p).all() for p in (head3, head4, head5, base3)):
        return MetacarpalSign(None, None)
    axis = head3 - base3  # the middle ray, proximal to distal
    length = float(np.linalg.norm(axis))
    line = head5 - head4
    if length <= 0 or np.linalg.norm(line) <= 0:
        return MetacarpalSign(None, None)
    normal = np.array([-line[1], line[0]]) / np.linalg.norm(line)
    if normal @ axis < 0:
        normal = -normal  # the line's normal pointing distally
    offset = float(normal @ (head3 - head4)) / length
    return MetacarpalSign(offset, offset >= SIGN_POSITIVE_AT)


def indices_json(points: np.ndarray) -> dict:
    """The derived indices of one hand, each with what it is or why it could not be measured."""
    return {
        "metacarpal_sign": metacarpal_sign(points).to_json(),
        "metacarpal_index": {"value": None, "not_measurable": NOT_MEASURABLE},
    }
