"""Shared fixtures. Reference material in ../shared is optional: tests that need it skip."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from training.synth.cohort import CohortConfig, generate_cohort

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def clustered():
    """The clustered-embeddings factory (`clusters.clusters`): clustered(rng, disorders=..., ...)."""
    from clusters import clusters

    return clusters


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared reference material is not present")
    return SHARED


@pytest.fixture(scope="session")
def real_hands(shared_dir: Path) -> list[Path]:
    paths = sorted((shared_dir / "real_hands").glob("*.png"))
    if not paths:
        pytest.skip("../shared/real_hands has no images")
    return paths


@pytest.fixture(scope="session")
def cli() -> list[str]:
    """The installed console script, run as a user would."""
    script = Path(sys.executable).parent / "bone2gene"
    found = str(script) if script.exists() else shutil.which("bone2gene")
    if found is None:
        pytest.fail("the bone2gene console script is not installed: run `pip install -e .`")
    return [found]


def run_bone2gene(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`bone2gene ARGS` through the console script's own entry point (`api.cli.main`), in this process.

    The same code a user runs, error mapping and exit status included; what it saves is the
    interpreter start and the torch/timm imports (about 10 s here) of a new process per call.
    `tests/test_cli.py` still runs the installed script as a subprocess.
    """
    from api.cli import main

    argv, stdout, stderr = [str(a) for a in args], io.StringIO(), io.StringIO()
    old_argv, old_cwd = sys.argv, Path.cwd()
    sys.argv = ["bone2gene", *argv]
    code: int | str | None = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            main()
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    returncode = code if isinstance(code, int) else (0 if code is None else 1)
    return subprocess.CompletedProcess(["bone2gene", *argv], returncode, stdout.getvalue(), stderr.getvalue())


@pytest.fixture(scope="session")
def bone2gene():
    return run_bone2gene


@pytest.fixture(scope="session")
def render_cohort(tmp_path_factory: pytest.TempPathFactory):
    """The one synthetic-cohort factory: render_cohort(n=..., seed=..., size=..., disorders=...,
    format=...) renders a cohort once per session for each distinct set of settings and returns
    (its folder, its manifest). Read-only: a test that writes makes its own folder."""
    made: dict[tuple, tuple[Path, pd.DataFrame]] = {}

    def render(**settings: object) -> tuple[Path, pd.DataFrame]:
        key = tuple(sorted(settings.items()))
        if key not in made:
            out = tmp_path_factory.mktemp("cohort")
            made[key] = (out, generate_cohort(CohortConfig(out=out, **{"workers": 2, **settings})))
        return made[key]

    return render


@pytest.fixture(scope="session")
def small_cohort(render_cohort) -> tuple[Path, pd.DataFrame]:
    """A 36-image PNG cohort at 256 px, generated once per session."""
    return render_cohort(n=36, seed=11, size=256)


@pytest.fixture(scope="session")
def rsna_100px(shared_dir: Path) -> Path:
    root = shared_dir / "rsna_100px"
    if not (root / "labels.csv").is_file():
        pytest.skip("../shared/rsna_100px is not present")
    return root


@pytest.fixture(scope="session")
def real_hands_labelled(shared_dir: Path) -> tuple[list[Path], pd.DataFrame]:
    root = shared_dir / "real_hands_labelled"
    if not (root / "labels.csv").is_file():
        pytest.skip("../shared/real_hands_labelled is not present")
    labels = pd.read_csv(root / "labels.csv")
    return [root / f"{i}.png" for i in labels["id"]], labels


def embedded_gallery(cohort: CohortConfig, gallery_path: Path, batch_size: int, measure_hands: bool = True) -> pd.DataFrame:
    """Render `cohort` and add it to a new gallery at `gallery_path` embedded with the bundled model
    (disorder catalogue seeded; hands measured unless told not to); returns the cohort's manifest."""
    from api.use_cases import synthetic_gallery

    manifest, _ = synthetic_gallery(cohort, gallery_path, batch_size, measure_hands=measure_hands)
    return manifest


SERVICE_DISORDERS = ("unaffected", "achondroplasia", "brachydactyly_e", "cleidocranial_dysplasia")


@pytest.fixture(scope="session")
def gallery_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A 28-case synthetic cohort (4 disorders, 384 px) embedded once per session with the bundled model.

    Modules that write to a gallery take their own copy (`copy_of_template`), so no module sees
    another's changes and none pays for rendering and embedding again.
    """
    root = tmp_path_factory.mktemp("template")
    config = CohortConfig(n=28, out=root / "cohort", seed=8, size=384, disorders=SERVICE_DISORDERS, workers=2)
    manifest = embedded_gallery(config, root / "gallery", batch_size=8)
    return root, manifest


EXPLORE_DISORDERS = (
    "unaffected",
    "achondroplasia",
    "brachydactyly_e",
    "cleidocranial_dysplasia",
    "pseudoachondroplasia",
    "php1a",
    "trps1",  # trps1 and ellis_van_creveld: held out of the bundled model's training
    "ellis_van_creveld",
)


@pytest.fixture(scope="session")
def embedded_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 150-case synthetic cohort (8 disorders, two of them unseen by the bundled model, 288 px)
    in a gallery embedded once per session with the bundled model, for the tests that measure the
    feature space (cohort maps and statistics, unseen syndromes). Read-only: nobody writes to it."""
    root = tmp_path_factory.mktemp("embedded-cohort")
    config = CohortConfig(n=150, out=root / "cohort", seed=41, size=288, disorders=EXPLORE_DISORDERS, workers=2, control_fraction=0.25)
    embedded_gallery(config, root / "gallery", batch_size=16, measure_hands=False)  # its tests read the image space only
    return root / "gallery"


def copy_of_template(template: tuple[Path, pd.DataFrame], target: Path) -> tuple[Path, pd.DataFrame, list[Path]]:
    """A private copy of the template gallery under `target` (its cohort images are shared, read-only):
    (gallery path, manifest, paths of the images the gallery accepted)."""
    from index.store import Gallery

    root, manifest = template
    shutil.copytree(root / "gallery", target / "gallery")
    with Gallery.open(target / "gallery") as gallery:
        accepted = set(gallery.cases()["case_id"])
    images = [root / "cohort" / p for p, c in zip(manifest["image"], manifest["case_id"], strict=True) if c in accepted]
    return target / "gallery", manifest, images


@dataclass
class PacsWorld:
    """What the DICOM node's tests share: the bundled model and its analyzer, hand films as a PACS
    holds them (DICOM CR with fake PHI, each accepted by the quality gate), and a gallery to match
    them against that a test copies before writing (`gallery_template`'s)."""

    model: object
    card: object
    analyzer: object
    films: list[Path]
    template: tuple[Path, pd.DataFrame]

    def gallery_copy(self, target: Path) -> Path:
        return copy_of_template(self.template, target)[0]


@pytest.fixture(scope="session")
def pacs_world(render_cohort, gallery_template: tuple[Path, pd.DataFrame]) -> PacsWorld:
    from matcher.analysis import Analyzer
    from matcher.checkpoint import BUNDLED_MODEL_DIR, load_model

    model, card = load_model(BUNDLED_MODEL_DIR)
    analyzer = Analyzer(model)
    out, manifest = render_cohort(n=6, seed=23, size=384, format="dicom", disorders=SERVICE_DISORDERS)
    films = [out / image for image in manifest["image"] if analyzer.analyze(out / image).accepted]
    assert len(films) >= 3, "the quality gate refused most of the rendered DICOM films"
    return PacsWorld(model, card, analyzer, films, gallery_template)
