"""Bone-age z-scores: the bundled Brush Foundation table, and user-supplied tables (TABLE's
values are made up for the tests, not a reference)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from matcher.analysis import AnalysisOptions
from matcher.bone_age_reference import BUNDLED_REFERENCE, BoneAgeReferenceError, bundled_reference, load_reference, z_score

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
    with pytest.raises(BoneAgeReferenceError, match=message):
        load_reference(path)


def test_cli_reports_the_z_score_and_refuses_a_bad_table(bone2gene, real_hands: list[Path], reference_file: Path, tmp_path: Path) -> None:
    ok = bone2gene("analyze", str(real_hands[1]), "--sex", "F", "--age-months", "100", "--json", "--ba-reference", str(reference_file))
    assert ok.returncode == 0, ok.stderr
    record = json.loads(ok.stdout.strip().splitlines()[-1])
    sd = load_reference(reference_file).sd_months("F", 100)
    assert record["bone_age_z"] == pytest.approx(record["bone_age_deviation_months"] / sd, abs=0.01)
    assert "test table" in record["bone_age_z_note"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    refused = bone2gene("analyze", str(real_hands[1]), "--ba-reference", str(bad))
    assert refused.returncode == 2 and "citation" in refused.stderr


def test_bundled_table_is_the_brush_foundation_table_and_the_default() -> None:
    """Spot values from Gaskin et al. 2011 Tables 1-2; the shape of the whole table is checked too."""
    table = load_reference(BUNDLED_REFERENCE)
    assert "Brush Foundation" in table.name and "Gaskin" in table.citation and "Greulich" in table.citation and table.provenance
    assert (table.boys[0][0], table.boys[-1][0], len(table.boys)) == (3, 204, 24)
    assert (table.girls[0][0], table.girls[-1][0], len(table.girls)) == (3, 192, 23)
    assert all(0.5 < sd < 14 for _, sd in table.boys + table.girls)
    assert table.sd_months("M", 120) == pytest.approx(9.79) and table.sd_months("F", 144) == pytest.approx(10.24)
    assert table.sd_months("M", 66) == pytest.approx((8.79 + 9.17) / 2)  # linear between 60 and 72 months
    assert AnalysisOptions().reference == table and bundled_reference() is bundled_reference()
    z, note = z_score(table, "M", 120, -2 * 9.79)
    assert z == pytest.approx(-2.0) and "Brush Foundation" in note and "Gaskin" in note
    for sex, age in (("F", 200), ("M", 2), ("M", 210)):  # beyond the table: never extrapolated
        z, note = z_score(table, sex, age, 5.0)
        assert z is None and "outside the range" in note


def test_cli_uses_the_bundled_table_by_default(bone2gene, real_hands: list[Path]) -> None:
    run = bone2gene("analyze", str(real_hands[1]), "--sex", "M", "--age-months", "150", "--json")
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout.strip().splitlines()[-1])
    sd = bundled_reference().sd_months("M", 150)
    assert record["bone_age_z"] == pytest.approx(record["bone_age_deviation_months"] / sd, abs=0.01)
    assert "Brush Foundation" in record["bone_age_z_note"]


def test_serve_refuses_a_bad_table_before_loading_anything(bone2gene, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nboys: [[1, 1], [2, 2]]\ngirls: [[1, 1], [2, 2]]\n")
    run = bone2gene("serve", "--gallery", str(tmp_path / "no-gallery"), "--ba-reference", str(bad))
    assert run.returncode == 2 and "citation" in run.stderr and not (tmp_path / "no-gallery").exists()
