"""Disorder specs: the built-in catalogue, validation messages, and disorders defined in YAML alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.synth.spec import (
    GROUPS,
    PARAMETERS,
    DisorderSpec,
    PatientPhenotype,
    SpecError,
    builtin_specs,
    load_specs,
    merge_specs,
)

SPECS = {s.id: s for s in builtin_specs()}
NON_NOSOLOGY = {"turner", "noonan", "silver_russell", "sga"}


def test_builtin_catalogue_covers_phenotypes_section_2() -> None:
    affected = [s for s in SPECS.values() if s.category != "control"]
    assert len(affected) >= 16
    assert SPECS["unaffected"].category == "control"
    expected = {
        "achondroplasia",
        "hypochondroplasia",
        "shox_deficiency",
        "turner",
        "php1a",
        "noonan",
        "silver_russell",
        "sga",
        "pseudoachondroplasia",
        "med",
        "trps1",
        "mps_dysostosis_multiplex",
        "xlh",
        "osteogenesis_imperfecta",
        "cleidocranial_dysplasia",
        "brachydactyly_a1",
        "brachydactyly_d",
        "brachydactyly_e",
        "acromesomelic_maroteaux",
        "kabuki",
        "hypophosphatasia",
        "ellis_van_creveld",
        "holt_oram",
        "fanconi_anemia",
    }
    assert expected <= set(SPECS)


def test_catalogue_fields_follow_design_section_2() -> None:
    for spec in SPECS.values():
        if spec.id in NON_NOSOLOGY:
            assert spec.category == "growth_disorder_non_nosology", spec.id
            assert spec.nosology is None
        elif spec.category == "skeletal_dysplasia":
            assert spec.nosology is not None and spec.nosology.revision == 2023, spec.id
            assert spec.genes, spec.id
            assert "-related" in spec.name, f"{spec.id}: dyadic 'phenotype, GENE-related' name expected"
    assert SPECS["achondroplasia"].omim == "100800" and SPECS["achondroplasia"].orpha == "15"
    assert SPECS["turner"].female_fraction == 1.0


def test_phantoms_take_their_identity_from_the_clinical_catalogue(tmp_path: Path) -> None:
    from index.builtin_catalogue import builtin_entries

    catalogue = {e.id: e for e in builtin_entries()}
    assert set(SPECS) <= set(catalogue)
    for spec in SPECS.values():
        entry = catalogue[spec.id]
        assert (spec.name, spec.genes, spec.omim, spec.nosology, spec.signs) == (
            entry.name,
            entry.genes,
            entry.omim,
            entry.nosology,
            entry.signs,
        )
    effects_only = tmp_path / "effects.yaml"
    effects_only.write_text("- id: not_in_the_catalogue\n  features: {size: 0.9}\n")
    with pytest.raises(SpecError, match=r"not_in_the_catalogue.*not in the clinical catalogue"):
        load_specs(effects_only, {e.id: e.model_dump(exclude_none=True) for e in catalogue.values()})


def test_unknown_parameter_is_refused_with_the_list_of_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- id: oops\n  name: Oops\n  features:\n    madelung_tilt: 3\n")
    with pytest.raises(SpecError) as err:
        load_specs(path)
    message = str(err.value)
    assert "madelung_tilt" in message and "radial_tilt_deg" in message and "'oops'" in message


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("- id: x\n  name: X\n  length: {MC9: 0.8}\n", "unknown bone or group 'MC9'"),
        ("- id: x\n  name: X\n  thumb: {absent: 0.8, hypoplastic: 0.5}\n", "more than 1"),
        ("- id: X y\n  name: X\n", "id"),
        ("- id: x\n  name: X\n  features: {size: {sd: 0.1}}\n", "needs `mean` or `by_age`"),
        ("- id: x\n  name: X\n  age_years: [5, 3]\n", "age_years"),
        ("- id: x\n  name: X\n- id: x\n  name: Y\n", "appear twice"),
        ("- id: x\n  name: [unclosed\n", "not valid YAML"),
        ("- just a string\n", "not a mapping"),
    ],
)
def test_invalid_specs_fail_with_a_clear_message(tmp_path: Path, yaml_text: str, fragment: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml_text)
    with pytest.raises(SpecError, match=None) as err:
        load_specs(path)
    assert fragment in str(err.value)


def test_missing_spec_file_is_reported() -> None:
    with pytest.raises(SpecError, match="does not exist"):
        load_specs(Path("/nonexistent/spec.yaml"))


def test_every_parameter_and_group_is_documented() -> None:
    assert all(p.doc for p in PARAMETERS.values())
    assert {"MC", "PP", "MP", "DP", "phalanges", "hand", "forearm", "digit1", "MC4", "radius"} <= set(GROUPS)


def test_merge_adds_new_and_replaces_same_id() -> None:
    new = DisorderSpec(id="my_syndrome", name="My syndrome, GENE1-related", genes=["GENE1"])
    replaced = DisorderSpec(id="kabuki", name="Kabuki (local variant)")
    merged = {s.id: s for s in merge_specs(builtin_specs(), [new, replaced])}
    assert merged["my_syndrome"] is new and merged["kabuki"].name == "Kabuki (local variant)"
    assert len(merged) == len(SPECS) + 1


def test_penetrance_matches_the_spec() -> None:
    """Achondroplasia's trident hand shows in 46% of patients (PHENOTYPES.md)."""
    rng = np.random.default_rng(0)
    shows = [PatientPhenotype.sample(SPECS["achondroplasia"], rng).at_age(8).feature("trident") > 0 for _ in range(10000)]
    assert np.mean(shows) == pytest.approx(0.46, abs=0.02)  # 4 standard errors


def test_patient_keeps_their_draw_and_by_age_effects_grow() -> None:
    """PHP1A's MC4 shortening is absent at birth and progresses (same patient, two visits)."""
    rng = np.random.default_rng(3)
    patient = PatientPhenotype.sample(SPECS["php1a"], rng)
    assert patient.at_age(0.0).length_factor["MC4"] > patient.at_age(12.0).length_factor["MC4"]
    first_visit = patient.at_age(7.0).length_factor
    others = [PatientPhenotype.sample(SPECS["php1a"], rng).at_age(7.0).length_factor["MC4"] for _ in range(50)]
    assert patient.at_age(7.0).length_factor == first_visit  # the draws are the patient's: other patients change nothing
    assert len(set(np.round(others, 6))) > 10  # and patients differ from one another
    madelung = PatientPhenotype.sample(SPECS["shox_deficiency"], np.random.default_rng(1))
    assert madelung.at_age(3).feature("radial_tilt_deg") < madelung.at_age(13).feature("radial_tilt_deg")


def test_gene_is_drawn_from_the_disorders_genes_by_weight() -> None:
    rng = np.random.default_rng(0)
    genes = [PatientPhenotype.sample(SPECS["noonan"], rng).gene for _ in range(3000)]
    assert set(genes) <= set(SPECS["noonan"].genes)
    assert genes.count("PTPN11") / len(genes) == pytest.approx(0.50 / 0.76, abs=0.04)


def test_thumb_forms_follow_holt_oram_spec() -> None:
    rng = np.random.default_rng(0)
    forms = [PatientPhenotype.sample(SPECS["holt_oram"], rng).thumb for _ in range(2000)]
    assert forms.count("absent") / 2000 == pytest.approx(0.30, abs=0.04)
    assert forms.count("normal") / 2000 == pytest.approx(0.10, abs=0.03)
