"""How a model does on real radiographs it was never trained on (`scripts/bench_real.py model`).

- bone age and sex on the held-out RSNA films (`training.real_data.is_validation_id`, 100 px),
  through the whole pipeline (read, mask, gate, model input, model) as `bone2gene analyze`
  runs it, with the errors by band of bone age (`training.age_error`);
- bone age on the 14 labelled full-resolution films, and how far each film's answer is from
  the answer for its own 100-px copy; beside it, the MADs of as many validation films drawn at
  random, to show how far a MAD on so few films strays from the validation MAD;
- the feature space: real control hands against a synthetic gallery (is "unaffected" first,
  or is "no close match" said?), for the 100-px validation films and for the full-resolution
  films of `real_hands_labelled` and `real_hands` (seen sharper by the encoder); the same
  flag on held-out synthetic cases whose disorder is in the gallery and ranked first; and the
  two-sample statistics of `index.cohort_stats` between real and synthetic controls;
- latency of a full analysis of a real film against the bare forward pass, paired in one run.

RSNA gives no chronological age, so "children over 10 years" is read as bone age over 120
months. Every number on `rsna_100px` is measured on 100-px films: fine bone detail is gone.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Set
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from index.cohort_stats import compare
from matcher.analysis import AnalysisOptions, Analyzer
from matcher.calibration import Calibration, fit_calibration
from matcher.checkpoint import BUNDLED_MODEL_DIR, ModelCard, load_model
from matcher.io import read_radiograph
from matcher.model import Bone2GeneModel
from matcher.rank import DEFAULT_RULE, LabelIndex
from matcher.score_features import Neighbourhood
from training.age_error import errors_by_age_band, small_sample_spread
from training.atlas_bone_age import SEX_FROM_YEARS, atlas_bone_age
from training.joint_eval import real_figures
from training.protocol.encoders import embed_films
from training.real_data import is_validation_id, read_labels, reported_ids
from training.synth.cohort import CohortConfig, generate_cohort

GALLERY_SEED, QUERY_SEED = 2027, 4049  # the demo gallery's cohort seed; another for held-out queries


def analyse_films(analyzer: Analyzer, paths: list[Path], males: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Bone age, male probability and embedding per film (NaN where refused), and the refusals;
    `males` None: each film's sex is read from the film."""
    months, male_p, embeddings, refused = [], [], [], []
    sexes = [None] * len(paths) if males is None else ["M" if male else "F" for male in males]
    for path, sex in zip(paths, sexes, strict=True):
        result = analyzer.analyze(path, sex=sex)
        if not result.accepted:
            refused.append(f"{path.name}: {'; '.join(result.reasons)}")
            months.append(np.nan), male_p.append(np.nan), embeddings.append(None)
            continue
        months.append(result.bone_age_months), male_p.append(result.male_probability), embeddings.append(result.embedding)
    return np.array(months), np.array(male_p), embeddings, refused


def rsna_validation(analyzer: Analyzer, root: Path, exclude: Set[int]) -> tuple[dict, list[np.ndarray], np.ndarray]:
    """Figures of the held-out RSNA films (errors by bone-age band among them), their embeddings
    and each accepted film's absolute bone-age error (months)."""
    labels = read_labels(root)
    held = labels[is_validation_id(labels["id"].to_numpy()) & ~labels["id"].isin(exclude)]
    paths = [root / "images" / f"{i}.png" for i in held["id"]]
    months, male_p, embeddings, refused = analyse_films(analyzer, paths, held["male"].to_numpy())
    ok = ~np.isnan(months)
    truth = held["boneage"].to_numpy(float)[ok]
    figures = real_figures(months[ok], male_p[ok], truth, held["male"].to_numpy(float)[ok])
    bands = [asdict(band) for band in errors_by_age_band(months[ok], truth)]
    summary = {"films": len(held), "accepted": int(ok.sum()), "refused": refused, **figures.__dict__, "by_age_band": bands}
    return summary, [e for e in embeddings if e is not None], np.abs(months[ok] - truth)


