"""`bone2gene evaluate`: GestaltMatcher-Arc's four settings, the baselines and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matcher.rank import RankingRule
from training.protocol import metrics
from training.protocol.run import AS_REPORTED, POOLED, REPORTED
from training.protocol.scorers import EmbeddingScorer, RandomScorer, SoftmaxScorer, rank_setting
from training.protocol.splits import SETTINGS, disorder_groups, random_draws


def _cohort(clustered, rng: np.random.Generator, **settings) -> tuple[np.ndarray, pd.DataFrame]:
    cohort = clustered(rng, **{"visits": 2, **settings})
    return cohort.vectors, cohort.table


def test_draws_keep_patients_apart_and_every_query_disorder_in_its_gallery(clustered) -> None:
    _, table = _cohort(clustered, np.random.default_rng(0))
    table.loc[len(table)] = {"disorder": "lonely", "patient_id": "only-one", "sex": "F", "age_months": 50.0}
    groups = disorder_groups(table, trained_on=["d0", "d1", "d2", "d3"])
    assert groups.frequent == ("d0", "d1", "d2", "d3") and groups.rare == ("d4", "d5") and groups.unsplittable == ("lonely",)
    for draw in random_draws(table, groups, draws=4, seed=3):
        for setting in SETTINGS:
            gallery, queries = draw.setting(setting)
            assert len(gallery) and len(queries)
            assert not set(table.loc[gallery, "patient_id"]) & set(table.loc[queries, "patient_id"])
            assert set(table.loc[queries, "disorder"]) <= set(table.loc[gallery, "disorder"])
        assert set(table.loc[draw.rare_test, "disorder"]) == {"d4", "d5"}
        assert "lonely" not in set(table.loc[np.concatenate([draw.frequent_gallery, draw.rare_gallery]), "disorder"])
    first, second = random_draws(table, groups, draws=2, seed=3)
    assert not np.array_equal(first.frequent_gallery, second.frequent_gallery)  # draws differ


def test_scorers_separate_skill_from_chance_and_the_closed_set_classifier_cannot_name_new_disorders(clustered) -> None:
    rng = np.random.default_rng(1)
    vectors, table = _cohort(clustered, rng, disorders=8, patients=10)
    groups = disorder_groups(table, trained_on=[f"d{i}" for i in range(6)])
    draw = random_draws(table, groups, draws=1, seed=0)[0]
    disorders, patients = table["disorder"].to_numpy(), table["patient_id"].to_numpy()
    model = rank_setting(EmbeddingScorer(vectors, patients), disorders, *draw.setting("R->F+R"))
    assert metrics.topk(model.ranks, model.codes)["top1"] > 0.9
    chance = [rank_setting(RandomScorer(seed), disorders, *draw.setting("F->F+R")) for seed in range(30)]
    top1 = np.mean([metrics.topk(r.ranks, r.codes)["top1"] for r in chance])
    assert abs(top1 - 1 / 8) < 0.03  # k / disorders
    softmax = SoftmaxScorer(vectors, disorders, frozenset(groups.frequent))
    frequent = rank_setting(softmax, disorders, *draw.setting("F->F+R"))
    rare = rank_setting(softmax, disorders, *draw.setting("R->F+R"))
    assert metrics.topk(frequent.ranks, frequent.codes)["top1"] > 0.9
    assert (rare.ranks == 8).all()  # a rare disorder is never scored: last, whatever the query


def test_accuracy_calculator_agrees_with_the_nearest_case_rule(clustered) -> None:
    """pytorch-metric-learning's precision@1 is the nearest case's label being right: per case, it must
    equal the share of queries the nearest rule ranks first."""
    vectors, table = _cohort(clustered, np.random.default_rng(2), spread=1.2)  # overlapping: neither 0 nor 1
    groups = disorder_groups(table, trained_on=["d0", "d1", "d2"])
    draw = random_draws(table, groups, draws=1, seed=1)[0]
    gallery, queries = draw.setting("F->F+R")
    disorders = table["disorder"].to_numpy()
    ranked = rank_setting(EmbeddingScorer(vectors, table["patient_id"].to_numpy(), RankingRule.NEAREST), disorders, gallery, queries)
    cross = metrics.metric_learning_accuracy(vectors[queries], disorders[queries], vectors[gallery], disorders[gallery])
    assert 0.2 < cross["precision_at_1"] < 0.95
    assert cross["precision_at_1"] == pytest.approx(float(np.mean(ranked.ranks == 1)), abs=1e-6)


def test_probability_sex_and_bone_age_metrics() -> None:
    quality = metrics.probability_quality(np.array([0.9, 0.8, 0.2, 0.1]), np.array([True, True, False, False]))
    assert quality.auroc == 1.0 and sum(r["answers"] for r in quality.reliability) == 4
    assert metrics.probability_quality(np.array([0.1, 0.2, 0.8, 0.9]), np.array([True, True, False, False])).auroc == 0.0
    sex = metrics.sex_quality(np.array(["M", "F", "M", "F"]), np.array([0.9, 0.4, 0.3, 0.1]))
    assert sex["accuracy"] == 0.75 and sex["auroc"] == 0.75  # 3 of the 4 male-female pairs ordered right
    table = pd.DataFrame({"disorder": ["a", "a", "b", None], "bone_age_months": [100, 110, 50, np.nan]})
    mad = metrics.bone_age_by_disorder(table, np.array([104.0, 104.0, 60.0, 70.0])).set_index("disorder")["mad_months"]
    assert mad["a"] == 5.0 and mad["b"] == 10.0 and mad["all"] == pytest.approx(20 / 3)
    bands = metrics.topk_by_age_band(np.array([1, 9, 1, 1]), np.array(["a", "a", "b", "b"]), np.array([10.0, 20.0, 100.0, 200.0]))
    assert bands == {"under 3 y": (0.5, 2), "8-13 y": (1.0, 1), "over 13 y": (1.0, 1)}


@pytest.fixture(scope="module")
def small_manifest(embedded_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """36 films of the session cohort: four disorders the bundled model knows, two it never saw."""
    cohort = embedded_cohort.parent / "cohort"
    table = pd.read_csv(cohort / "manifest.csv")
    keep = ["unaffected", "achondroplasia", "brachydactyly_e", "cleidocranial_dysplasia", "trps1", "ellis_van_creveld"]
    table = table[table["disorder"].isin(keep)].groupby("disorder").head(6)
    table["image"] = [str(cohort / p) for p in table["image"]]
    path = tmp_path_factory.mktemp("evaluate") / "manifest.csv"
    table.to_csv(path, index=False)
    return path


def test_evaluate_command_writes_a_report_of_every_method_in_every_setting(bone2gene, small_manifest: Path, tmp_path: Path) -> None:
    from matcher.checkpoint import BUNDLED_MODEL_DIR

    out = tmp_path / "report"
    run = bone2gene(
        "evaluate",
        "--model",
        BUNDLED_MODEL_DIR,
        "--manifest",
        small_manifest,
        "--out",
        out,
        "--features-model",
        BUNDLED_MODEL_DIR,
        "--draws",
        "2",
    )
    assert run.returncode == 0, run.stderr
    data = json.loads((out / "evaluation.json").read_text())
    methods = {
        "model",
        "model, nearest rule",
        "model, multi-image",
        "untrained encoder",
        "bone-age features",
        "softmax classifier",
        "pixel thumbnails",
        "random ranking",
    }
    assert set(data["topk"]) == methods
    assert all(set(data["topk"][m]) == set(SETTINGS) for m in methods)
    assert data["groups"]["rare"] == ["ellis_van_creveld", "trps1"] and len(data["groups"]["frequent"]) == 4
    mean = lambda method, setting: float(np.mean(data["topk"][method][setting]["top1"]))  # noqa: E731
    assert mean("model", "F->F") > mean("untrained encoder", "F->F") and mean("model", "F->F") > 0.5
    assert mean("softmax classifier", "R->F+R") == 0.0  # closed set: cannot name what it was not trained on
    assert set(data["accuracy_calculator"]["model"]["F->F+R"]) == {"precision_at_1", "map_at_r"}
    probabilities = data["probabilities"]["F->F+R"]
    assert probabilities["answers"] > 0 and sum(row["answers"] for row in probabilities["reliability"]) == probabilities["answers"]
    assert probabilities["auroc"] is None or 0.0 <= probabilities["auroc"] <= 1.0  # null (strict JSON) when every answer was right
    assert 0.0 <= data["no_match"]["fires_when_absent"] <= 1.0
    # the probability as reported (times P(in gallery) <= 1) is never confident where the conditional one is not
    assert 0.0 <= data["no_match"]["confident_when_absent_reported"] <= data["no_match"]["confident_when_absent"] <= 1.0
    assert set(data["probabilities"]) >= {"F->F+R", "R->F+R", POOLED, REPORTED, f"R->F+R, {AS_REPORTED}"}
    reported, given = data["probabilities"][f"R->F+R, {AS_REPORTED}"], data["probabilities"]["R->F+R"]
    assert reported["answers"] == given["answers"]  # the same answers, their probability times P(in gallery)
    assert {row["disorder"] for row in data["bone_age"]} >= {"achondroplasia", "all"}
    model_mad = next(row["mad_months"] for row in data["bone_age"] if row["disorder"] == "all")
    assert data["features_model_bone_age_mad"] == pytest.approx(model_mad, abs=1e-3)  # the same model as its own baseline
    report = (out / "report.md").read_text()
    assert "### R->F+R" in report and "bone2gene evaluate" in report and (out / "cmc.png").stat().st_size > 1000
    assert (out / "similarities.png").is_file()
    saved = np.load(out / "embeddings.npz")
    assert saved["embedding"].shape == (data["films"], 256) and len(set(saved["case_id"])) == data["films"]
    assert f"{data['films']} films" in run.stdout


def test_evaluate_refuses_bad_input_with_a_reason(bone2gene, tmp_path: Path, small_manifest: Path) -> None:
    from matcher.checkpoint import BUNDLED_MODEL_DIR

    missing = bone2gene("evaluate", "--model", tmp_path / "nope", "--manifest", small_manifest, "--out", tmp_path / "o")
    assert missing.returncode == 2 and "--model" in missing.stderr and "does not exist" in missing.stderr
    broken = tmp_path / "broken.csv"
    broken.write_text("image,case_id\nx.png,1\n")
    bad = bone2gene("evaluate", "--model", BUNDLED_MODEL_DIR, "--manifest", broken, "--out", tmp_path / "o")
    assert bad.returncode == 2 and "missing column" in bad.stderr
    lonely = tmp_path / "lonely.csv"
    pd.read_csv(small_manifest).groupby("disorder").head(1).to_csv(lonely, index=False)
    nothing = bone2gene("evaluate", "--model", BUNDLED_MODEL_DIR, "--manifest", lonely, "--out", tmp_path / "o")
    assert nothing.returncode == 2 and "two or more patients" in nothing.stderr
    unknown = bone2gene("evaluate", "--suite", "real", "--model", BUNDLED_MODEL_DIR, "--renderer", "oil", "--out", tmp_path / "o")
    assert unknown.returncode == 2 and "classic, film" in unknown.stderr
    assert not (tmp_path / "o").exists()


def test_multi_image_queries_combine_a_patients_films_and_gain_where_films_are_noisy(clustered) -> None:
    from matcher.multi_image import combined_by_patient, combined_embedding
    from training.protocol.scorers import PatientScorer

    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert np.allclose(combined_embedding(np.stack([a, b])), np.array([1, 1]) / np.sqrt(2))
    assert np.allclose(combined_embedding(np.stack([a, -a])), a)  # cancelling films: the first one stands
    ids, vectors, first = combined_by_patient(np.stack([a, b, a]), ["p2", "p1", "p2"])
    assert list(ids) == ["p2", "p1"] and list(first) == [0, 1] and np.allclose(vectors[0], a)

    vectors, table = _cohort(clustered, np.random.default_rng(4), disorders=8, patients=12, visits=3, spread=1.6)
    groups = disorder_groups(table, trained_on=[f"d{i}" for i in range(8)])
    disorders, patients = table["disorder"].to_numpy(), table["patient_id"].to_numpy()
    single, multi = [], []
    for draw in random_draws(table, groups, draws=4, seed=2):
        gallery, queries = draw.setting("F->F")
        one_per_patient = queries[np.unique(patients[queries], return_index=True)[1]]
        film = rank_setting(EmbeddingScorer(vectors, patients), disorders, gallery, queries)
        patient = rank_setting(PatientScorer(vectors, patients, disorders), disorders, gallery, one_per_patient)
        assert len(patient.queries) == len(set(patients[queries]))
        single.append(metrics.topk(film.ranks, film.codes)["top1"])
        multi.append(metrics.topk(patient.ranks, patient.codes)["top1"])
    assert np.mean(multi) > np.mean(single) + 0.1  # three noisy films of a patient say more than one


@pytest.mark.parametrize(
    ("suite", "extra", "message"),
    [
        ("protocol", [], "the protocol suite needs --manifest"),
        ("unseen", [], "the unseen suite needs --manifest"),
        ("real", [], "the real suite needs --real-films"),
        ("evidence", [], "the evidence suite needs --fit-manifest"),
        ("space", [], "the space suite needs --manifest"),
        ("landmarks", [], "the landmarks suite needs --real-films"),
    ],
)
def test_each_suite_says_what_it_needs_before_reading_anything(bone2gene, tmp_path: Path, suite: str, extra: list, message: str) -> None:
    from matcher.checkpoint import BUNDLED_MODEL_DIR

    result = bone2gene("evaluate", "--suite", suite, "--model", BUNDLED_MODEL_DIR, "--out", tmp_path / "report", *extra)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "report").exists()
