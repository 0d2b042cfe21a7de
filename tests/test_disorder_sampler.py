"""The disorder sampler (procedural disorders) and the hand-written unseen syndromes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from api.cli import app
from training.synth.cohort import PlannedCase, simulate
from training.synth.disorder_sampler import CATALOGUE_HELD_OUT, DisorderSampler, SamplerConfig, group_kind, write_specs
from training.synth.spec import DisorderSpec, builtin_specs, load_specs, unseen_syndrome_specs
from training.synth.spec_space import nearest_distances, pairwise_distances, signature, signatures

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = [s for s in builtin_specs() if s.category != "control" and s.id not in CATALOGUE_HELD_OUT]


@pytest.fixture(scope="module")
def drawn() -> list[DisorderSpec]:
    return DisorderSampler(SamplerConfig(n=200, seed=5)).sample()


def test_a_seed_draws_the_same_disorders_and_another_seed_others(drawn: list[DisorderSpec]) -> None:
    again = DisorderSampler(SamplerConfig(n=200, seed=5)).sample()
    assert [s.model_dump() for s in again] == [s.model_dump() for s in drawn]
    other = DisorderSampler(SamplerConfig(n=200, seed=6)).sample()
    assert sum(a.model_dump(exclude={"id", "name"}) == b.model_dump(exclude={"id", "name"}) for a, b in zip(drawn, other, strict=True)) == 0
    assert len({s.id for s in drawn}) == 200


def test_drawn_disorders_are_valid_specs_that_read_back_from_yaml_unchanged(drawn: list[DisorderSpec], tmp_path: Path) -> None:
    path = tmp_path / "specs.yaml"
    write_specs(drawn, path, "seed 5")
    assert load_specs(path) == drawn
    for spec in drawn:
        assert spec.length or spec.width or spec.features, f"{spec.id} changes nothing"
        assert np.linalg.norm(signature(spec)) > 0.05, f"{spec.id} is all but unaffected"


def test_drawn_disorders_lie_as_far_apart_as_the_catalogues(drawn: list[DisorderSpec]) -> None:
    """Pairwise distances in spec space: the drawn set's median within 25% of the catalogue's, its
    spread (q10..q90) alike, and no drawn disorder a copy of a catalogue one."""
    catalogue, points = signatures(CATALOGUE), signatures(drawn)
    ours, theirs = pairwise_distances(points), pairwise_distances(catalogue)
    assert abs(np.median(ours) / np.median(theirs) - 1) < 0.25
    assert np.quantile(ours, 0.1) > 0.6 * np.quantile(theirs, 0.1)
    assert np.quantile(ours, 0.9) < 1.4 * np.quantile(theirs, 0.9)
    assert np.min(nearest_distances(points, catalogue)) > 0.05
    # every kind of effect is drawn: lengths of rows, digits and single bones, widths, features, thumbs
    kinds = {group_kind(g) for s in drawn for g in s.length}
    assert {"row", "digit", "bone", "global", "forearm"} <= kinds
    assert any(s.width for s in drawn) and any(s.thumb for s in drawn)
    assert len({name for s in drawn for name in s.features}) >= 25


def test_the_magnitude_scales_the_distances() -> None:
    small = pairwise_distances(signatures(DisorderSampler(SamplerConfig(n=80, seed=1, magnitude=0.5)).sample()))
    large = pairwise_distances(signatures(DisorderSampler(SamplerConfig(n=80, seed=1, magnitude=1.5)).sample()))
    assert np.median(large) > 1.8 * np.median(small)


def test_held_out_catalogue_disorders_lend_nothing() -> None:
    """The sampler borrows effects only from the trained disorders: none of a held-out disorder's
    signature effects (Ellis-van Creveld's extra digit, Holt-Oram's thumbs) unless another lends it."""
    lent = {name for s in CATALOGUE for name in s.features}
    for spec in DisorderSampler(SamplerConfig(n=150, seed=2)).sample():
        assert set(spec.features) <= lent | {"synmetacarpal"}
    recipe = yaml.safe_load((ROOT / "scripts" / "recipes" / "demo_encoder.yaml").read_text())
    assert tuple(recipe["held_out"]) == CATALOGUE_HELD_OUT


def test_every_drawn_disorder_renders(drawn: list[DisorderSpec]) -> None:
    for k, spec in enumerate(drawn[:40]):
        sim = simulate(PlannedCase("c", "p", spec.id, "MF"[k % 2], 2.0 + (k % 15), 100 + k, 200 + k), spec, 96)
        image = sim.radiograph.image
        assert np.isfinite(image).all() and image.std() > 0


def test_the_unseen_syndromes_are_new_valid_and_render() -> None:
    unseen = unseen_syndrome_specs()
    assert len(unseen) >= 12
    assert not {s.id for s in unseen} & {s.id for s in builtin_specs()}
    for k, spec in enumerate(unseen):
        assert spec.signs and (spec.length or spec.width or spec.thumb)
        sim = simulate(PlannedCase("c", "p", spec.id, "F", 9.0, 300 + k, 400 + k), spec, 96)
        assert sim.radiograph.image.std() > 0


def test_synth_specs_writes_the_drawn_list_and_refuses_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "specs.yaml"
    result = runner.invoke(app, ["synth-specs", "--n", "30", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "pairwise median" in result.output
    assert load_specs(out) == DisorderSampler(SamplerConfig(n=30, seed=3)).sample()
    again = runner.invoke(app, ["synth-specs", "--n", "30", "--out", str(out)])
    assert again.exit_code != 0 and "already exists" in again.output
    unknown = runner.invoke(app, ["synth-specs", "--n", "30", "--out", str(tmp_path / "x.yaml"), "--exclude", "no_such"])
    assert unknown.exit_code != 0 and "no_such" in unknown.output
