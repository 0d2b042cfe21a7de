"""Unseen syndromes added to a gallery are ranked at once (GestaltMatcher's rare setting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from index.store import Gallery
from matcher.checkpoint import BUNDLED_MODEL_DIR, read_card
from training.protocol.unseen import new_syndrome_experiment, per_disorder, summarise, unseen_disorders


def synthetic_table(clustered, rng: np.random.Generator, spread: float = 0.5) -> tuple[np.ndarray, pd.DataFrame]:
    cohort = clustered(rng, disorders=8, patients=10, visits=2, dim=32, spread=spread)
    return cohort.vectors, cohort.table


def test_experiment_never_queries_gallery_patients_and_finds_separable_syndromes(clustered) -> None:
    vectors, table = synthetic_table(clustered, np.random.default_rng(0))
    results = new_syndrome_experiment(vectors, table, rare=("d6", "d7"), n_added=(1, 5), draws=3, seed=1)
    assert set(results["setting"]) == {"rare (R -> F+R)", "frequent (F -> F+R)"}
    rare = results[results["setting"].str.startswith("rare")]
    # 10 patients x 2 visits per rare disorder; n patients added, the others' cases are queries
    per_draw = rare.groupby(["draw", "n_added", "disorder"]).size()
    assert set(per_draw.xs(1, level="n_added")) == {18} and set(per_draw.xs(5, level="n_added")) == {10}
    assert rare["rank"].min() == 1 and (rare["disorders_in_gallery"] == 8).all()
    summary = summarise(results).set_index(["setting", "cases added per unseen disorder"])
    top1 = float(summary.loc[("rare (R -> F+R)", 5), "top-1"].split(" ")[0])
    assert top1 > 90.0  # tight, well separated clusters are found from 5 examples


def test_noise_embeddings_stay_at_chance(clustered) -> None:
    rng = np.random.default_rng(3)
    vectors, table = synthetic_table(clustered, rng, spread=50.0)  # clusters drowned in noise
    summary = summarise(new_syndrome_experiment(vectors, table, rare=("d6", "d7"), n_added=(5,), draws=3, seed=2))
    top1 = float(summary.set_index("setting").loc["rare (R -> F+R)", "top-1"].split(" ")[0])
    assert top1 < 40.0  # random expectation 12.5 %: the experiment does not flatter an uninformative space


def test_a_disorder_the_model_never_trained_on_is_unseen_whether_listed_or_new() -> None:
    """A new syndrome's spec (absent from the model's labels) is unseen as much as a held-out one."""
    assert unseen_disorders({"a", "b", "new_one"}, ["b"], {"a", "unaffected"}) == ["b", "new_one"]
    assert unseen_disorders({"a", "b"}, ["b"], set()) == ["b"]  # a model that names no labels: only those listed


def test_each_unseen_disorder_gets_its_own_row(clustered) -> None:
    vectors, table = synthetic_table(clustered, np.random.default_rng(4))
    rows = per_disorder(new_syndrome_experiment(vectors, table, rare=("d6", "d7"), n_added=(3,), draws=2, seed=1), 3)
    assert list(rows["disorder"]) == ["d6", "d7"] and set(rows.columns) == {"disorder", "queries per draw", "top-1", "top-5"}
    assert (rows["queries per draw"] == 14).all()  # 10 patients x 2 visits, 3 patients added


def test_bundled_model_finds_unseen_syndromes_better_than_chance(embedded_cohort: Path) -> None:
    """On the session's cohort embedded with the bundled model (`embedded_cohort`), which holds two
    disorders the model never saw in training."""
    card = read_card(BUNDLED_MODEL_DIR)
    rare = tuple(card.provenance["held_out_disorders"])[:2]  # trps1, ellis_van_creveld
    with Gallery.open(embedded_cohort) as gallery:
        table = gallery.cases().reset_index(drop=True)
        vectors = gallery.vectors_of(table["row"].tolist())
    assert set(rare) <= set(table["disorder"]) and (table.groupby("disorder")["patient_id"].nunique() >= 5).all()
    summary = summarise(new_syndrome_experiment(vectors, table, rare, n_added=(3,), draws=3, seed=5)).set_index("setting")
    top1 = float(summary.loc["rare (R -> F+R)", "top-1"].split(" ")[0])
    random_top1 = float(summary.loc["rare (R -> F+R)", "random top-1"])
    assert top1 > 2 * random_top1, summary.to_string()


def test_the_unseen_suite_reports_the_models_held_out_disorders_from_the_command_line(bone2gene, render_cohort, tmp_path: Path) -> None:
    import json

    from api.cli_evaluate import SuiteName
    from training.protocol.suites import SUITES

    assert {s.value for s in SuiteName} == set(SUITES)  # the CLI's choices are the registry's
    cohort, _ = render_cohort(n=30, seed=3, size=256, disorders=("unaffected", "achondroplasia", "trps1"))
    args = ["--model", BUNDLED_MODEL_DIR, "--manifest", cohort / "manifest.csv", "--draws", "2", "--seed", "1"]
    result = bone2gene("evaluate", "--suite", "unseen", *args, "--out", tmp_path / "unseen.md")
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "unseen.md").read_text()
    assert "Unseen in training: trps1." in report and "Command: `bone2gene evaluate --suite unseen" in report
    assert "## model, density rule, each unseen disorder with 3 cases added" in report
    assert "## model, density rule (default)" in report and "## untrained encoder (baseline), nearest case (GestaltMatcher)" in report
    numbers = json.loads((tmp_path / "unseen.json").read_text())
    rows = numbers["sections"]["model, density rule (default)"]
    assert numbers["held_out"] == ["trps1"] and {r["cases added per unseen disorder"] for r in rows} == {1, 3, 5}

    seen, _ = render_cohort(n=12, seed=3, size=256, disorders=("unaffected", "achondroplasia"))
    refused = bone2gene("evaluate", "--suite", "unseen", *args[:2], "--manifest", seen / "manifest.csv", "--out", tmp_path / "x.md")
    assert refused.returncode == 2 and "none of" in refused.stderr and "held out" in refused.stderr
    assert not (tmp_path / "x.md").exists()


def test_the_space_suite_scores_a_model_beside_another_from_the_command_line(bone2gene, render_cohort, tmp_path: Path) -> None:
    """The same films, the bundled model and (as its baseline) a copy of it: two rows, the same numbers."""
    import json
    import shutil

    cohort, _ = render_cohort(n=40, seed=4, size=256, disorders=("unaffected", "achondroplasia", "trps1"))  # calibration needs >= 10 pairs
    copy = Path(shutil.copytree(BUNDLED_MODEL_DIR, tmp_path / "copy"))
    args = ["--suite", "space", "--model", BUNDLED_MODEL_DIR, "--baseline-model", copy, "--draws", "2"]
    result = bone2gene("evaluate", *args, "--manifest", cohort / "manifest.csv", "--out", tmp_path / "space.md")
    assert result.returncode == 0, result.stderr
    report, numbers = (tmp_path / "space.md").read_text(), json.loads((tmp_path / "space.json").read_text())
    assert "Command: `bone2gene evaluate --suite space" in report and "| model | F->F+R top-1 |" in report
    mine, baseline = numbers["rows"].values()
    assert mine == baseline and mine["frequent"] == 2 and mine["accepted"] >= 35
    assert mine["frequent_top1"] > 0.5 and mine["same_disorder_cosine"] > mine["other_disorder_cosine"]  # unaffected vs achondroplasia

    seen, _ = render_cohort(n=12, seed=3, size=256, disorders=("unaffected", "achondroplasia"))
    refused = bone2gene("evaluate", *args[:4], "--manifest", seen / "manifest.csv", "--out", tmp_path / "x.md")
    assert refused.returncode == 2 and "and of others (held out)" in refused.stderr and not (tmp_path / "x.md").exists()
