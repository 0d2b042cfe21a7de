"""The node's answers: the Structured Report and the Secondary Capture say what `analyze` says,
belong to the film's study, validate with dciodvfy, and the film filter skips what is not a hand."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from sr_reading import sr_values

from api.pacs.film_filter import skip_reason
from api.pacs.findings import RESEARCH_NOTICE, Findings, gather_findings
from api.pacs.secondary_capture import findings_picture, secondary_capture
from api.pacs.senders import without_credentials
from api.pacs.settings import FilmFilter, NodeSettings
from api.pacs.structured_report import structured_report
from api.use_cases import hand_profile, rank_gallery
from index.store import Gallery
from matcher.io import read_radiograph


@pytest.fixture(scope="module")
def answered(pacs_world, tmp_path_factory: pytest.TempPathFactory):
    """One film analysed and ranked as the node does it, and its two answers read back from bytes."""
    film_path = pacs_world.films[0]
    gallery = Gallery.open(pacs_world.gallery_copy(tmp_path_factory.mktemp("answers")))
    radiograph = read_radiograph(film_path)
    analysis = pacs_world.analyzer.analyze(radiograph)
    result = rank_gallery(gallery, analysis.embedding, 5, hand=[hand_profile(analysis)])
    genes = {d.id: ", ".join(d.genes) or None for d in gallery.disorders()}
    findings = gather_findings(analysis, result, pacs_world.card, genes, 5)
    film = pydicom.dcmread(film_path, stop_before_pixels=True)
    folder = tmp_path_factory.mktemp("answer-files")
    sr_path, sc_path = folder / "sr.dcm", folder / "sc.dcm"
    structured_report(findings, film).save_as(sr_path, enforce_file_format=True)
    secondary_capture(findings_picture(radiograph.pixels, analysis, findings), film).save_as(sc_path, enforce_file_format=True)
    return {"film": film, "analysis": analysis, "result": result, "findings": findings, "sr": sr_path, "sc": sc_path}


def test_the_report_says_what_the_analysis_and_the_ranking_say(answered: dict) -> None:
    sr = pydicom.dcmread(answered["sr"])
    values, analysis, result = sr_values(sr), answered["analysis"], answered["result"]
    assert values["Bone age"] == [pytest.approx(analysis.bone_age_months, abs=0.01)]
    assert values["Model probability of male sex"] == [pytest.approx(analysis.male_probability, abs=1e-6)]
    assert values["Subject Sex"] == ["Male" if analysis.sex == "M" else "Female"]
    assert values["Disorder identifier"] == [d.label for d in result.disorders[:5]]
    assert values["Rank"] == [float(d.rank) for d in result.disorders[:5]]
    assert values["Probability"] == [pytest.approx(d.probability, abs=1e-6) for d in result.disorders[:5] if d.probability is not None]
    assert values["No close match in the gallery"] == ["Yes" if result.no_close_match else "No"]
    scored = np.isfinite(analysis.hand.z)
    assert sum(name.endswith("length z-score for age and sex") for name in values) == int(scored.sum()) > 10
    assert values["Intended use"] == [RESEARCH_NOTICE] and "not a diagnosis" in RESEARCH_NOTICE
    assert values["Algorithm Version"][0].endswith(answered["findings"].model_version[-12:])
    assert values["Source image"] == [answered["film"].SOPInstanceUID]
    # highdicom reads it back as a Comprehensive SR
    assert isinstance(hd.sr.srread(answered["sr"]), hd.sr.ComprehensiveSR)


def test_both_answers_join_the_films_study_and_patient_in_new_series(answered: dict) -> None:
    film = answered["film"]
    for path in (answered["sr"], answered["sc"]):
        answer = pydicom.dcmread(path)
        assert answer.StudyInstanceUID == film.StudyInstanceUID and answer.PatientID == film.PatientID
        assert answer.PatientName == film.PatientName and answer.AccessionNumber == film.AccessionNumber
        assert answer.SeriesInstanceUID != film.SeriesInstanceUID and answer.SOPInstanceUID != film.SOPInstanceUID
    sc = pydicom.dcmread(answered["sc"])
    assert sc.BurnedInAnnotation == "YES" and sc.PhotometricInterpretation == "RGB" and sc.pixel_array.ndim == 3


def test_the_capture_shows_the_film_with_its_outline_and_a_findings_panel(answered: dict) -> None:
    picture = pydicom.dcmread(answered["sc"]).pixel_array
    analysis = answered["analysis"]
    film_width = round(answered["film"].Columns * picture.shape[0] / answered["film"].Rows)
    film, panel = picture[:, :film_width], picture[:, film_width + 2 :]
    green = (film[..., 1] > 180) & (film[..., 0] < 120) & (film[..., 2] < 120)
    assert green.sum() > 200, "the hand outline is drawn on the film"
    assert analysis.outline is not None and len(analysis.outline) > 20
    assert (panel.max(axis=2) > 150).mean() > 0.01, "the panel holds text"
    assert panel.shape[1] > 0.5 * picture.shape[0] and picture.shape[0] >= 1024, "legible: small films are shown enlarged"


def test_the_findings_lines_carry_the_warning_no_close_match_and_the_model() -> None:
    findings = Findings(
        "Bone2Gene matcher", "0.1.0 model abc", 100.0, 96.0, 4.0, 0.4, "a table", "F", "dicom", 0.9, "looks male", [], True, 0.2
    )
    lines = findings.lines()
    assert any(line.startswith("WARNING: looks male") for line in lines) and any(line.startswith("No close match") for line in lines)
    assert lines[-1] == "Bone2Gene matcher 0.1.0 model abc"


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy is not installed (apt-get install dicom3tools)")
def test_dciodvfy_finds_no_error_in_either_answer(answered: dict) -> None:
    for path in (answered["sr"], answered["sc"]):
        report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
        errors = [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]
        assert errors == [], f"{path.name}: {errors}"


def _header(**tags: str) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.Modality, ds.PixelData = "1.2.3", "1.2.3.4", "CR", b"\0\0"
    for key, value in tags.items():
        setattr(ds, key, value)
    return ds


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"BodyPartExamined": "HAND", "ViewPosition": "PA"}, None),
        ({"BodyPartExamined": "", "SeriesDescription": "Bone age left hand"}, None),
        ({"BodyPartExamined": "CHEST"}, "body part CHEST"),
        ({"BodyPartExamined": "HAND", "ViewPosition": "LATERAL"}, "lateral"),
        ({"BodyPartExamined": "HAND", "SeriesDescription": "Hand lat."}, "lateral"),
        ({"Modality": "CT", "BodyPartExamined": "HAND"}, "modality CT"),
        ({"Modality": "SR"}, "modality SR"),
        ({"SeriesDescription": "Thorax pa"}, "do not name a hand"),
    ],
)
def test_the_filter_keeps_dorsopalmar_hand_films_and_says_why_it_skips_others(tags: dict, expected: str | None) -> None:
    reason = skip_reason(_header(**tags), FilmFilter())
    assert (reason is None) if expected is None else (reason is not None and expected in reason)


def test_the_filter_skips_objects_without_pixels_and_films_outside_the_study_list() -> None:
    report = _header(BodyPartExamined="HAND")
    del report.PixelData
    assert "not an image" in skip_reason(report, FilmFilter())
    assert "study list" in skip_reason(_header(BodyPartExamined="HAND"), FilmFilter(studies=["9.9"]))


def test_settings_refuse_what_cannot_work_and_never_show_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="peer's AE title, host and port"):
        NodeSettings(gallery=tmp_path, state=tmp_path)
    with pytest.raises(ValueError, match="DICOMweb URL"):
        NodeSettings(gallery=tmp_path, state=tmp_path, destination="dicomweb")
    with pytest.raises(ValueError, match="regular expression"):
        FilmFilter(description="(unclosed")
    settings = NodeSettings(
        gallery=tmp_path, state=tmp_path, destination="dicomweb", dicomweb_url="http://pacs/dicom-web", dicomweb_token="tok-SECRET-123"
    )
    assert "tok-SECRET-123" not in repr(settings) and "tok-SECRET-123" not in str(settings.model_dump())
    assert without_credentials("https://node:pw-123@pacs.example.org:8443/dicom-web") == "https://pacs.example.org:8443/dicom-web"


def test_pacs_answer_writes_what_the_pacs_would_get_and_refuses_what_is_not_dicom(bone2gene, pacs_world, tmp_path: Path) -> None:
    gallery = pacs_world.gallery_copy(tmp_path)
    done = bone2gene("pacs", "answer", pacs_world.films[0], "--gallery", gallery, "--out", tmp_path / "answer")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(RESEARCH_NOTICE) and "Bone age" in done.stdout and pacs_world.card.fingerprint[:12] in done.stdout
    sr = pydicom.dcmread(tmp_path / "answer" / "sr.dcm")
    assert sr.StudyInstanceUID == pydicom.dcmread(pacs_world.films[0], stop_before_pixels=True).StudyInstanceUID
    assert (tmp_path / "answer" / "sc.png").stat().st_size > 10_000
    png = tmp_path / "film.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    refused = bone2gene("pacs", "answer", png, "--gallery", gallery, "--out", tmp_path / "other")
    assert refused.returncode == 2 and "not a DICOM file" in refused.stderr and not (tmp_path / "other").exists()


def test_pacs_commands_say_what_is_missing(bone2gene, tmp_path: Path) -> None:
    listen = bone2gene("pacs", "listen", "--gallery", tmp_path, "--state", tmp_path / "state")
    assert listen.returncode == 2 and "peer's AE title, host and port" in listen.stderr
    peer = bone2gene("pacs", "listen", "--gallery", tmp_path, "--state", tmp_path / "s", "--peer", "nonsense")
    assert peer.returncode == 2 and "AE@HOST:PORT" in peer.stderr
    nobody = bone2gene("pacs", "listen", "--gallery", tmp_path, "--state", tmp_path / "s", "--peer", "PACS@127.0.0.1:4242")
    assert nobody.returncode == 2 and "--allow AE" in nobody.stderr
    status = bone2gene("pacs", "status", "--state", tmp_path / "nowhere")
    assert status.returncode == 2 and "no node state" in status.stderr
