"""The bundled model on real radiographs it was never trained on (issue 13).

The bundled model is the phantom-trained encoder (disorder embeddings) with an age and sex
reader trained on real RSNA films (`matcher/weights/demo_model/MODEL_CARD.md`); bone age and
sex come from the reader, so a full-resolution film and its 100-px copy must get the same
answer. Real control hands must not get a confident disorder against a demo-like phantom
gallery (the encoder places them among the phantoms; the in-gallery factor keeps them from
reading as likely: highest probability 0.40 here, 0.60 with the factor read from the nearest
similarity alone, which this test catches).

Held-out films: the first 300 RSNA validation ids (`training.real_data.is_validation_id`,
100 px) and the 14 labelled full-resolution films (never trained on). Thresholds sit a
little outside what the bundled model measures (benchmarks/real.md), so that a regression
breaks them; the issue's targets are in the benchmark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matcher.analysis import Analyzer
from matcher.batch import BatchItem, embed_many
from matcher.checkpoint import BUNDLED_MODEL_DIR, load_model
from matcher.io import read_radiograph
from matcher.mask import segment_hand
from matcher.quality import assess_quality
from training.atlas_bone_age import atlas_bone_age
from training.landmark_data import dha_split, read_dha_table
from training.real_data import is_validation_id, read_labels
from training.real_eval import _atlas_lines, feature_space

HELD_OUT_FILMS = 300
# the bundled model's reader (6f100e352507), reading each film and its mirror image, measures 10.9 months
# and 84.6% on these 295 accepted films (9.71 and 82.2% on all 624, benchmarks/real.md) and 16.9 months on
# the labelled films; the reader before it (28d438a1f858) 11.0 months, 85.7% and 17.2 (the sex bound was
# 0.85 then: the new reader reads 2 more of these 175 films' sex wrong, and 1.4 points more of the
# development films' right); reading the film alone (before mirror_average) 11.5, 85.7% and 17.7; the
# reader before that (a6a4b6b98ccb) 12.1 months, 88.0% and 18.4 (it fails the two bone-age bounds); before
# that 7cd5edcc4cdd 12.2 months, 83.4% and 22.0; 13.8, 78.3% and 20.2; the encoder's own phantom-trained
# heads 47.4 months, 40% and 78.3 months
MAX_MAD_RSNA_MONTHS = 11.3
MAX_MAD_LABELLED_MONTHS = 17.5
MIN_SEX_ACCURACY_OLDER = 0.83
MIN_REAL_FIRST_OR_FLAGGED = 0.75  # 81% measured (a small gallery: 150 phantoms at 384 px)


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    model, _ = load_model(BUNDLED_MODEL_DIR)
    assert model.age_sex_reader is not None, "the bundled model has lost its age and sex reader"
    return Analyzer(model)


@pytest.fixture(scope="module")
def held_out(rsna_100px: Path, real_hands_labelled: tuple[list[Path], pd.DataFrame]) -> pd.DataFrame:
    labels = read_labels(rsna_100px)
    _, labelled = real_hands_labelled
    chosen = labels[is_validation_id(labels["id"].to_numpy()) & ~labels["id"].isin(labelled["id"])].head(HELD_OUT_FILMS)
    return chosen.assign(path=[rsna_100px / "images" / f"{i}.png" for i in chosen["id"]])


@pytest.fixture(scope="module")
def analysed(analyzer: Analyzer, held_out: pd.DataFrame) -> pd.DataFrame:
    """The held-out films in batches (the same pipeline as one `analyze` each: tests/test_analysis.py)."""
    items = [BatchItem(path, "M" if male else "F") for path, male in zip(held_out["path"], held_out["male"], strict=True)]
    results = embed_many(analyzer.model, items, batch_size=32)
    rows = [{"accepted": r.accepted, "months": r.bone_age_months, "male_p": r.male_probability, "embedding": r.embedding} for r in results]
    return pd.concat([held_out.reset_index(drop=True), pd.DataFrame(rows)], axis=1)


def test_the_gate_accepts_real_films(
    real_hands: list[Path], real_hands_labelled: tuple[list[Path], pd.DataFrame], analysed: pd.DataFrame
) -> None:
    """Every full-resolution film, and >= 98% of these held-out RSNA films (5 of 300 are refused;
    on all 12,611: benchmarks/real.md)."""
    refused = {}
    for path in [*real_hands, *real_hands_labelled[0]]:
        radiograph = read_radiograph(path)
        verdict = assess_quality(radiograph, segment_hand(radiograph.pixels))
        if not verdict.accepted:
            refused[str(path)] = verdict.reasons
    assert not refused, refused
    assert analysed["accepted"].mean() >= 0.98, analysed.loc[~analysed["accepted"], "id"].tolist()


def test_bone_age_and_sex_on_held_out_rsna_films(analysed: pd.DataFrame) -> None:
    ok = analysed[analysed["accepted"]]
    mad = float(np.mean(np.abs(ok["months"] - ok["boneage"])))
    older = ok[ok["boneage"] > 120]
    sex_accuracy = float(np.mean((older["male_p"] > 0.5) == older["male"]))
    print(
        f"\nRSNA held-out: {len(ok)} films, bone-age MAD {mad:.1f} months; sex accuracy (bone age > 120 months, {len(older)}) {sex_accuracy:.1%}"
    )
    assert mad <= MAX_MAD_RSNA_MONTHS
    assert sex_accuracy >= MIN_SEX_ACCURACY_OLDER


def test_full_resolution_films_match_their_copies_and_the_readers(
    analyzer: Analyzer, rsna_100px: Path, real_hands_labelled: tuple[list[Path], pd.DataFrame]
) -> None:
    paths, labels = real_hands_labelled
    errors, compared = [], 0
    for path, truth, male in zip(paths, labels["boneage"], labels["male"], strict=True):
        sex = "M" if male else "F"
        full = analyzer.analyze(path, sex=sex)
        assert full.accepted, (path.name, full.reasons)
        errors.append(abs(full.bone_age_months - truth))
        copy = analyzer.analyze(rsna_100px / "images" / path.name, sex=sex)
        if copy.accepted:  # the gate may refuse a 100-px copy it cannot read (1512: benchmarks/real.md)
            assert full.bone_age_months == pytest.approx(copy.bone_age_months, abs=0.05), path.name
            assert full.male_probability == pytest.approx(copy.male_probability, abs=1e-3), path.name
            compared += 1
    assert compared >= len(paths) - 1
    print(f"\nreal_hands_labelled at full resolution: bone-age MAD {np.mean(errors):.1f} months")
    assert np.mean(errors) <= MAX_MAD_LABELLED_MONTHS


def test_real_control_hands_get_no_confident_disorder(analyzer: Analyzer, analysed: pd.DataFrame) -> None:
    """Against a synthetic gallery like the demo's, no real control hand gets a disorder other
    than "unaffected" at a calibrated probability that would read as likely, and most are flagged
    "no close match" (here 81%; 57% by the similarity alone, before the flag's second part). That
    the flag stays off for right answers is the calibration's own test (tests/test_rank.py)."""
    embeddings = list(analysed.loc[analysed["accepted"], "embedding"].head(120))
    space = feature_space(analyzer.model, embeddings, gallery_n=150, query_n=8, image_size=384)
    print(
        f"\nreal controls: {space['real_unaffected_first']:.0%} unaffected first, {space['real_flagged_no_close_match']:.0%} flagged, "
        f"first or flagged {space['real_unaffected_first_or_flagged']:.0%}, "
        f"highest probability {space['real_top_probability_max']:.2f}; top disorders {space['real_top_disorders']}"
    )
    assert space["real_confident_disorder"] == 0.0, space["real_top_probability_max"]
    assert space["real_unaffected_first_or_flagged"] >= MIN_REAL_FIRST_OR_FLAGGED


def test_bone_age_on_a_second_site_against_its_two_radiologists(analyzer: Analyzer, shared_dir: Path) -> None:
    """The atlas's held-out films (six of them here; all 24 in benchmarks/real.md: 10.6 months)."""
    root = shared_dir / "dha"
    if not (root / "labels.csv").is_file():
        pytest.skip("../shared/dha is not present")
    chosen = dha_split(root)[1][:6]
    figures = atlas_bone_age(analyzer, root, ids=chosen)
    assert figures["films"] == figures["accepted"] == 6 and not figures["refused"]
    readers = read_dha_table(root).set_index("id").loc[chosen, ["bone_age_reader1_years", "bone_age_reader2_years"]].to_numpy(float)
    assert figures["readers_mad_months"] == round(float(np.mean(np.abs(readers[:, 0] - readers[:, 1]) * 12)), 2)
    assert sum(band["films"] for band in figures["by_age_band"]) == 6
    assert figures["bone_age_mad_months"] < 18.0
    report = "\n".join(_atlas_lines(figures))  # the real suite's section
    assert f"| bone-age MAD against the readers' mean | {figures['bone_age_mad_months']} months | <= 9 |" in report
