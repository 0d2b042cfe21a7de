"""The encoder fine-tuning manifest: phantoms, their film copies and real controls, never a held-out film."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from matcher.manifest import ManifestError, read_case_manifest
from training.dataset import prepare
from training.finetune_manifest import FineTuneManifestConfig, write_finetune_manifest
from training.real_data import is_dev_id, is_validation_id


@pytest.fixture(scope="module")
def rsna_like(tmp_path_factory: pytest.TempPathFactory, small_cohort: tuple[Path, pd.DataFrame]) -> Path:
    """An RSNA-layout folder (labels.csv, images/<id>.png) of 100-px views of phantoms: ids 1-60."""
    root = tmp_path_factory.mktemp("rsna")
    (root / "images").mkdir()
    cohort, manifest = small_cohort
    ids = np.arange(1, 61)
    for k, i in enumerate(ids):
        image = cv2.imread(str(cohort / manifest["image"][k % len(manifest)]), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(root / "images" / f"{i}.png"), cv2.resize(image, (100, 100), interpolation=cv2.INTER_NEAREST_EXACT))
    pd.DataFrame({"id": ids, "boneage": 60 + ids, "male": ids % 2 == 0}).to_csv(root / "labels.csv", index=False)
    return root


def _config(tmp_path: Path, cohort: Path, rsna: Path, **overrides) -> FineTuneManifestConfig:
    return FineTuneManifestConfig(**{"cohort": cohort, "rsna": rsna, "out": tmp_path / "ft", "real_films": 30, "workers": 1, **overrides})


def test_dev_and_validation_films_are_disjoint() -> None:
    ids = np.arange(0, 1000)
    assert not (is_dev_id(ids) & is_validation_id(ids)).any()
    assert is_dev_id(ids).sum() == 50 and is_validation_id(ids).sum() == 50


def test_manifest_holds_phantoms_copies_and_training_split_controls(
    tmp_path: Path, small_cohort: tuple[Path, pd.DataFrame], rsna_like: Path
) -> None:
    cohort, phantoms = small_cohort
    path = write_finetune_manifest(_config(tmp_path, cohort, rsna_like, exclude_ids=frozenset({3, 7})))
    table = read_case_manifest(path)
    assert table["source"].value_counts().to_dict() == {"phantom": 36, "film-copy": 36, "rsna-100px": 30}
    real = table[table["source"] == "rsna-100px"]
    real_ids = real["case_id"].str.removeprefix("rsna-").astype(int).to_numpy()
    assert not is_validation_id(real_ids).any() and not is_dev_id(real_ids).any()
    assert not set(real_ids) & {3, 7}
    assert (real["disorder"] == "unaffected").all() and (real["split"] == "train").all()
    assert np.allclose(real["bone_age_months"], real_ids + 60)
    copies = table[table["source"] == "film-copy"]
    original = phantoms.set_index("case_id")
    for case in copies.itertuples():
        source_case = case.case_id.rsplit("-film", 1)[0]
        assert (case.patient_id, case.disorder) == (original.loc[source_case, "patient_id"], original.loc[source_case, "disorder"])
        assert cv2.imread(case.path, cv2.IMREAD_GRAYSCALE).shape == (100, 100)
    assert all(Path(p).is_file() for p in table["path"])
    one_of_each = pd.read_csv(path).groupby("source").head(2)
    one_of_each.to_csv(path.with_name("few.csv"), index=False)  # beside the manifest: the same relative paths
    prepared = prepare(path.with_name("few.csv"), 256, workers=1, cache=False)  # what `bone2gene train` reads
    assert prepared.crops.shape == (6, 256, 256) and all(crop.std() > 0 for crop in prepared.crops)


def test_copies_differ_from_one_another(tmp_path: Path, small_cohort: tuple[Path, pd.DataFrame], rsna_like: Path) -> None:
    cohort, _ = small_cohort
    path = write_finetune_manifest(_config(tmp_path, cohort, rsna_like, copies=2, real_films=1))
    table = read_case_manifest(path)
    first = cv2.imread(table.loc[table["case_id"] == "syn-000000-film0", "path"].item(), cv2.IMREAD_GRAYSCALE)
    second = cv2.imread(table.loc[table["case_id"] == "syn-000000-film1", "path"].item(), cv2.IMREAD_GRAYSCALE)
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 1.0  # two random exports, not one twice


def test_too_many_real_films_is_refused_with_the_count(tmp_path: Path, small_cohort: tuple[Path, pd.DataFrame], rsna_like: Path) -> None:
    cohort, _ = small_cohort
    with pytest.raises(ManifestError, match=r"500 real films asked for, but .* has 54 training-split films .* at most 54"):
        write_finetune_manifest(_config(tmp_path, cohort, rsna_like, real_films=500))
    assert not (tmp_path / "ft").exists()  # nothing written


def test_a_cohort_without_masks_is_refused(tmp_path: Path, small_cohort: tuple[Path, pd.DataFrame], rsna_like: Path) -> None:
    cohort, manifest = small_cohort
    bare = tmp_path / "bare"
    bare.mkdir()
    manifest.drop(columns=["mask"]).assign(image=[str(cohort / p) for p in manifest["image"]]).to_csv(bare / "manifest.csv", index=False)
    with pytest.raises(ManifestError, match="no mask column"):
        write_finetune_manifest(_config(tmp_path, bare, rsna_like))


@pytest.mark.slow
def test_film_copy_queries_reach_the_gallery_through_the_gate(tmp_path: Path) -> None:
    """The development measure of the 'real-looking, so unaffected' shortcut: film copies of phantoms
    pass the quality gate and are ranked against a crisp gallery (bundled model, small cohorts)."""
    from matcher.checkpoint import BUNDLED_MODEL_DIR, load_model
    from training.real_dev_eval import film_copy_queries
    from training.real_eval import synthetic_embeddings

    model = load_model(BUNDLED_MODEL_DIR)[0]
    gallery = synthetic_embeddings(model, tmp_path, 40, 5001)
    queries = synthetic_embeddings(model, tmp_path, 12, 5002)
    figures = film_copy_queries(model, gallery, queries, tmp_path / "cohort-5002", 5002)
    assert figures["film_copies_accepted"] >= 10
    assert 0.0 <= figures["film_copy_top1"] <= 1.0 and 0.0 <= figures["film_copy_disorder_read_unaffected"] <= 1.0


def test_real_control_cases_are_training_split_films_seen_by_the_gate(rsna_100px: Path) -> None:
    """The films that join a development gallery as real controls: never a validation, development
    or excluded film; embedded as the service would; a seeded draw; too many asked for is refused."""
    from matcher.checkpoint import BUNDLED_MODEL_DIR, load_model
    from training.real_dev_eval import real_control_cases

    model = load_model(BUNDLED_MODEL_DIR)[0]
    cases = real_control_cases(model, rsna_100px, frozenset(), 4)
    ids = cases["patient_id"].str.removeprefix("rsna-").astype(int).to_numpy()
    assert len(cases) >= 3 and not is_validation_id(ids).any() and not is_dev_id(ids).any()
    assert (cases["disorder"] == "unaffected").all() and (cases["source"] == "rsna").all()
    assert all(np.linalg.norm(e) == pytest.approx(1.0, abs=1e-4) for e in cases["embedding"])
    again = real_control_cases(model, rsna_100px, frozenset({int(ids[0])}), 4)
    assert int(ids[0]) not in set(again["patient_id"].str.removeprefix("rsna-").astype(int))
    with pytest.raises(ValueError, match="ask for at most"):
        real_control_cases(model, rsna_100px, frozenset(), 10**6)
