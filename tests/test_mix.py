"""Combining cohorts into one training manifest (`bone2gene synth-mix`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from matcher.manifest import read_case_manifest
from training.synth.mix import MixError, combine_manifests


def _cohort(folder: Path, rows: list[dict]) -> Path:
    (folder / "images").mkdir(parents=True)
    for row in rows:
        (folder / row["image"]).write_bytes(b"")
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _phantom(i: int) -> dict:
    return {
        "image": f"images/syn-{i:06d}.png",
        "case_id": f"syn-{i:06d}",
        "patient_id": f"synp-{i:06d}",
        "sex": "F",
        "age_months": 100,
        "disorder": "unaffected",
    }


def _warped(i: int, hand: str) -> dict:
    return {
        "image": f"images/warp-{i:06d}.png",
        "case_id": f"warp-{i:06d}",
        "patient_id": f"real-{hand}",
        "sex": "M",
        "age_months": 120,
        "disorder": "trps1",
        "derived_from": hand,
        "source": "derived:warped-real",
    }


def test_parts_keep_their_images_and_their_own_ids_but_one_real_hand_stays_one_patient(tmp_path: Path) -> None:
    film = _cohort(tmp_path / "film", [_phantom(0), _phantom(1)])
    classic = _cohort(tmp_path / "classic", [_phantom(0)])
    warped_a = _cohort(tmp_path / "warped_a", [_warped(0, "dha:1")])
    warped_b = _cohort(tmp_path / "warped_b", [_warped(0, "dha:1"), _warped(1, "rsna:7")])
    out = tmp_path / "runs" / "mix"

    combined = combine_manifests([film, classic, warped_a, warped_b], out)

    table = read_case_manifest(out / "manifest.csv")  # the checked reader training uses: ids unique
    assert len(table) == 6
    assert all((out / image).resolve().is_file() for image in table["image"])
    assert combined.loc[combined["cohort"] == "classic", "patient_id"].tolist() == ["classic/synp-000000"]
    assert (combined["patient_id"] == "real-dha:1").sum() == 2  # the same real hand, one patient across parts
    assert combined.loc[combined["cohort"] == "film", "derived_from"].eq("").all()  # a column one part lacks: empty


def test_refusals_say_what_to_do(tmp_path: Path) -> None:
    one = _cohort(tmp_path / "a" / "c", [_phantom(0)])
    other = _cohort(tmp_path / "b" / "c", [_phantom(0)])
    with pytest.raises(MixError, match="same name"):
        combine_manifests([one, other], tmp_path / "mix")
    with pytest.raises(MixError, match="two or more"):
        combine_manifests([one], tmp_path / "mix")
    with pytest.raises(MixError, match="not a manifest file"):
        combine_manifests([one, tmp_path / "nowhere.csv"], tmp_path / "mix")
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "manifest.csv").write_text("kept")
    with pytest.raises(MixError, match="exists"):
        combine_manifests([one, other], tmp_path / "done")
    assert (tmp_path / "done" / "manifest.csv").read_text() == "kept"