def labelled_full_resolution(analyzer: Analyzer, root: Path, copies: Path) -> tuple[dict, list[np.ndarray]]:
    """Bone age of the labelled films at full resolution and as 100-px copies; and the full-resolution embeddings."""
    labels = read_labels(root)
    males = labels["male"].to_numpy()
    full, _, full_embeddings, refused_full = analyse_films(analyzer, [root / f"{i}.png" for i in labels["id"]], males)
    small, _, _, refused_small = analyse_films(analyzer, [copies / "images" / f"{i}.png" for i in labels["id"]], males)
    truth = labels["boneage"].to_numpy(float)
    both = ~np.isnan(full) & ~np.isnan(small)
    rows = [
        {
            "id": int(i),
            "bone_age": float(t),
            "full_resolution": None if np.isnan(f) else round(float(f), 1),
            "copy_100px": None if np.isnan(s) else round(float(s), 1),
        }
        for i, t, f, s in zip(labels["id"], truth, full, small, strict=True)
    ]
    figures = {
        "films": len(labels),
        "accepted_full": int((~np.isnan(full)).sum()),
        "accepted_copy": int((~np.isnan(small)).sum()),
        "mad_full_resolution": round(float(np.nanmean(np.abs(full - truth))), 2),
        "mad_copy_100px": round(float(np.nanmean(np.abs(small - truth))), 2),
        "max_full_vs_copy": round(float(np.max(np.abs(full - small)[both])), 3) if both.any() else None,
        "refused": refused_full + refused_small,
        "films_detail": rows,
    }
    return figures, [e for e in full_embeddings if e is not None]


def unlabelled_embeddings(analyzer: Analyzer, root: Path) -> list[np.ndarray]:
    """Embeddings of the unlabelled full-resolution films under `root` (sex read from the film)."""
    paths = sorted(root.glob("*.png"))
    _, _, embeddings, _ = analyse_films(analyzer, paths, None)
    return [e for e in embeddings if e is not None]


def embed_images(model: Bone2GeneModel, root: Path, images: list[str], sexes: list[str]) -> list[np.ndarray | None]:
    """Each image's (under `root`) embedding (`training.protocol.encoders.embed_films`); None where the gate refuses it."""
    vectors, accepted = embed_films(model, [root / p for p in images], sexes, device="cpu", workers=1)
    found = iter(vectors)
    return [next(found) if ok else None for ok in accepted]


def synthetic_embeddings(model: Bone2GeneModel, work: Path, n: int, seed: int, size: int = 512, renderer: str = "classic") -> pd.DataFrame:
    """A phantom cohort of `seed` drawn under `work / f"cohort-{seed}"` by `renderer` (images stay there
    while `work` lives), with each accepted phantom's embedding."""
    manifest = generate_cohort(CohortConfig(n=n, out=work / f"cohort-{seed}", seed=seed, size=size, renderer=renderer))  # type: ignore[arg-type]
    embeddings = embed_images(model, work / f"cohort-{seed}", list(manifest["image"]), list(manifest["sex"]))
    manifest = manifest.assign(embedding=embeddings)
    return manifest[[e is not None for e in embeddings]].reset_index(drop=True)


def _top_probability(calibration: Calibration, neighbourhood: Neighbourhood) -> np.ndarray:
    """The first-ranked disorder's probability as the service reports it (in-gallery factor included)."""
    return calibration.reported_matrix(neighbourhood)[np.arange(len(neighbourhood.scores)), neighbourhood.top()]


