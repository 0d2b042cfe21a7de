""" "No close match" off the gallery's support (`matcher.support`): a query that lies near one case
but off the directions along which the gallery's cases spread (a real film against a phantom
gallery) is flagged, in the service's query as in the evaluation; queries like the gallery's own
cases are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from index.catalogue import Disorder
from index.query import calibration_for, query
from index.store import Gallery, NewCase
from matcher.calibration import Calibration, fit_calibration
from matcher.rank import LabelIndex, RankingRule
from matcher.score_features import LabelEvidence
from matcher.support import MIN_SUPPORT_CASES, fit_support

DIM, SPAN = 32, 6


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class Space:
    """Four disorders whose cases spread within a 6-d subspace of a 32-d space (little noise off it)."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        basis, _ = np.linalg.qr(self.rng.normal(size=(DIM, DIM)))
        self.inside, self.off = basis[:, :SPAN], basis[:, SPAN:]
        self.centres = self.rng.normal(size=(4, SPAN)) * 1.5

    def draw(self, disorder: int, n: int) -> np.ndarray:
        coords = self.centres[disorder] + 0.6 * self.rng.normal(size=(n, SPAN))
        return _unit_rows(coords @ self.inside.T + 0.03 * self.rng.normal(size=(n, DIM)))

    def gallery(self, per_disorder: int) -> tuple[np.ndarray, list[str], list[str]]:
        vectors = np.concatenate([self.draw(d, per_disorder) for d in range(4)])
        names = [f"d{d}" for d in range(4) for _ in range(per_disorder)]
        return vectors, names, [f"p{i}" for i in range(len(names))]

    def pushed_off(self, vectors: np.ndarray, amount: float = 0.15) -> np.ndarray:
        """Each vector moved off the subspace by `amount` (unit length again): still near where it was."""
        direction = _unit_rows(self.rng.normal(size=(len(vectors), DIM - SPAN)) @ self.off.T)
        return _unit_rows(vectors + amount * direction)


def test_a_query_off_the_gallerys_support_is_flagged_though_a_case_is_near() -> None:
    space = Space()
    vectors, names, patients = space.gallery(40)
    calibration = fit_calibration(vectors, names, patients, rule=RankingRule.NEAREST)
    support = calibration.support
    assert support is not None and calibration.support_fitted and len(support.components) == 10
    assert support.held_out_outside <= 0.02
    labels = LabelIndex.of(names)

    def nearest(queries: np.ndarray) -> np.ndarray:
        return LabelEvidence.from_similarities(queries @ vectors.T, labels, RankingRule.NEAREST).nearest_diagnosed

    like_the_gallery = np.concatenate([space.draw(d, 50) for d in range(4)])
    assert calibration.outside_gallery(like_the_gallery).mean() <= 0.05
    foreign = space.pushed_off(vectors[::4])
    close = nearest(foreign) >= calibration.no_match_threshold
    assert close.mean() > 0.5, "the test needs foreign queries that the similarity threshold alone lets through"
    assert calibration.outside_gallery(foreign).all()
    assert calibration.no_match(nearest(foreign), foreign).all()
    plain = nearest(like_the_gallery) < calibration.no_match_threshold
    assert (
        calibration.no_match(nearest(like_the_gallery), like_the_gallery) == (plain | calibration.outside_gallery(like_the_gallery))
    ).all()


def test_support_survives_storage_and_older_calibrations_are_refitted() -> None:
    space = Space(1)
    vectors, names, patients = space.gallery(20)
    calibration = fit_calibration(vectors, names, patients)
    again = Calibration.from_json(calibration.to_json())
    assert again == calibration and not again.stale(calibration.label_counts)
    probe = space.pushed_off(vectors[:5])
    assert (again.outside_gallery(probe) == calibration.outside_gallery(probe)).all()
    older = calibration.to_json()
    del older["support"], older["support_fitted"]
    assert Calibration.from_json(older).stale(calibration.label_counts), "a calibration stored before the support check is refitted"


def test_a_small_gallery_has_no_support_check_and_is_not_refitted_for_it() -> None:
    space = Space(2)
    vectors, names, patients = space.gallery(MIN_SUPPORT_CASES // 4 - 1)
    assert fit_support(vectors, patients) is None
    calibration = fit_calibration(vectors, names, patients)
    assert calibration.support is None and not calibration.stale(calibration.label_counts)
    assert not calibration.outside_gallery(space.pushed_off(vectors)).any()
    big, _, _ = space.gallery(20)
    assert fit_support(big, ["one patient"] * 40 + ["another"] * 40) is None, "fewer patients than folds: no held-out residuals"


def test_the_service_says_why_an_image_outside_the_gallery_gets_no_close_match(tmp_path: Path) -> None:
    space = Space(3)
    vectors, names, patients = space.gallery(30)
    with Gallery.create(tmp_path / "g", "fp", DIM) as gallery:
        gallery.add_disorders([Disorder(id=f"d{i}", name=f"Dysplasia {i}", genes=[f"G{i}"]) for i in range(4)])
        gallery.add_cases(
            [
                NewCase(v, "MF"[i % 2], 60.0, n, None, patient_id=p, case_id=f"c{i}")
                for i, (v, n, p) in enumerate(zip(vectors, names, patients, strict=True))
            ],
            "fp",
        )
        calibration = calibration_for(gallery)
        assert calibration is not None and calibration.support is not None
        inside = query(gallery, space.draw(2, 1)[0], calibration=calibration)
        assert not inside.no_close_match and not inside.outside_gallery
        foreign = space.pushed_off(vectors[7:8])[0]
        result = query(gallery, foreign, calibration=calibration)
        assert result.cases[0].similarity >= calibration.no_match_threshold, "near a case: the similarity alone would not flag it"
        assert result.no_close_match and result.outside_gallery and result.to_json()["outside_gallery"] is True
        assert result.calibration_note.startswith("no close match: this image lies outside")
