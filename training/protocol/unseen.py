"""Can a syndrome the model never saw be found after adding a handful of its cases?

GestaltMatcher's "rare" setting on a real gallery: the frequent (training) disorders'
gallery cases plus `n` cases of each unseen disorder are added to a fresh gallery (no
retraining), then the remaining cases of the unseen disorders, from other patients, are
queried. The rank of the true disorder among all gallery disorders gives top-k accuracy,
macro-averaged over disorders; several random draws give its spread. Frequent test cases
are queried against the same gallery (F -> F+R), and the random-ranking expectation
k / (number of disorders) is reported beside them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from index.catalogue import Disorder
from index.query import query
from index.store import Gallery, NewCase
from matcher.model import Bone2GeneModel
from matcher.rank import DEFAULT_RULE, RankingRule
from training.protocol.encoders import embed_films
from training.protocol.markdown import frame_table
from training.protocol.metrics import KS
from training.protocol.splits import EvaluationError, patient_split


def new_syndrome_experiment(
    embeddings: np.ndarray,
    table: pd.DataFrame,
    rare: Sequence[str],
    n_added: Sequence[int] = (1, 3, 5),
    draws: int = 10,
    seed: int = 0,
    gallery_fraction: float = 0.5,
    rule: RankingRule = DEFAULT_RULE,
) -> pd.DataFrame:
    """One row per (draw, n, setting, disorder): top-k hits of that disorder's queries, ranked by `rule`.

    `table` needs `disorder`, `patient_id`, `sex`, `age_months`; `embeddings` are the
    model's unit vectors in the same order.
    """
    rng = np.random.default_rng(seed)
    table = table.reset_index(drop=True)
    is_rare = table["disorder"].isin(rare).to_numpy()
    frequent = table[~is_rare]
    rows = []
    for draw in range(draws):
        in_gallery = np.zeros(len(table), bool)
        in_gallery[frequent.index] = patient_split(frequent["patient_id"].to_numpy(), gallery_fraction, rng)
        for n in n_added:
            added = np.zeros(len(table), bool)
            for disorder in rare:
                members = table.index[table["disorder"] == disorder]
                patients = table.loc[members, "patient_id"].unique()
                chosen = rng.choice(patients, min(n, len(patients) - 1), replace=False)
                # one case per chosen patient; the other patients' cases are the queries
                for patient in chosen:
                    added[rng.choice(members[table.loc[members, "patient_id"] == patient])] = True
            with tempfile.TemporaryDirectory() as tmp:
                gallery = Gallery.create(Path(tmp) / "g", "experiment", embeddings.shape[1])
                gallery.add_disorders([Disorder(id=d, name=f"{d} (experiment)") for d in sorted(table["disorder"].unique())])
                members = np.flatnonzero(in_gallery | added)
                gallery.add_cases(
                    [
                        NewCase(
                            embeddings[i],
                            table.at[i, "sex"],
                            float(table.at[i, "age_months"]),
                            table.at[i, "disorder"],
                            patient_id=str(table.at[i, "patient_id"]),
                            case_id=f"c{i}",
                        )
                        for i in members
                    ],
                    "experiment",
                )
                gallery_patients = set(table.loc[members, "patient_id"])
                queries = [i for i in range(len(table)) if table.at[i, "patient_id"] not in gallery_patients]
                for i in queries:
                    result = query(gallery, embeddings[i], top_k=1, rule=rule)
                    rank = next(d.rank for d in result.disorders if d.label == table.at[i, "disorder"])
                    setting = "rare (R -> F+R)" if is_rare[i] else "frequent (F -> F+R)"
                    rows.append(
                        {
                            "draw": draw,
                            "n_added": n,
                            "setting": setting,
                            "disorder": table.at[i, "disorder"],
                            "rank": rank,
                            "disorders_in_gallery": len(result.disorders),
                        }
                    )
                gallery.close()
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Macro top-k per (setting, n_added): mean and SD over draws, with the random expectation."""
    records = []
    for (setting, n), part in results.groupby(["setting", "n_added"]):
        per_draw: dict[int, list[float]] = {k: [] for k in KS}
        for _, draw in part.groupby("draw"):
            for k in KS:
                per_draw[k].append(draw.groupby("disorder")["rank"].apply(lambda r, k=k: float(np.mean(r <= k))).mean())
        n_disorders = int(part["disorders_in_gallery"].iloc[0])
        ks = [k for k in KS if k < n_disorders]  # k at or beyond the gallery's disorders finds every one
        record = {"setting": setting, "cases added per unseen disorder": n, "queries per draw": int(len(part) / part["draw"].nunique())}
        for k in ks:
            record[f"top-{k}"] = f"{100 * np.mean(per_draw[k]):.1f} ± {100 * np.std(per_draw[k]):.1f}"
            record[f"random top-{k}"] = f"{100 * min(1.0, k / n_disorders):.1f}"
        records.append(record)
    return pd.DataFrame(records)


