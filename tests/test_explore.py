"""Cohort maps and statistics on the session's synthetic cohort embedded with the bundled model (`embedded_cohort`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from index.cohort_stats import compare, neighbour_purity, tightness
from index.explore import MapError, cohort_map, map_table
from index.filters import FilterError, Filters
from index.store import Gallery


@pytest.fixture(scope="module")
def gallery(embedded_cohort: Path) -> Gallery:
    return Gallery.open(embedded_cohort)


def vectors(gallery: Gallery, filters: Filters | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    table = gallery.cases(filters)
    return gallery.vectors_of(table["row"].tolist()), table


def test_strong_phenotype_is_tighter_than_random(gallery: Gallery) -> None:
    cohort, _ = vectors(gallery, Filters(disorders=("achondroplasia",)))
    everything, _ = vectors(gallery)
    result = tightness(cohort, everything, permutations=500, seed=1)
    assert result.p_value < 0.01 and result.observed < result.random_mean


def test_random_control_subsets_are_not_tighter_than_controls(gallery: Gallery) -> None:
    controls, _ = vectors(gallery, Filters(disorders=("unaffected",)))
    rng = np.random.default_rng(0)
    p_values = [
        tightness(controls[rng.choice(len(controls), 10, replace=False)], controls, permutations=200, seed=s).p_value for s in range(10)
    ]
    assert np.median(p_values) > 0.05 and sum(p < 0.05 for p in p_values) <= 2, p_values


def test_distinct_disorders_separate_and_same_disorder_halves_do_not(gallery: Gallery) -> None:
    a, ta = vectors(gallery, Filters(disorders=("achondroplasia",)))
    b, tb = vectors(gallery, Filters(disorders=("cleidocranial_dysplasia",)))
    different = compare(a, b, ta["patient_id"].tolist(), tb["patient_id"].tolist(), permutations=40, seed=0)
    assert different.auc > 0.85 and different.auc_p_value < 0.05 and different.between > max(different.within_a, different.within_b)
    controls, tc = vectors(gallery, Filters(disorders=("unaffected",)))
    patients = tc["patient_id"].unique()
    half = set(np.random.default_rng(3).choice(patients, len(patients) // 2, replace=False))
    first = tc["patient_id"].isin(half).to_numpy()
    same = compare(
        controls[first], controls[~first], tc["patient_id"][first].tolist(), tc["patient_id"][~first].tolist(), permutations=40, seed=0
    )
    assert same.auc_p_value > 0.05 and same.auc < 0.8


def test_purity_is_a_share_per_disorder(gallery: Gallery) -> None:
    v, table = vectors(gallery)
    purity = neighbour_purity(v, table["disorder"].astype(str).tolist(), table["patient_id"].astype(str).tolist())
    assert set(purity) == set(table["disorder"]) and all(0 <= p <= 1 for p in purity.values())
    assert np.mean(list(purity.values())) > 1 / len(purity)  # better than chance


def test_map_is_cached_places_queries_near_their_disorder_and_refits_after_changes(gallery: Gallery) -> None:
    first = cohort_map(gallery)
    again = cohort_map(gallery)
    assert np.array_equal(first.coords, again.coords) and first.key == again.key
    table = map_table(gallery, first)
    assert len(table) == len(gallery.cases()) and {"x", "y", "bone_age_deviation_months"} <= set(table.columns)
    # a case placed with transform lands among the cases of its own disorder
    v, _cases = vectors(gallery, Filters(disorders=("achondroplasia",)))
    placed = first.place(v[:5])
    coords = table[["x", "y"]].to_numpy()
    hits = 0
    for point in placed:
        nearest = np.argsort(np.linalg.norm(coords - point, axis=1))[:5]
        hits += (table["disorder"].to_numpy()[nearest] == "achondroplasia").mean() > 0.5
    assert hits >= 4
    subset = cohort_map(gallery, Filters.parse("disorder=achondroplasia,unaffected;sex=F"))
    assert subset.key != first.key and set(map_table(gallery, subset)["sex"]) == {"F"}
    with pytest.raises(MapError, match="at least"):
        cohort_map(gallery, Filters.parse("disorder=achondroplasia;age=0-1"))
    with pytest.raises(FilterError, match="unknown filter key"):
        Filters.parse("colour=red")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sex=X", "sex must be M or F, not 'X'"),
        ("age=120-60", "the age range is empty"),
        ("age=old", "a range in months"),
        ("disorder", "key=value"),
        ("age=-5-10", "a range in months"),
    ],
)
def test_one_filter_model_checks_every_syntax(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        Filters.parse(text)
    parsed = Filters.parse("disorder=a, b;gene=fgfr3;sex=f;age=60-120;source=site-a")
    assert parsed == Filters(sex="F", age_min_months=60, age_max_months=120, source="site-a", disorders=("a", "b"), genes=("FGFR3",))
    assert Filters.from_dict(parsed.to_dict()) == parsed and not Filters().active() and Filters.from_dict({}) is None


def test_cli_writes_html_png_and_report(bone2gene, gallery: Gallery, tmp_path: Path) -> None:
    html, png = tmp_path / "map.html", tmp_path / "map.png"
    result = bone2gene(
        "explore", "umap", "--gallery", str(gallery.path), "-o", str(html), "-o", str(png), "--colour", "disorder", "--thumbnails"
    )
    assert result.returncode == 0, result.stderr
    document = html.read_text()
    assert "http://" not in document.split("<script>")[1] and "https://" not in document  # works offline
    payload = json.loads(document.split("const D=")[1].split(";const P=")[0])
    assert len(payload["points"]["x"]) == len(gallery.cases()) and payload["thumbs"]
    assert png.read_bytes()[:4] == b"\x89PNG"
    report = tmp_path / "report.md"
    result = bone2gene(
        "explore",
        "compare",
        "--gallery",
        str(gallery.path),
        "--a",
        "disorder=achondroplasia",
        "--b",
        "disorder=cleidocranial_dysplasia",
        "-o",
        str(report),
        "--permutations",
        "30",
    )
    assert result.returncode == 0, result.stderr
    text = report.read_text()
    assert (
        "AUC" in text
        and "tighter" in text
        and (tmp_path / "report_distances.png").is_file()
        and (tmp_path / "report_heatmap.png").is_file()
    )
    bad = bone2gene("explore", "umap", "--gallery", str(gallery.path), "-o", str(tmp_path / "x.html"), "--where", "sex=X")
    assert bad.returncode == 2 and "sex must be M or F" in bad.stderr
