"""Shared fixtures. Reference material in ../shared is optional: tests that need it skip."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from training.synth.cohort import CohortConfig, generate_cohort

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


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


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A 36-image PNG cohort at 256 px, generated once per session."""
    out = tmp_path_factory.mktemp("cohort")
    manifest = generate_cohort(CohortConfig(n=36, out=out, seed=11, size=256, workers=1))
    return out, manifest


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
