"""Image, HPO terms and candidate genes as evidence per disorder, and their fitted combination."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index import hpo
from index.builtin_catalogue import builtin_disorders
from index.evidence import SOURCES, EvidenceModel, evidence_features
from training.protocol import evidence_eval
from training.protocol.splits import disorder_groups, random_draws
from training.synth.phenotypes import PhenotypeSimulation, add_phenotypes


@pytest.fixture(scope="module")
def catalogue():
    return [d for d in builtin_disorders() if d.id in {"achondroplasia", "cleidocranial_dysplasia", "trps1", "brachydactyly_e", "noonan"}]


def test_features_say_which_disorder_each_source_supports(catalogue, tmp_path) -> None:
    ids = [d.id for d in catalogue]
    observed = hpo.resolve_terms(["HP:0008905", "HP:0004060"])  # rhizomelia, trident hand: achondroplasia
    excluded = (
        hpo.resolve_terms(["HP:0000006"]) if "HP:0000006" in catalogue[0].phenotypes else hpo.resolve_terms([catalogue[1].phenotypes[0]])
    )
    by_id = {"achondroplasia": 0.90, "cleidocranial_dysplasia": 0.95, "trps1": None, "brachydactyly_e": 0.91, "noonan": 0.92}
    image = [by_id[d] for d in ids]
    features = evidence_features(catalogue, image, observed, excluded, candidate_genes=["fgfr3", "TTN"])
    by = dict(zip(ids, features.values, strict=True))
    assert features.disorders == ids and features.values.shape == (5, len(SOURCES))
    assert max(ids, key=lambda d: by[d][1]) == "achondroplasia"  # phenotype
    assert by["achondroplasia"][3] == 1.0 and all(by[d][3] == -1.0 for d in ids if d != "achondroplasia")  # gene
    assert features.gene_hits[ids.index("achondroplasia")] == ["FGFR3"]
    assert max(ids, key=lambda d: by[d][0]) == "cleidocranial_dysplasia" and by["trps1"][0] == min(v[0] for v in by.values())
    assert by["noonan"][2] == 1  # an excluded term counts against the disorders annotated with it
    bare = evidence_features(catalogue, image)
    assert (bare.values[:, 1:] == 0).all() and all(s is None for s in bare.phenotype_similarity)  # no terms, no list: no evidence
    model = EvidenceModel({"image": 1.0, "phenotype": 2.0, "excluded": -1.0, "gene": 0.5}, -3.0, "test")
    assert np.allclose(model.contributions(features).sum(axis=1) - 3.0, model.logits(features))
    (tmp_path / "m.json").write_text(__import__("json").dumps(model.to_json()))
    assert EvidenceModel.load(tmp_path / "m.json") == model


def test_terms_and_genes_lift_a_weak_image_for_unseen_disorders(clustered, catalogue) -> None:
    rng = np.random.default_rng(0)
    centres = dict(zip((d.id for d in catalogue), rng.normal(size=(len(catalogue), 16)), strict=True))
    cohort = clustered(rng, centres=centres, sizes=dict.fromkeys(centres, 12), spread=2.5)  # a poor image model
    rows = cohort.table[["disorder", "patient_id"]].assign(case_id=cohort.table["patient_id"])
    table = add_phenotypes(rows, catalogue, seed=1, config=PhenotypeSimulation(no_terms=0.1))
    vectors = cohort.vectors
    groups = disorder_groups(table, trained_on=["achondroplasia", "cleidocranial_dysplasia", "noonan"])
    fit_draw, test_draw = random_draws(table, groups, draws=2, seed=2)
    features, codes = evidence_eval.draw_features(vectors, table, catalogue, *fit_draw.setting("F->F+R"))[:2]
    models = evidence_eval.fit_combinations(features, codes, "test draw 0")
    assert models["image + phenotype + genes"].coefficients["phenotype"] > 0 and models["genes"].coefficients["gene"] > 0
    test_features, test_codes = evidence_eval.draw_features(vectors, table, catalogue, *test_draw.setting("R->F+R"))[:2]
    top1 = {name: values[1] for name, values in evidence_eval.topk_by_source(test_features, test_codes, models).items()}
    assert top1["image + phenotype + genes"] > max(top1["image"], top1["phenotype"], top1["genes"])


def test_gene_lists_from_text_and_pipeline_exports(tmp_path) -> None:
    from index.gene_lists import GeneListError, parse_gene_list, read_gene_list

    assert parse_gene_list("fgfr3\nCOMP, runx2  # comment\n\nFGFR3") == ["COMP", "FGFR3", "RUNX2"]
    (tmp_path / "annovar.tsv").write_text(
        "Chr\tStart\tGene.refGene\tFunc\n4\t1806\tFGFR3\texonic\n12\t5\tPTHLH;KRAS\tsplicing\n1\t9\t.\tintronic\n"
    )
    assert read_gene_list(tmp_path / "annovar.tsv") == ["FGFR3", "KRAS", "PTHLH"]
    (tmp_path / "exomiser.csv").write_text("#RANK,ID,GENE_SYMBOL,SCORE\n1,x,TRPS1,0.9\n2,y,EVC,0.5\n")
    assert read_gene_list(tmp_path / "exomiser.csv") == ["EVC", "TRPS1"]
    with pytest.raises(GeneListError, match=r"not gene symbols: C\.1138G>A, CHR4:1806"):
        parse_gene_list("FGFR3\nchr4:1806 c.1138G>A")
    with pytest.raises(GeneListError, match="cannot read"):
        read_gene_list(tmp_path / "missing.txt")


def test_genes_of_no_disorder_and_empty_term_lists_leave_the_image_order(catalogue) -> None:
    from index.evidence import ClinicalFindings, combine_ranking, default_model
    from matcher.rank import RankedLabel

    def ranked() -> list[RankedLabel]:
        scores = {"achondroplasia": 0.93, "cleidocranial_dysplasia": 0.95, "trps1": 0.90, "brachydactyly_e": 0.91, "noonan": 0.92}
        order = sorted(scores, key=lambda d: -scores[d])
        return [RankedLabel(d, d, i + 1, scores[d], [], 3) for i, d in enumerate(order)]

    image_order = [r.label for r in ranked()]
    unrelated = ClinicalFindings.of(candidate_genes=["TTN", "brca2"])
    assert unrelated.candidate_genes == ["BRCA2", "TTN"] and not unrelated.empty()
    result = combine_ranking(ranked(), catalogue, unrelated, default_model())
    assert [r.label for r in result] == image_order  # a list that names no disorder's gene counts against all alike
    assert all(r.sources["gene_hits"] == [] and r.sources["contributions"]["gene"] < 0 for r in result)
    nothing = ClinicalFindings.of([], [], None)
    assert nothing.empty()
    assert [r.label for r in combine_ranking(ranked(), catalogue, nothing, default_model())] == image_order
    with pytest.raises(hpo.PhenotypeError, match="both observed and excluded"):
        ClinicalFindings.of(["HP:0004322"], ["HP:0004322"])


def test_the_evidence_suite_fits_on_one_cohort_and_reports_on_another(bone2gene, render_cohort, tmp_path: Path) -> None:
    import json

    from matcher.checkpoint import BUNDLED_MODEL_DIR

    disorders = ("unaffected", "achondroplasia", "cleidocranial_dysplasia", "trps1")
    fit, _ = render_cohort(n=24, seed=21, size=256, disorders=disorders)
    test, _ = render_cohort(n=24, seed=22, size=256, disorders=disorders)
    result = bone2gene(
        "evaluate", "--suite", "evidence", "--model", BUNDLED_MODEL_DIR, "--fit-manifest", fit / "manifest.csv",
        "--manifest", test / "manifest.csv", "--draws", "2", "--out", tmp_path / "evidence.md",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "evidence.md").read_text()
    assert "Command: `bone2gene evaluate --suite evidence" in report and "## R->F+R" in report and "| image + phenotype + genes |" in report
    numbers = json.loads((tmp_path / "evidence.json").read_text())
    assert set(numbers["results"]) == {"F->F+R", "R->F+R"} and len(numbers["results"]["F->F+R"]["image"]) == 2
    assert set(numbers["models"]) == set(evidence_eval.SOURCE_SETS)
