"""Case manifests (DESIGN.md section 2), read with pandas and checked.

Two layouts are accepted:
- ours: `image, case_id, patient_id, sex, age_months, disorder, gene, bone_age_months, source, split`
  (`image` relative to the manifest), optionally `hpo` and `hpo_excluded` (HPO ids separated
  by `;`: observed in the patient, and looked for but absent);
- Deeplasia's annotation CSV: `image_ID, dir, patient_ID, sex, bone_age` (+ `chronological_age`,
  `disorder` where present), images at `<root>/<dir>/<image_ID>`.

The result is always ours, with an extra absolute `path` column. Errors name the column or
the rows that are wrong, and what to do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from matcher.errors import Bone2GeneError

REQUIRED = ("image", "case_id", "patient_id", "sex", "age_months")
DEEPLASIA = ("image_ID", "dir", "patient_ID", "sex", "bone_age")
TEXT_COLUMNS = {
    "case_id": str,
    "patient_id": str,
    "disorder": str,
    "gene": str,
    "sex": str,
    "source": str,
    "split": str,
    "image_ID": str,
    "dir": str,
    "patient_ID": str,
    "hpo": str,
    "hpo_excluded": str,
}


class ManifestError(Bone2GeneError, ValueError):
    """A manifest that cannot be used; the message says which column or row is wrong."""


def _from_deeplasia(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    if "chronological_age" not in table.columns:
        raise ManifestError(f"{path}: Deeplasia layout without a chronological_age column; add it (months) so cases can be compared by age")
    return pd.DataFrame(
        {
            "image": [str(Path(d) / i) for d, i in zip(table["dir"], table["image_ID"], strict=True)],
            "case_id": [str(Path(i).stem) for i in table["image_ID"]],
            "patient_id": table["patient_ID"],
            "sex": table["sex"],
            "age_months": table["chronological_age"],
            "disorder": table["disorder"] if "disorder" in table.columns else None,
            "gene": table["gene"] if "gene" in table.columns else None,
            "bone_age_months": table["bone_age"],
            "source": table["source"] if "source" in table.columns else "",
        }
    )


def read_case_manifest(path: Path, require_disorder: bool = False) -> pd.DataFrame:
    """The manifest in our layout with an absolute `path` per image."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"no manifest at {path}")
    try:
        table = pd.read_csv(path, dtype=TEXT_COLUMNS, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ManifestError(f"{path} is not a readable CSV file: {exc}") from exc
    if all(c in table.columns for c in DEEPLASIA) and "image" not in table.columns:
        table = _from_deeplasia(table, path)
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ManifestError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED)} (DESIGN.md section 2) "
            f"or Deeplasia's {', '.join(DEEPLASIA)}"
        )
    for column in ("disorder", "gene", "bone_age_months", "source", "split", "hpo", "hpo_excluded"):
        if column not in table.columns:
            table[column] = None
    table["sex"] = table["sex"].astype(str).str.strip().str.upper()
    bad_sex = ~table["sex"].isin(["M", "F"])
    if bad_sex.any():
        raise ManifestError(f"{path}: sex must be M or F; row(s) {_rows(bad_sex)} are not")
    ages = pd.to_numeric(table["age_months"], errors="coerce")
    bad_age = ages.isna() | (ages < 0) | (ages > 1200)
    if bad_age.any():
        raise ManifestError(f"{path}: age_months must be a number of months (0-1200); row(s) {_rows(bad_age)} are not")
    table["age_months"] = ages.astype(float)
    table["bone_age_months"] = pd.to_numeric(table["bone_age_months"], errors="coerce")
    if table["case_id"].isna().any():
        raise ManifestError(f"{path}: case_id is empty in row(s) {_rows(table['case_id'].isna())}")
    duplicated = table["case_id"].duplicated()
    if duplicated.any():
        raise ManifestError(f"{path}: case_id must be unique; {table['case_id'][duplicated].iloc[0]!r} repeats")
    if table["patient_id"].isna().any():
        raise ManifestError(f"{path}: patient_id is empty in row(s) {_rows(table['patient_id'].isna())}")
    if require_disorder and table["disorder"].isna().any():
        raise ManifestError(
            f"{path}: disorder is empty in row(s) {_rows(table['disorder'].isna())}; gallery cases need a confirmed diagnosis"
        )
    table["path"] = [str((path.parent / str(image)).resolve()) for image in table["image"]]
    table["source"] = table["source"].fillna("")
    return table.replace({np.nan: None})


def _rows(mask: pd.Series) -> str:
    rows = [int(i) + 2 for i in np.flatnonzero(mask.to_numpy())[:5]]  # +2: header line, 1-based
    return ", ".join(map(str, rows)) + (" ..." if int(mask.sum()) > 5 else "") + " (line numbers)"
