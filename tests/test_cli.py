"""The `bone2gene` command line: the installed script as a subprocess, exactly as a user runs it
(top-level help), and the other commands through the same entry point in this process
(`conftest.run_bone2gene`: the same code, exit codes and messages, without a torch import per call)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def run(cli: list[str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.parametrize("command", [[], ["synth"], ["demo"], ["analyze"], ["model"], ["model", "import-deeplasia"], ["model", "info"]])
def test_help_on_every_command(bone2gene, command: list[str]) -> None:
    result = bone2gene(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_top_level_help_lists_the_commands(cli: list[str]) -> None:
    out = run(cli, "--help").stdout
    assert "synth" in out and "demo" in out


def test_synth_writes_a_cohort_and_is_deterministic(bone2gene, tmp_path: Path) -> None:
    for name in ("a", "b"):
        result = bone2gene("synth", "--n", "5", "--out", str(tmp_path / name), "--seed", "9", "--size", "160")
        assert result.returncode == 0, result.stderr
        assert "5 images" in result.stdout
    a = pd.read_csv(tmp_path / "a" / "manifest.csv", keep_default_na=False)
    assert len(a) == 5
    for rel in a["image"]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_synth_with_a_custom_spec_file(bone2gene, tmp_path: Path) -> None:
    spec = tmp_path / "new.yaml"
    spec.write_text(
        "- id: short_fourth\n  name: Short fourth metacarpal, GENEX-related\n  genes: [GENEX]\n"
        "  nosology: {group: 18}\n  length: {MC4: 0.6}\n"
    )
    result = bone2gene(
        "synth", "--n", "3", "--out", str(tmp_path / "c"), "--spec", str(spec), "--disorders", "short_fourth", "--size", "128"
    )
    assert result.returncode == 0, result.stderr
    manifest = pd.read_csv(tmp_path / "c" / "manifest.csv", keep_default_na=False)
    assert set(manifest["disorder"]) == {"short_fourth"} and set(manifest["gene"]) == {"GENEX"}
    bones = pd.read_csv(tmp_path / "c" / "bones.csv").pivot(index="case_id", columns="bone", values="length_mm")
    assert ((bones["MC4"] / bones["MC3"]) < 0.65).all()  # 0.90 normally, times 0.6


def test_synth_lists_disorders(bone2gene) -> None:
    result = bone2gene("synth", "--list-disorders")
    assert result.returncode == 0
    assert "achondroplasia" in result.stdout and "FGFR3" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--disorders", "nonsense"], "unknown disorder(s): nonsense"),
        (["--size", "5"], "--size must be between"),
        (["--spec", "/no/such/file.yaml"], "does not exist"),
        (["--format", "jpeg"], "jpeg"),
    ],
)
def test_synth_bad_input_gives_a_clear_error(bone2gene, tmp_path: Path, args: list[str], message: str) -> None:
    result = bone2gene("synth", "--n", "2", "--out", str(tmp_path / "x"), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_synth_refuses_to_overwrite(bone2gene, tmp_path: Path) -> None:
    assert bone2gene("synth", "--n", "2", "--out", str(tmp_path), "--size", "96").returncode == 0
    result = bone2gene("synth", "--n", "2", "--out", str(tmp_path), "--size", "96")
    assert result.returncode == 2 and "--overwrite" in result.stderr


def test_demo_builds_then_reuses_its_gallery(bone2gene, tmp_path: Path) -> None:
    """In this process (the installed script is run by the top-level help test): a torch import saved."""
    from api.keys import KeyStore

    first = bone2gene("demo", "--out", tmp_path, "--n", "8", "--size", "256", "--no-serve")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "contact_sheet.png").stat().st_size > 1000
    assert (tmp_path / "gallery" / "gallery.sqlite").is_file() and "demo gallery:" in first.stdout
    key = first.stdout.split("demo API key (admin; paste it into the page to sign in): ")[1].split()[0]
    assert KeyStore(tmp_path / "gallery" / "keys.sqlite").verify(key).role == "admin"
    second = bone2gene("demo", "--out", tmp_path, "--no-serve")
    assert second.returncode == 0 and "reusing" in second.stdout
    assert KeyStore(tmp_path / "gallery" / "keys.sqlite").verify(key) is None  # each start revokes the previous demo key


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    commands = [block.split("```")[0].strip() for block in readme.split("```bash\n")[1:3]]
    ci_lines = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert ci_lines == [commands[1]], (ci_lines, commands)
    assert commands[0].endswith("bone2gene demo")
