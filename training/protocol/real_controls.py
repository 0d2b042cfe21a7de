"""Real unaffected hands against a gallery's typical profiles: does a normal profile make any disorder likely?

The controls are real films neither the landmark model nor the norms learnt from: the held-out
Digital Hand Atlas films and the full-resolution RSNA films (`landmark_eval`). Each is measured
by the landmark model, scored against every disorder's typical profile (`index.profile_evidence`)
and turned into the profile-alone probability of the evidence model fitted on phantoms. A normal
profile should leave every disorder with a match at or below zero and a low probability.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from index.evidence import EvidenceModel
from index.profile_evidence import TypicalProfiles
from matcher.hand_measure import HandMeasurer
from training.landmark_data import dha_split
from training.protocol import markdown
from training.protocol.landmark_eval import atlas_truths, rsna_full_truths

CONTROL = "unaffected"


def control_matches(shared: Path, measurer: HandMeasurer, profiles: TypicalProfiles) -> tuple[list[str], np.ndarray]:
    """(film keys, (F, D) match of each real control to each disorder of `profiles`)."""
    films = atlas_truths(shared / "dha", dha_split(shared / "dha")[1])
    if (shared / "real_hands_labelled").is_dir():
        films += rsna_full_truths(shared / "rsna_100px", shared / "real_hands_labelled")
    lengths = measurer.lengths_of([f.image for f in films])
    z = measurer.norms.z_table(np.stack(lengths), np.array([f.age_years for f in films]), np.array([f.sex for f in films]))
    return [f.key for f in films], np.stack([profiles.match(row, profiles.disorders) for row in z])


def real_controls(shared: Path, measurer: HandMeasurer, profiles: TypicalProfiles, profile_model: EvidenceModel) -> tuple[list[str], dict]:
    """The report's lines and figures: per disorder, how often and how strongly its profile rises for a real control."""
    keys, matches = control_matches(shared, measurer, profiles)
    weight = profile_model.coefficients.get("profile", 0.0)
    probability = 1 / (1 + np.exp(-(weight * matches + profile_model.intercept)))
    disorders = [i for i, d in enumerate(profiles.disorders) if d != CONTROL]
    highest = probability[:, disorders].max(axis=1)
    data = {
        "films": len(keys),
        "any_match_above_zero_pct": round(100 * float((matches[:, disorders] > 0).any(axis=1).mean()), 1),
        "highest_probability_median": round(float(np.median(highest)), 4),
        "highest_probability_max": round(float(highest.max()), 4),
        "prior": round(1 / len(profiles.disorders), 4),
        "per_disorder": {
            profiles.disorders[i]: {
                "match_median": round(float(np.median(matches[:, i])), 2),
                "above_zero_pct": round(100 * float((matches[:, i] > 0).mean()), 1),
                "probability_max": round(float(probability[:, i].max()), 4),
            }
            for i in range(len(profiles.disorders))
        },
    }
    rows = [[d, v["match_median"], f"{v['above_zero_pct']:.0f}%", f"{v['probability_max']:.3f}"] for d, v in data["per_disorder"].items()]
    lines = [
        "## Real unaffected hands against the typical profiles",
        "",
        f"{data['films']} real films held out of the landmark model and the norms (Digital Hand Atlas, full-resolution RSNA), "
        "measured by the landmark model and matched to every disorder's typical profile (learnt from the test cohort). "
        f"A disorder's profile fits better than the unaffected one (match > 0) for {data['any_match_above_zero_pct']}% of them; "
        f"the highest profile-alone probability of any disorder is {data['highest_probability_median']:.3f} at the median, "
        f"{data['highest_probability_max']:.3f} at most (one in {len(profiles.disorders)} disorders: {data['prior']:.3f}).",
        "",
        *markdown.table(["disorder", "median match", "match > 0", "highest probability"], rows),
    ]
    return lines, data