def unseen_disorders(in_cohort: set[str], listed: Sequence[str], trained: set[str]) -> list[str]:
    """The cohort's disorders the model never trained on: those its provenance lists as held out,
    and (where the model names its training disorders) any it does not name, such as a new syndrome's spec."""
    return sorted(d for d in in_cohort if d in set(listed) or (trained and d not in trained))


def per_disorder(results: pd.DataFrame, n_added: int) -> pd.DataFrame:
    """Top-k of each unseen disorder's queries (mean ± SD over draws) with `n_added` gallery cases:
    which disorders the space places and which it does not."""
    rare = results[(results["setting"] == "rare (R -> F+R)") & (results["n_added"] == n_added)]
    records = []
    for disorder, part in rare.groupby("disorder"):
        record: dict[str, object] = {"disorder": disorder, "queries per draw": int(len(part) / part["draw"].nunique())}
        for k in (1, 5):
            hits = part.groupby("draw")["rank"].apply(lambda r, k=k: float(np.mean(r <= k)))
            record[f"top-{k}"] = f"{100 * hits.mean():.1f} ± {100 * hits.std(ddof=0):.1f}"
        records.append(record)
    return pd.DataFrame(records)


def unseen_report(
    model_dir: Path, manifest: Path, draws: int = 10, seed: int = 8, device: str = "auto", workers: int = 0
) -> tuple[str, dict]:
    """The unseen-syndromes suite: the model's disorders held out of its training, added to galleries
    with 1, 3 and 5 cases, against an untrained encoder of the same architecture; Markdown and JSON."""
    from matcher.checkpoint import load_model
    from matcher.manifest import read_case_manifest

    model, card = load_model(model_dir)
    table = read_case_manifest(manifest)
    table = table[table["disorder"].notna()].reset_index(drop=True)
    held_out = unseen_disorders(set(table["disorder"]), card.provenance.get("held_out_disorders") or [], set(card.config.labels))
    if not held_out:
        raise EvaluationError(
            f"none of {manifest}'s disorders was held out of {model_dir}'s training (its provenance lists "
            f"{card.provenance.get('held_out_disorders') or 'none'}); train with `held_out` or give a cohort of those disorders"
        )
    torch.manual_seed(seed)
    untrained = Bone2GeneModel(card.config).eval()
    trained, accepted = embed_films(model, table["path"], table["sex"], device, workers)
    baseline, _ = embed_films(untrained, table["path"], table["sex"], device, workers)
    kept = table[accepted].reset_index(drop=True)
    sections = {}
    for name, vectors in (("model", trained), ("untrained encoder (baseline)", baseline)):
        for rule in (RankingRule.DENSITY, RankingRule.NEAREST):
            label = "density rule (default)" if rule == RankingRule.DENSITY else "nearest case (GestaltMatcher)"
            results = new_syndrome_experiment(vectors, kept, held_out, draws=draws, seed=seed, rule=rule)
            sections[f"{name}, {label}"] = summarise(results)
            if name == "model" and rule == RankingRule.DENSITY:
                sections["model, density rule, each unseen disorder with 3 cases added"] = per_disorder(results, 3)
    counts = kept["disorder"].value_counts()
    about = {
        "model": card.fingerprint[:12],
        "architecture": f"{card.config.backbone_name} at {card.config.input_size} px",
        "trained_disorders": len(card.config.labels),
        "held_out": held_out,
        "films": len(table),
        "accepted": len(kept),
        "cases_per_unseen_disorder": {d: int(counts.get(d, 0)) for d in held_out},
        "draws": draws,
        "seed": seed,
    }
    return _unseen_markdown(about, sections), {**about, "sections": {k: v.to_dict(orient="records") for k, v in sections.items()}}


def _unseen_markdown(about: dict, sections: dict[str, pd.DataFrame]) -> str:
    counts = ", ".join(f"{d} {n}" for d, n in about["cases_per_unseen_disorder"].items())
    lines = [
        "# Unseen syndromes added to the gallery without retraining",
        "",
        f"Model {about['model']} ({about['architecture']}, trained on synthetic cases of {about['trained_disorders']} disorders). "
        f"Unseen in training: {', '.join(about['held_out'])}. {about['films']} films, {about['accepted']} passed the quality gate; "
        f"cases per unseen disorder: {counts}.",
        "",
        "Each draw: half of the frequent disorders' patients form the gallery; n cases (from n different patients) of every unseen "
        "disorder are added; every case of a patient not in the gallery is a query. Top-k is the share of queries whose true "
        "disorder is ranked within k by the named rule, averaged over disorders (macro), mean ± SD over "
        f"{about['draws']} draws. Random ranking expects k / (disorders in the gallery).",
        "",
        "Rules (`matcher.rank`): the density rule (the default) scores a disorder by a kernel density over its cases, "
        "averaged so that a disorder with many gallery cases gets no extra chances. The nearest-case rule is GestaltMatcher's. "
        "Read the untrained encoder's rows with care: in a space that carries no information the density rule's averaging "
        "favours the disorders with few cases (the unseen ones), so its rare-setting numbers there are a prior, not a skill.",
        "",
    ]
    for name, summary in sections.items():
        lines += [f"## {name}", "", *frame_table(summary), ""]
    return "\n".join(lines)
