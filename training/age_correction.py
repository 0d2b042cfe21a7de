"""A bone-age reader's linear correction for regression to the mean, fitted on films it is not reported on.

Why: a regressor pulls the ends of the age range toward the middle. The bundled reader reads
infants (0-36 months) about 20 months older and adolescents (over 180 months) about 8 months
younger on RSNA validation films (benchmarks/real.md). Deeplasia answers this with a linear bias
correction in its output (`AgeCalibration.slope`, `intercept`: months - (months * slope +
intercept)); this module fits one.

The fit regresses what the reader reads on the truth (read = a + b * truth, least squares) and
inverts it (corrected = (read - a) / b), so that the bias *at a given true age* is removed; that is
the bias a clinician sees in a band of children. Composed with the reader's existing correction,
it becomes the new (slope, intercept) of its calibration. Fit on films that are never reported
(RSNA's development ids, `training.real_data.is_dev_id`, or a site's own labelled films), then
measured on the validation films and the second site.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from matcher.deeplasia import AgeCalibration
from training.real_data import is_dev_id, read_labels


class AgeCorrectionError(ValueError):
    """Too few or too narrow films to fit a correction from."""


@dataclass(frozen=True)
class AgeCorrection:
    """read = intercept + slope * truth on the fitting films (months), and how many films."""

    slope: float
    intercept: float
    films: int

    def corrected(self, read_months: np.ndarray) -> np.ndarray:
        return (np.asarray(read_months, float) - self.intercept) / self.slope


def fit_age_correction(read_months: np.ndarray, true_months: np.ndarray, min_films: int = 50) -> AgeCorrection:
    """The least-squares line of the reading on the truth; refused below `min_films` or where the
    truths span less than five years (a line through one age band extrapolates badly)."""
    read, truth = np.asarray(read_months, float), np.asarray(true_months, float)
    keep = np.isfinite(read) & np.isfinite(truth)
    read, truth = read[keep], truth[keep]
    if len(read) < min_films:
        raise AgeCorrectionError(f"{len(read)} films with a bone age; a correction needs at least {min_films}")
    if np.ptp(truth) < 60:
        raise AgeCorrectionError(f"the films' bone ages span {np.ptp(truth):.0f} months; a correction needs at least 60")
    slope, intercept = np.polyfit(truth, read, 1)
    if slope <= 0.5:
        raise AgeCorrectionError(f"the reading follows the truth with slope {slope:.2f}; the reader is not fit to be corrected")
    return AgeCorrection(float(slope), float(intercept), len(read))


def corrected_calibration(calibration: AgeCalibration, correction: AgeCorrection) -> AgeCalibration:
    """`calibration` with `correction` applied after it: out = age * (1 - s) - i, corrected =
    (out - a) / b, so the new slope is 1 - (1 - s) / b and the new intercept (i + a) / b."""
    b, a = correction.slope, correction.intercept
    return replace(calibration, slope=1 - (1 - calibration.slope) / b, intercept=(calibration.intercept + a) / b)


def rsna_development_films(root: Path) -> pd.DataFrame:
    """RSNA's development films (`is_dev_id`: never reported) as `path, sex, bone_age_months`."""
    labels = read_labels(root)
    chosen = labels[is_dev_id(labels["id"].to_numpy())]
    return pd.DataFrame(
        {
            "path": [root / "images" / f"{i}.png" for i in chosen["id"]],
            "sex": np.where(chosen["male"].to_numpy(), "M", "F"),
            "bone_age_months": chosen["boneage"].to_numpy(float),
        }
    )


def read_films_table(path: Path) -> pd.DataFrame:
    """A site's labelled films: a CSV with `path` (relative to the CSV or absolute), `sex` (M/F) and
    `bone_age_months`; a missing column is refused by name."""
    table = pd.read_csv(path)
    missing = [c for c in ("path", "sex", "bone_age_months") if c not in table]
    if missing:
        raise AgeCorrectionError(f"{path} lacks the column(s) {', '.join(missing)}; it needs path, sex (M/F) and bone_age_months")
    table["path"] = [p if Path(p).is_absolute() else path.parent / p for p in table["path"]]
    return table


def read_bone_ages(model, paths: list[Path], sexes: list[str]) -> np.ndarray:
    """Each film's bone age (months) as `model` reads it with the sex given; NaN where the gate refuses it."""
    from matcher.batch import BatchItem, embed_many

    results = embed_many(model, [BatchItem(Path(p), str(s)) for p, s in zip(paths, sexes, strict=True)], batch_size=32)
    return np.array([r.bone_age_months if r.accepted else np.nan for r in results], float)


def calibrate_reader(reader_dir: Path, films: pd.DataFrame, out: Path, source: str) -> tuple[AgeCorrection, str]:
    """Read `films` (`path, sex, bone_age_months`) with the reader in `reader_dir`, fit the
    correction, and save the reader with it in `out` (the same weights; `source` names the films
    in its provenance). Returns the correction and the new directory's fingerprint."""
    from matcher.checkpoint import load_model, save_model

    model, card = load_model(reader_dir)
    if model.age_sex_reader is not None:
        raise AgeCorrectionError(f"{reader_dir} has a reader of its own: give the reader's directory ({reader_dir}/age_sex_reader)")
    read = read_bone_ages(model, list(films["path"]), list(films["sex"]))
    correction = fit_age_correction(read, films["bone_age_months"].to_numpy(float))
    model.config = replace(model.config, calibration=corrected_calibration(model.config.calibration, correction))
    record = {
        "source": source,
        "read_slope": round(correction.slope, 4),
        "read_intercept": round(correction.intercept, 2),
        "films": correction.films,
    }
    fingerprint = save_model(model, out, {**card.provenance, "age_correction": record})
    return correction, fingerprint
