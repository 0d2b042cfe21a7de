"""Phantoms checked against their own specs: do the landmark model and the norms recover the bone
length changes a disorder's spec writes into its phantoms?

For each disorder of a phantom cohort, the spec's expected profile is the mean over sampled
patients of each bone's log length factor relative to the reference bones (the profile is
size-free, so only relative changes can show). The measured profile is the mean z-score of its
phantoms (landmark model, bundled norms) minus that of the unaffected phantoms, which removes
what phantom anatomy and real norms disagree on. Reported per disorder: the bones the spec
shortens by 3% or more relative to the hand, and the share of them whose measured z is lower; the
same from the phantoms' true bone lengths, to tell landmark errors from everything else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from matcher.bone_norms import BoneNorms
from matcher.bone_profile import REFERENCE, bone_lengths
from matcher.hand_scheme import BONE_NAMES
from matcher.io import read_radiograph
from matcher.landmark_net import LandmarkNet
from matcher.landmarks import find_landmarks
from matcher.manifest import read_case_manifest
from training.protocol import markdown
from training.synth.spec import DisorderSpec, PatientPhenotype, builtin_specs

SHORTENED = -0.03  # log units: a bone the spec makes 3% shorter relative to the hand


def spec_profile(spec: DisorderSpec, patients: int = 300, seed: int = 0) -> np.ndarray:
    """(19,) the spec's mean relative log length change per bone, over sampled patients and ages."""
    rng = np.random.default_rng(seed)
    low, high = spec.age_years
    rows = []
    for _ in range(patients):
        factors = PatientPhenotype.sample(spec, rng).at_age(float(rng.uniform(low, high))).length_factor
        logs = np.log([factors[name] for name in BONE_NAMES])
        rows.append(logs - logs[REFERENCE].mean())
    return np.mean(rows, axis=0)


def _z(norms: BoneNorms, lengths: np.ndarray, cases: pd.DataFrame) -> np.ndarray:
    return norms.z_table(lengths, cases["age_months"].to_numpy(float) / 12, cases["sex"].astype(str).to_numpy())


def phantom_z(network: LandmarkNet, norms: BoneNorms, manifest: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The cohort's cases, and their z-scores (N, 19) from the landmark model and from the true lengths."""
    cases = read_case_manifest(manifest)
    cases = cases[cases["disorder"].notna()].reset_index(drop=True)
    measured = np.stack(
        [bone_lengths(find_landmarks(network, [read_radiograph(Path(p)).normalised()])[0].points.astype(float)) for p in cases["path"]]
    )
    bones = pd.read_csv(manifest.parent / "bones.csv", dtype={"case_id": str})
    truth = bones.pivot_table(index="case_id", columns="bone", values="length_mm").reindex(cases["case_id"])[list(BONE_NAMES)]
    return cases, _z(norms, measured, cases), _z(norms, truth.to_numpy(float), cases)


def _mean(z: np.ndarray) -> np.ndarray:
    """Per bone, the mean of the finite z-scores (NaN where there are none)."""
    finite = np.isfinite(z)
    counts = finite.sum(axis=0)
    return np.where(counts > 0, np.where(finite, z, 0.0).sum(axis=0) / np.maximum(counts, 1), np.nan)


def _agreement(z: np.ndarray, disorders: np.ndarray, disorder: str, shortened: np.ndarray) -> float | None:
    delta = _mean(z[disorders == disorder]) - _mean(z[disorders == "unaffected"])
    judged = shortened & np.isfinite(delta)
    return round(100 * float(np.mean(delta[judged] < 0)), 1) if judged.any() else None


def phantom_profile_report(network: LandmarkNet, norms: BoneNorms, manifest: Path) -> tuple[list[str], dict]:
    cases, measured, true = phantom_z(network, norms, manifest)
    specs = {s.id: s for s in builtin_specs()}
    disorders = cases["disorder"].to_numpy(str)
    rows = []
    for disorder in sorted(set(disorders) - {"unaffected"}):
        if disorder not in specs:
            continue
        expected = spec_profile(specs[disorder])
        shortened = expected <= SHORTENED
        if not shortened.any():
            continue
        rows.append(
            {
                "disorder": disorder,
                "cases": int((disorders == disorder).sum()),
                "bones shortened by the spec": ", ".join(np.array(BONE_NAMES)[shortened]),
                "measured z lower (%)": _agreement(measured, disorders, disorder, shortened),
                "true lengths' z lower (%)": _agreement(true, disorders, disorder, shortened),
            }
        )
    table = pd.DataFrame(rows)
    lines = [
        "## Phantoms against their own specs",
        "",
        f"{manifest}: {len(cases)} phantoms. For each disorder whose spec shortens bones by 3% or more relative to the hand: "
        "the share of those bones whose mean z-score (minus the unaffected phantoms') is lower, from the landmark model and "
        "from the phantoms' true bone lengths.",
        "",
        *(markdown.frame_table(table) if len(table) else ["No disorder of this cohort shortens a bone by 3% or more."]),
    ]
    return lines, {"phantoms": len(cases), "disorders": rows}