def feature_space(
    model: Bone2GeneModel,
    real_embeddings: list[np.ndarray],
    gallery_n: int = 300,
    query_n: int = 200,
    image_size: int = 512,
    seeds: tuple[int, int] = (GALLERY_SEED, QUERY_SEED),
    full_resolution: list[np.ndarray] | None = None,
    renderer: str = "classic",
) -> dict:
    """Real controls and held-out synthetic cases against a synthetic gallery like the demo's
    (its phantoms drawn at `image_size` px: smaller is quicker, for models whose input is smaller;
    `seeds`: the gallery's cohort and the queries' cohort). `full_resolution`: embeddings of
    full-resolution real films, measured against the same gallery under "full_resolution"
    (the encoder sees them sharper than the 100-px films). `renderer`: the phantoms' (`bone2gene synth --renderer`)."""
    with tempfile.TemporaryDirectory() as tmp:
        gallery = synthetic_embeddings(model, Path(tmp), gallery_n, seeds[0], image_size, renderer)
        queries = synthetic_embeddings(model, Path(tmp), query_n, seeds[1], image_size, renderer)
    figures = space_figures(gallery, queries, real_embeddings)
    if full_resolution:
        sharp = space_figures(gallery, queries, full_resolution)
        figures["full_resolution"] = {key: value for key, value in sharp.items() if key.startswith("real_")}
    return figures


def space_figures(gallery: pd.DataFrame, queries: pd.DataFrame, real_embeddings: list[np.ndarray]) -> dict:
    """`feature_space`'s figures from embedded cohorts (`synthetic_embeddings`): for a caller that
    measures more on the same phantoms without drawing them twice."""
    vectors = np.stack(gallery["embedding"]).astype(np.float32)
    labels = gallery["disorder"].astype(str).tolist()
    calibration = fit_calibration(vectors, labels, gallery["patient_id"].astype(str).tolist(), rule=DEFAULT_RULE)
    index = LabelIndex.of(labels)
    unaffected = index.names.index("unaffected")

    def neighbourhood_of(query: np.ndarray) -> Neighbourhood:
        return Neighbourhood.from_similarities(query @ vectors.T, index, DEFAULT_RULE)

    real = np.stack(real_embeddings).astype(np.float32)
    real_neighbourhood = neighbourhood_of(real)
    real_first = real_neighbourhood.top() == unaffected
    real_flag = calibration.flags(real_neighbourhood)
    real_probability = _top_probability(calibration, real_neighbourhood)
    known = queries[queries["disorder"].astype(str).isin(index.names)]
    synth_neighbourhood = neighbourhood_of(np.stack(known["embedding"]).astype(np.float32))
    own = np.array([index.names.index(str(d)) for d in known["disorder"]])
    first = synth_neighbourhood.top() == own
    synth_flag = calibration.flags(synth_neighbourhood)
    synth_probability = _top_probability(calibration, synth_neighbourhood)
    phantom = gallery["source"].ne("rsna") if "source" in gallery else pd.Series(True, index=gallery.index)
    control_rows = gallery[(gallery["disorder"] == "unaffected") & phantom]  # the gap is to the phantom controls, real ones aside
    gap = compare(
        real[:200],
        np.stack(control_rows["embedding"]).astype(np.float32),
        [f"r{i}" for i in range(min(200, len(real)))],
        control_rows["patient_id"].astype(str).tolist(),
        permutations=20,
    )
    return {
        "gallery_cases": len(gallery),
        "no_match_threshold": round(calibration.no_match_threshold, 4),
        "no_match_relative_threshold": round(calibration.no_match_relative_threshold, 3),
        "real_controls": len(real),
        "real_unaffected_first": round(float(real_first.mean()), 4),
        "real_flagged_no_close_match": round(float(real_flag.mean()), 4),
        "real_unaffected_first_or_flagged": round(float((real_first | real_flag).mean()), 4),
        "real_top_probability_max": round(float(real_probability.max()), 4),
        "real_confident_disorder": round(float(((real_probability >= 0.5) & ~real_first).mean()), 4),
        "real_top_disorders": pd.Series(np.array(index.names)[real_neighbourhood.top()]).value_counts().head(5).to_dict(),
        "synthetic_queries_in_gallery": len(known),
        "synthetic_top1": round(float(first.mean()), 4),
        "synthetic_flag_off_when_first": round(float((~synth_flag[first]).mean()), 4) if first.any() else None,
        "synthetic_first_median_probability": round(float(np.median(synth_probability[first])), 4) if first.any() else None,
        "real_vs_synthetic_controls": {
            "auc": round(gap.auc, 4),
            "auc_p_value": round(gap.auc_p_value, 4),
            "within_real": round(gap.within_a, 4),
            "within_synthetic": round(gap.within_b, 4),
            "between": round(gap.between, 4),
        },
    }


