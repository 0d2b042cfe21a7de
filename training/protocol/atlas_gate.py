"""The quality gate on every film of a real site it was not tuned on (the Digital Hand Atlas):
how many it accepts with the hand mask alone, and with the landmarks deciding where the mask
cannot tell whether the whole hand is on the film (`matcher.quality`)."""

from __future__ import annotations

from pathlib import Path

from matcher.io import read_radiograph
from matcher.mask import segment_hand
from matcher.quality import assess_quality


def atlas_gate(root: Path) -> dict:
    """Accepted films of `root/images`, mask alone and with landmarks, and each refusal's reasons."""
    films = sorted((root / "images").glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem)
    mask_alone, with_landmarks, refused, decided = 0, 0, {}, []
    for path in films:
        radiograph = read_radiograph(path)
        hand = segment_hand(radiograph.pixels)
        mask_alone += assess_quality(radiograph, hand, landmarks=None).accepted
        verdict = assess_quality(radiograph, hand)
        with_landmarks += verdict.accepted
        if "whole_by_landmarks" in verdict.measurements:
            decided.append(path.stem)
        if not verdict.accepted:
            refused[path.stem] = verdict.reasons
    return {
        "films": len(films),
        "mask_alone": mask_alone,
        "with_landmarks": with_landmarks,
        "decided_by_landmarks": decided,
        "refused": refused,
    }


def atlas_gate_lines(gate: dict) -> list[str]:
    lines = [
        "## The quality gate on every atlas film",
        "",
        f"Of {gate['films']} Digital Hand Atlas films, the gate accepts {gate['with_landmarks']} "
        f"({100 * gate['with_landmarks'] / gate['films']:.1f}%); with the hand mask alone it accepted {gate['mask_alone']}. "
        f"The landmarks decided on {len(gate['decided_by_landmarks'])} films the mask could not judge "
        f"({', '.join(gate['decided_by_landmarks']) or 'none'}).",
    ]
    return lines + [f"- refused {film}: {'; '.join(reasons)}" for film, reasons in gate["refused"].items()]
