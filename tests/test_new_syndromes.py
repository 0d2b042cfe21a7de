"""Unseen syndromes added to a gallery are ranked at once (GestaltMatcher's rare setting)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from index.evaluation import new_syndrome_experiment, summarise
from matcher.batch import BatchItem, embed_many
from matcher.checkpoint import BUNDLED_MODEL_DIR, load_model
from training.synth.cohort import CohortConfig, generate_cohort


def synthetic_table(rng: np.random.Generator, disorders: int = 8, patients_per: int = 10, dim: int = 32, spread: float = 0.5):
    centres = rng.normal(size=(disorders, dim))
    rows, vectors = [], []
    for d in range(disorders):
        for p in range(patients_per):
            for visit in range(2):
                v = centres[d] + spread * rng.normal(size=dim)
                vectors.append(v / np.linalg.norm(v))
                rows.append({"disorder": f"d{d}", "patient_id": f"d{d}-p{p}", "sex": "MF"[p % 2], "age_months": 24.0 + 12 * visit})
    return np.array(vectors, np.float32), pd.DataFrame(rows)


def test_experiment_never_queries_gallery_patients_and_finds_separable_syndromes() -> None:
    vectors, table = synthetic_table(np.random.default_rng(0))
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


def test_noise_embeddings_stay_at_chance() -> None:
    rng = np.random.default_rng(3)
    vectors, table = synthetic_table(rng, spread=50.0)  # clusters drowned in noise
    summary = summarise(new_syndrome_experiment(vectors, table, rare=("d6", "d7"), n_added=(5,), draws=3, seed=2))
    top1 = float(summary.set_index("setting").loc["rare (R -> F+R)", "top-1"].split(" ")[0])
    assert top1 < 40.0  # random expectation 12.5 %: the experiment does not flatter an uninformative space


@pytest.mark.timeout(900)
def test_bundled_model_finds_unseen_syndromes_better_than_chance(tmp_path) -> None:
    model, card = load_model(BUNDLED_MODEL_DIR)
    held_out = tuple(card.provenance["held_out_disorders"])
    rare = held_out[:2]  # trps1, ellis_van_creveld
    disorders = ("unaffected", "achondroplasia", "brachydactyly_e", "cleidocranial_dysplasia", "php1a", *rare)
    manifest = generate_cohort(CohortConfig(n=140, out=tmp_path, seed=99, size=288, disorders=disorders, workers=2, control_fraction=0.15))
    results = embed_many(
        model, [BatchItem(tmp_path / p, s) for p, s in zip(manifest["image"], manifest["sex"], strict=True)], batch_size=16
    )
    accepted = np.array([r.accepted for r in results])
    vectors = np.stack([r.embedding for r in results if r.accepted])
    table = manifest[accepted].reset_index(drop=True)
    summary = summarise(new_syndrome_experiment(vectors, table, rare, n_added=(3,), draws=3, seed=5)).set_index("setting")
    top1 = float(summary.loc["rare (R -> F+R)", "top-1"].split(" ")[0])
    random_top1 = float(summary.loc["rare (R -> F+R)", "random top-1"])
    assert top1 > 2 * random_top1, summary.to_string()