def _bare_forward(model: Bone2GeneModel) -> Callable[[], None]:
    """One forward pass of every network the model runs per image (the encoder, and its age and sex reader)."""
    networks = [model] if model.age_sex_reader is None else [model, model.age_sex_reader]
    inputs = [torch.zeros(1, 1, n.config.input_size, n.config.input_size).contiguous(memory_format=torch.channels_last) for n in networks]
    male = torch.ones(1, 1)

    def run() -> None:
        with torch.inference_mode():
            for network, x in zip(networks, inputs, strict=True):
                network(x, male)

    return run


def latency(analyzer: Analyzer, paths: list[Path], repeats: int = 3) -> dict:
    """Median full analysis vs median bare forward of the same model, interleaved per film."""
    full, bare = [], []
    forward = _bare_forward(analyzer.model)
    analyzer.analyze(paths[0], sex="M")
    for _ in range(repeats):
        for path in paths:
            started = time.perf_counter()
            forward()
            bare.append(time.perf_counter() - started)
            started = time.perf_counter()
            analyzer.analyze(read_radiograph(path), sex="M")
            full.append(time.perf_counter() - started)
    f, b = statistics.median(full) * 1e3, statistics.median(bare) * 1e3
    return {"films": len(paths), "analyze_ms": round(f, 1), "bare_forward_ms": round(b, 1), "ratio": round(f / b, 2)}


def paired_latency(paths: list[Path], analyzer: Analyzer, baseline: Analyzer, repeats: int = 3) -> dict:
    """The model's and a baseline model's latency, alternating film by film in one run."""
    rows = {"model": [], "baseline": []}
    for _ in range(repeats):
        for path in paths:
            rows["model"].append(latency(analyzer, [path], repeats=1))
            rows["baseline"].append(latency(baseline, [path], repeats=1))
    out = {
        name: {key: round(statistics.median(r[key] for r in runs), 2) for key in ("analyze_ms", "bare_forward_ms", "ratio")}
        for name, runs in rows.items()
    }
    out["analyze_vs_baseline_analyze"] = round(out["model"]["analyze_ms"] / out["baseline"]["analyze_ms"], 2)
    return out


def evaluate_real(shared: Path, model_dir: Path | None = None, baseline_dir: Path | None = None, renderer: str = "classic") -> dict:
    """Every figure of the module's note; `baseline_dir` (the previous model) adds a paired latency run;
    `renderer` draws the phantom galleries."""
    model, card = load_model(model_dir or BUNDLED_MODEL_DIR)
    analyzer = Analyzer(model)  # as users get it: the latency figures
    reader = Analyzer(model, AnalysisOptions(hand=None))  # bone age, sex and embeddings: the hand is not measured
    labelled = shared / "real_hands_labelled"
    exclude = reported_ids(labelled)
    validation, embeddings, validation_errors = rsna_validation(reader, shared / "rsna_100px", exclude)
    labelled_figures, labelled_embeddings = labelled_full_resolution(reader, labelled, shared / "rsna_100px")
    # as many validation films, drawn at random: how far a MAD on so few can fall from the validation MAD
    labelled_figures["validation_draws"] = asdict(
        small_sample_spread(validation_errors, labelled_figures["accepted_full"], labelled_figures["mad_full_resolution"])
    )
    full_resolution = labelled_embeddings + unlabelled_embeddings(reader, shared / "real_hands")
    return {
        "model": _describe(card),
        "rsna_validation": validation,
        "labelled_full_resolution": labelled_figures,
        "atlas_second_site": atlas_bone_age(reader, shared / "dha") if (shared / "dha" / "labels.csv").is_file() else None,
        "feature_space": {"renderer": renderer, **feature_space(model, embeddings, full_resolution=full_resolution, renderer=renderer)},
        "latency": latency(analyzer, sorted(labelled.glob("*.png"))[:6]),
        "latency_against_baseline": None
        if baseline_dir is None
        else paired_latency(sorted(labelled.glob("*.png"))[:6], analyzer, Analyzer(load_model(baseline_dir)[0])),
    }


