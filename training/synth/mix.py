"""One training manifest from several cohorts (phantoms of either renderer, warped real hands).

The metric trainer reads one manifest; a training mix is several cohorts, each written by its own
command into its own folder. The combined manifest points into those folders (image and mask
paths rewritten relative to the new manifest, nothing copied), keeps every column of every part
(empty where a part lacks it) and names the part each row came from (`cohort`).

Every generator numbers its cases and patients from zero, so ids are made unique by the part's
folder name ("film3000/syn-000001"). The exception is a patient derived from a real film
(`derived_from`): the same real hand in two parts is one patient, and keeps one id so that a
patient-level split puts all its versions on one side.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from matcher.errors import Bone2GeneError

PATH_COLUMNS = ("image", "mask")


class MixError(Bone2GeneError, ValueError):
    """Cohorts that cannot be combined into one training manifest, saying which and why."""

    title = "Cannot combine the cohorts"


def _relocated(paths: pd.Series, source: Path, target: Path) -> pd.Series:
    """Paths relative to `source`'s folder, rewritten relative to `target`'s (empty stays empty)."""

    def move(value: object) -> object:
        if not isinstance(value, str) or not value:
            return value
        return os.path.relpath((source / value).resolve(), target.resolve())

    return paths.map(move)


def _read_part(manifest: Path, out: Path) -> pd.DataFrame:
    if not manifest.is_file():
        raise MixError(f"{manifest} is not a manifest file; give each cohort's manifest.csv (made by `bone2gene synth` or `synth-warped`)")
    table = pd.read_csv(manifest, keep_default_na=False, dtype={"patient_id": str, "case_id": str})
    missing = [c for c in ("image", "case_id", "patient_id", "disorder") if c not in table.columns]
    if missing:
        raise MixError(f"{manifest} lacks the column(s) {', '.join(missing)}: it is not a cohort manifest")
    for column in PATH_COLUMNS:
        if column in table.columns:
            table[column] = _relocated(table[column], manifest.parent, out)
    name = manifest.parent.name
    real = table["derived_from"].astype(str).ne("") if "derived_from" in table.columns else pd.Series(False, index=table.index)
    table["case_id"] = name + "/" + table["case_id"].astype(str)
    table["patient_id"] = table["patient_id"].astype(str).where(real, name + "/" + table["patient_id"].astype(str))
    table.insert(0, "cohort", name)
    return table


def combine_manifests(parts: list[Path], out: Path) -> pd.DataFrame:
    """Write `out/manifest.csv` from the cohorts' manifests `parts`; returns it."""
    if len(parts) < 2:
        raise MixError("give two or more cohort manifests to combine")
    target = out / "manifest.csv"
    if target.exists():
        raise MixError(f"{target} exists; choose a new folder")
    names = [p.parent.name for p in parts]
    if len(set(names)) < len(names):
        raise MixError(f"two cohorts lie in folders of the same name ({', '.join(names)}); the folder name tells the parts apart")
    tables = [_read_part(p, out) for p in parts]
    combined = pd.concat(tables, ignore_index=True, sort=False).fillna("")
    out.mkdir(parents=True, exist_ok=True)
    combined.to_csv(target, index=False)
    return combined
