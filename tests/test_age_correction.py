"""The reader's linear correction for regression to the mean (training.age_correction)."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.deeplasia import DEEPLASIA_AGE_SCALE, AgeCalibration
from training.age_correction import AgeCorrectionError, corrected_calibration, fit_age_correction
from training.age_error import errors_by_age_band


def _shrunk_reads(rng: np.random.Generator, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """A reader that pulls every age 20% toward 127 months, with 8 months of noise."""
    truth = rng.uniform(6, 228, n)
    return 127 + 0.8 * (truth - 127) + rng.normal(0, 8, n), truth


def test_the_correction_removes_the_bias_in_every_band_of_new_films() -> None:
    rng = np.random.default_rng(0)
    correction = fit_age_correction(*_shrunk_reads(rng))
    assert correction.slope == pytest.approx(0.8, abs=0.03) and correction.films == 600
    read, truth = _shrunk_reads(rng)  # other films than it was fitted on
    before = errors_by_age_band(read, truth)
    after = errors_by_age_band(correction.corrected(read), truth)
    assert max(abs(b.bias) for b in before) > 15  # the ends pulled toward the middle
    assert max(abs(b.bias) for b in after) < 3


def test_composed_into_a_calibration_it_reads_as_applied_after_it() -> None:
    rng = np.random.default_rng(1)
    correction = fit_age_correction(*_shrunk_reads(rng))
    for base in (DEEPLASIA_AGE_SCALE, AgeCalibration(120.0, 40.0, slope=0.05, intercept=-3.0)):
        raw = rng.normal(0, 1, 50)
        assert np.allclose(corrected_calibration(base, correction).months(raw), correction.corrected(base.months(raw)))


def test_too_few_or_too_narrow_films_are_refused_with_the_reason() -> None:
    rng = np.random.default_rng(2)
    read, truth = _shrunk_reads(rng, 30)
    with pytest.raises(AgeCorrectionError, match="30 films with a bone age; a correction needs at least 50"):
        fit_age_correction(read, truth)
    with pytest.raises(AgeCorrectionError, match="span 24 months"):
        fit_age_correction(rng.normal(100, 5, 200), np.linspace(100, 124, 200))
    with pytest.raises(AgeCorrectionError, match="not fit to be corrected"):
        fit_age_correction(rng.normal(127, 5, 200), np.linspace(0, 200, 200))


def test_calibrate_age_writes_a_corrected_reader_and_refuses_bad_input(tmp_path, rsna_100px) -> None:
    """On 60 RSNA development films (never reported): the reader's weights unchanged, its
    calibration corrected, its provenance naming the films; the reader it came from untouched."""
    import pandas as pd
    from typer.testing import CliRunner

    from api.cli import app
    from matcher.checkpoint import AGE_SEX_READER_DIR, BUNDLED_MODEL_DIR, load_model, read_card
    from training.age_correction import rsna_development_films

    films = rsna_development_films(rsna_100px).sort_values("bone_age_months").iloc[::10].head(60)
    films.to_csv(tmp_path / "films.csv", index=False)
    reader = BUNDLED_MODEL_DIR / AGE_SEX_READER_DIR
    before = read_card(reader)
    runner = CliRunner()
    result = runner.invoke(
        app, ["model", "calibrate-age", str(reader), "--films", str(tmp_path / "films.csv"), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    corrected, card = load_model(tmp_path / "r")
    original, _ = load_model(reader)
    fitted = card.provenance["age_correction"]["films"]  # the films the gate accepted
    assert 50 <= fitted <= 60 and f"on {fitted} films" in result.output
    assert card.provenance["age_correction"]["source"].endswith("films.csv")
    assert card.config.calibration != before.config.calibration
    assert all(torch_equal(a, b) for a, b in zip(corrected.state_dict().values(), original.state_dict().values(), strict=True))
    assert read_card(reader).fingerprint == before.fingerprint

    for args, message in (
        (["--out", str(tmp_path / "x")], "one of them"),
        (["--films", str(tmp_path / "films.csv"), "--out", str(tmp_path / "r")], "already exists"),
    ):
        refused = runner.invoke(app, ["model", "calibrate-age", str(reader), *args])
        assert refused.exit_code != 0 and message in refused.output
    pd.DataFrame({"path": ["a.png"]}).to_csv(tmp_path / "bad.csv", index=False)
    bad = runner.invoke(app, ["model", "calibrate-age", str(reader), "--films", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "y")])
    assert bad.exit_code != 0 and "sex, bone_age_months" in bad.output


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a.float(), b.float())