def _describe(card: ModelCard) -> dict:
    described = {
        "fingerprint": card.fingerprint[:12],
        "preprocessing": card.config.preprocessing,
        "input_size": card.config.input_size,
        "mirror_average": card.config.mirror_average,
    }
    if card.age_sex_reader is not None:
        described["age_sex_reader"] = _describe(card.age_sex_reader)
    return described


def _title(model: dict) -> str:
    title = f"`{model['fingerprint']}` ({model['preprocessing']} preprocessing, {model['input_size']} px)"
    reader = model.get("age_sex_reader")
    if reader:
        mirror = ", the mean of the film and its mirror image" if reader.get("mirror_average") else ""
        title += (
            f" with the age and sex reader `{reader['fingerprint']}` ({reader['preprocessing']} view, {reader['input_size']} px{mirror})"
        )
    return title


def model_markdown(result: dict) -> list[str]:
    v, f, s, t = result["rsna_validation"], result["labelled_full_resolution"], result["feature_space"], result["latency"]
    return [
        f"## Model {_title(result['model'])}",
        "",
        "| measure | value | target |",
        "| --- | --- | --- |",
        f"| bone-age MAD, RSNA validation ({v['accepted']}/{v['films']} films, 100 px) | {v['bone_age_mad_months']} months | <= 10 |",
        f"| bone-age MAD, real_hands_labelled at full resolution ({f['accepted_full']} films) | {f['mad_full_resolution']} months | <= 12 |",
        f"| same films, their 100-px copies | {f['mad_copy_100px']} months | |",
        *_validation_draw_rows(f.get("validation_draws")),
        f"| largest difference full resolution vs 100-px copy | {f['max_full_vs_copy']} months | same answer |",
        f"| sex accuracy, all validation films | {v['sex_accuracy']:.1%} | |",
        f"| sex accuracy, bone age over 120 months ({v['older']} films) | {v['sex_accuracy_older']:.1%} | >= 80% |",
        f"| phantom galleries' renderer | {s.get('renderer', 'classic')} | |",
        f"| real controls: unaffected first | {s['real_unaffected_first']:.1%} | |",
        f"| real controls: flagged no close match | {s['real_flagged_no_close_match']:.1%} | |",
        f"| real controls: unaffected first or flagged | {s['real_unaffected_first_or_flagged']:.1%} | >= 90% |",
        f"| held-out synthetic, disorder in gallery and ranked first: flag off | {s['synthetic_flag_off_when_first']:.1%} | >= 80% |",
        f"| held-out synthetic top-1 ({s['synthetic_queries_in_gallery']} cases, gallery of {s['gallery_cases']}) | {s['synthetic_top1']:.1%} | |",
        f"| real controls: a disorder other than unaffected first at probability >= 0.5 | {s['real_confident_disorder']:.1%} "
        f"(highest {s['real_top_probability_max']:.2f}) | none |",
        *_full_resolution_rows(s.get("full_resolution")),
        f"| held-out synthetic ranked first right: median probability | {_or_dash(s.get('synthetic_first_median_probability'))} | |",
        f"| real vs synthetic controls: classifier AUC (0.5 = indistinguishable) | {s['real_vs_synthetic_controls']['auc']} | |",
        f"| analyze on a real film / bare forward (paired) | {t['ratio']}x ({t['analyze_ms']} / {t['bare_forward_ms']} ms) | |",
        "",
        "A flag that fires on nearly every case does not count: read the row 'unaffected first or flagged' with the flag-off row.",
        "",
        *_age_band_lines(v.get("by_age_band")),
        *_atlas_lines(result.get("atlas_second_site")),
        *_latency_lines(result.get("latency_against_baseline")),
        f"Most frequent top disorders for real controls: {s['real_top_disorders']}",
        "",
        "Refused in the model runs: " + ("; ".join(v["refused"] + f["refused"]) or "none"),
        "",
    ]


