"""Disorder specs as points in one space, so that "how different are two disorders" has a number.

Why: the procedural disorders (`training.synth.disorder_sampler`) must differ from one another
about as much as the catalogue's hand-written disorders do; too alike and the encoder learns
nothing new from them, too far apart and they are caricatures no patient looks like. Both sets
are measured with this one signature.

A spec's signature is its expected effect on a patient, averaged over three ages (3, 8 and 13
years, where `by_age` curves change), penetrance included (an effect that shows in 30% of
patients counts 0.3 of its size):
- every tubular bone's length and width: the log of the factor the spec's groups multiply it by;
- every phenotype parameter of the registry: the log of a factor, or an offset in its natural
  unit (10 degrees, 3 mm, 1.5 years, 3 calcifications, else 1: the 0..1 grades and the 0/1 signs);
- the bone-age offset in years, and the share of patients with each abnormal thumb form.
Distances are Euclidean between signatures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from training.synth.anatomy import BONES_BY_NAME
from training.synth.spec import GROUPS, PARAMETERS, THUMB_FORMS, DisorderSpec, Effect, Kind, ThumbForm

REFERENCE_AGES = (3.0, 8.0, 13.0)
_BONES = tuple(BONES_BY_NAME)
_ABNORMAL_THUMBS = tuple(f for f in THUMB_FORMS if f != ThumbForm.NORMAL)


def parameter_unit(name: str) -> float:
    """The size of one unit of an offset parameter in the signature (factors are taken as logs)."""
    for suffix, unit in (("_deg", 10.0), ("_mm", 3.0), ("_years", 1.5)):
        if name.endswith(suffix):
            return unit
    return 3.0 if name == "soft_tissue_calcifications" else 1.0


def _expected(effect: Effect, kind: Kind, unit: float = 1.0) -> float:
    """The effect's penetrance-weighted mean over the reference ages, on the signature's scale."""
    values = [effect.mean_at(age) for age in REFERENCE_AGES]
    scaled = [float(np.log(max(v, 0.05))) for v in values] if kind is Kind.FACTOR else [v / unit for v in values]
    return effect.probability * float(np.mean(scaled))


def signature(spec: DisorderSpec) -> np.ndarray:
    """The spec's point in spec space (see the module's docstring)."""
    lengths, widths = np.zeros(len(_BONES)), np.zeros(len(_BONES))
    for table, values in (("length", lengths), ("width", widths)):
        for group, effect in getattr(spec, table).items():
            shift = _expected(effect, Kind.FACTOR)
            for bone in GROUPS[group]:
                values[_BONES.index(bone)] += shift
    features = np.zeros(len(PARAMETERS))
    for i, (name, parameter) in enumerate(PARAMETERS.items()):
        if name in spec.features:
            features[i] = _expected(spec.features[name], parameter.kind, parameter_unit(name))
    bone_age = _expected(spec.bone_age_offset_months, Kind.OFFSET, 12.0)
    thumbs = np.array([spec.thumb.get(form, 0.0) for form in _ABNORMAL_THUMBS])
    return np.concatenate([lengths, widths, features, [bone_age], thumbs])


SIGNATURE_SIZE = 2 * len(_BONES) + len(PARAMETERS) + 1 + len(_ABNORMAL_THUMBS)


def signatures(specs: Sequence[DisorderSpec]) -> np.ndarray:
    return np.stack([signature(s) for s in specs]) if specs else np.zeros((0, SIGNATURE_SIZE))


def pairwise_distances(points: np.ndarray) -> np.ndarray:
    """The distances between every pair of rows (the upper triangle, flattened)."""
    difference = points[:, None, :] - points[None, :, :]
    distances = np.sqrt((difference**2).sum(-1))
    return distances[np.triu_indices(len(points), k=1)]


def nearest_distances(points: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
    """Each row's distance to its nearest other row (of `others` when given, else of `points`)."""
    against = points if others is None else others
    distances = np.sqrt(((points[:, None, :] - against[None, :, :]) ** 2).sum(-1))
    if others is None:
        np.fill_diagonal(distances, np.inf)
    return distances.min(axis=1)


def diversity_rows(groups: dict[str, Sequence[DisorderSpec]]) -> list[dict]:
    """For each named set of specs: how far apart its disorders lie (pairwise distance quantiles)
    and how far each lies from its nearest neighbour in the set; the table the sampler is judged by."""
    rows = []
    for name, specs in groups.items():
        points = signatures(specs)
        pairs, nearest = pairwise_distances(points), nearest_distances(points)
        rows.append(
            {
                "set": name,
                "disorders": len(specs),
                "pairwise q10": round(float(np.quantile(pairs, 0.1)), 3),
                "pairwise median": round(float(np.median(pairs)), 3),
                "pairwise q90": round(float(np.quantile(pairs, 0.9)), 3),
                "nearest neighbour median": round(float(np.median(nearest)), 3),
            }
        )
    return rows
