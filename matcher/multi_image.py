"""Several radiographs of one patient as one query (follow-up visits, both hands).

GestaltMatcher's multi-image setting: the unit embeddings of a patient's films are averaged
and scaled back to unit length, so the patient is one point in the space, closer to what
the films share (the disorder) than to what each adds (age, position, exposure).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def combined_embedding(vectors: np.ndarray) -> np.ndarray:
    """One unit vector for several unit vectors (rows) of the same patient."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    if not len(vectors):
        raise ValueError("no embeddings to combine")
    mean = vectors.mean(axis=0)
    norm = np.linalg.norm(mean)
    if norm < 1e-9:  # opposite films cancel: nothing shared to match on, keep the first
        return vectors[0].astype(np.float32)
    return (mean / norm).astype(np.float32)


def combined_by_patient(vectors: np.ndarray, patients: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(patient ids, one combined unit vector per patient, the first row of each patient), in order of first appearance."""
    patients = np.asarray(patients).astype(str)
    unique, first = np.unique(patients, return_index=True)
    order = np.argsort(first)
    unique, first = unique[order], first[order]
    combined = (
        np.stack([combined_embedding(vectors[patients == p]) for p in unique])
        if len(unique)
        else np.zeros((0, vectors.shape[1]), np.float32)
    )
    return unique, combined, first
