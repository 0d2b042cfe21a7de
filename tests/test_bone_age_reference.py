"""Bone-age z-scores against a user-supplied SD table (the values here are test values, not a reference)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from matcher.bone_age_reference import ReferenceError, load_reference, z_score

TABLE = """\
name: test table
citation: made up for tests
boys: [[24, 4.0], [120, 10.0]]
girls: [[24, 5.0], [120, 12.0]]
"""


@pytest.fixture()
def reference_file(tmp_path: Path) -> Path:
    path = tmp_path / "ref.yaml"
    path.write_text(TABLE)
    return path


def test_sd_is_interpolated_by_sex_and_never_extrapolated(reference_file: Path) -> None:
    ref = load_reference(reference_file)
    assert ref.sd_months("M", 72) == pytest.approx(7.0)
    assert ref.sd_months("F", 72) == pytest.approx(8.5)
    z, note = z_score(ref, "M", 72, -14.0)
    assert z == pytest.approx(-2.0) and "test table" in note and "made up for tests" in note
    z, note = z_score(ref, "F", 200, 5.0)
    assert z is None and "outside the range" in note
    z, note = z_score(None, "F", 100, 5.0)
    assert z is None and "no bone-age SD reference" in note


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (TABLE.replace("[[24, 4.0], [120, 10.0]]", "[[120, 4.0], [24, 10.0]]"), "ascending"),
        (TABLE.replace("[[24, 5.0], [120, 12.0]]", "[[24, -5.0], [120, 12.0]]"), "SDs > 0"),
        (TABLE.replace("citation: made up for tests\n", ""), "citation"),
        ("just a string", "expected a mapping"),
        ("boys: [unclosed", "cannot read"),
    ],
)
def test_bad_tables_are_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ReferenceError, match=message):
        load_reference(path)


def test_cli_reports_the_z_score_and_refuses_a_bad_table(cli: list[str], real_hands: list[Path], reference_file: Path, tmp_path: Path) -> None:
    ok = subprocess.run([*cli, "analyze", str(real_hands[1]), "--sex", "F", "--age-months", "100", "--json",
                         "--ba-reference", str(reference_file)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    record = json.loads(ok.stdout.strip().splitlines()[-1])
    sd = load_reference(reference_file).sd_months("F", 100)
    assert record["bone_age_z"] == pytest.approx(record["bone_age_deviation_months"] / sd, abs=0.01)
    assert "test table" in record["bone_age_z_note"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    refused = subprocess.run([*cli, "analyze", str(real_hands[1]), "--ba-reference", str(bad)], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "citation" in refused.stderr