def _full_resolution_rows(sharp: dict | None) -> list[str]:
    """The real-control rows for the full-resolution films (real_hands_labelled and real_hands), the
    way a hospital uploads them; absent from results measured before they were added."""
    if not sharp:
        return []
    films = f"full-resolution real films ({sharp['real_controls']}: real_hands_labelled, real_hands)"
    return [
        f"| {films}: unaffected first or flagged | {sharp['real_unaffected_first_or_flagged']:.1%} | |",
        f"| {films}: a disorder other than unaffected first at probability >= 0.5 | {sharp['real_confident_disorder']:.1%} "
        f"(highest {sharp['real_top_probability_max']:.2f}) | none |",
    ]


def _validation_draw_rows(draws: dict | None) -> list[str]:
    """How unusual the labelled films' MAD is for a reader with the validation errors (`training.age_error`)."""
    if not draws:
        return []
    n = draws["films"]
    return [
        f"| {n} validation films drawn at random ({draws['draws']:,} draws): MAD median / 95th percentile "
        f"| {draws['median_mad']} / {draws['p95_mad']} months | |",
        f"| share of those draws at or above the labelled films' {draws['observed']} months | {draws['share_at_or_above_observed']:.1%} | |",
    ]


def _band_name(low: float, high: float | None) -> str:
    return f"{low:g}+" if high is None else f"{low:g}-{high:g}"


def _age_band_lines(bands: list[dict] | None) -> list[str]:
    if not bands:
        return []
    rows = [f"| {_band_name(b['low'], b['high'])} | {b['films']} | {b['mad']} | {b['bias']:+} |" for b in bands]
    return [
        "Bone-age error on the validation films by true bone age (bias: read minus truth; the ends of the range "
        "are pulled toward the middle):",
        "",
        "| bone age (months) | films | MAD (months) | bias (months) |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
    ]


def _atlas_lines(atlas: dict | None) -> list[str]:
    """The second site (`training.atlas_bone_age`); absent from results measured before it was added."""
    if not atlas:
        return []
    bands = [f"| {_band_name(b['low'], b['high'])} | {b['films']} | {b['mad']} | {b['bias']:+} |" for b in atlas["by_age_band"]]
    return [
        f"A second site at full resolution: the Digital Hand Atlas's {atlas['accepted']}/{atlas['films']} held-out films "
        f"(ids never trained or tuned on), against the mean of its two radiologists.",
        "",
        "| measure | value | target |",
        "| --- | --- | --- |",
        f"| bone-age MAD against the readers' mean | {atlas['bone_age_mad_months']} months | <= 9 |",
        f"| the two readers' own difference (mean absolute) | {atlas['readers_mad_months']} months | |",
        f"| bias (read minus readers' mean) | {atlas['bias_months']:+} months | |",
        f"| sex accuracy over {SEX_FROM_YEARS:g} years ({atlas['sex_films_over_10']} films, sex not given) | "
        f"{_or_dash(atlas['sex_accuracy_over_10'] and 100 * atlas['sex_accuracy_over_10'])}% | >= 85% |",
        "",
        "| readers' bone age (months) | films | MAD (months) | bias (months) |",
        "| --- | --- | --- | --- |",
        *bands,
        "",
    ]


def _or_dash(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _latency_lines(paired: dict | None) -> list[str]:
    if not paired:
        return []
    m, b = paired["model"], paired["baseline"]
    return [
        "Latency against the baseline model (`--baseline`), alternating film by film in one run (6 full-resolution films, median):",
        "",
        "| model | analyze | bare forward | analyze / bare forward |",
        "| --- | --- | --- | --- |",
        f"| this model | {m['analyze_ms']} ms | {m['bare_forward_ms']} ms | {m['ratio']}x |",
        f"| baseline model | {b['analyze_ms']} ms | {b['bare_forward_ms']} ms | {b['ratio']}x |",
        "",
        f"A full analysis with this model takes {paired['analyze_vs_baseline_analyze']}x the time of one with the baseline model.",
        "",
    ]
