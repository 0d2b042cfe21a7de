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

from index.catalogue import Disorder
from index.query import query
from index.store import Gallery, NewCase
from matcher.rank import DEFAULT_RULE, RankingRule

KS = (1, 5, 10)


def _patients_split(table: pd.DataFrame, rng: np.random.Generator, fraction: float) -> np.ndarray:
    patients = table["patient_id"].unique()
    chosen = set(rng.choice(patients, round(fraction * len(patients)), replace=False))
    return table["patient_id"].isin(chosen).to_numpy()


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
        in_gallery[frequent.index] = _patients_split(frequent, rng, gallery_fraction)
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
        per_draw = {k: [] for k in KS}
        for _, draw in part.groupby("draw"):
            for k in KS:
                per_draw[k].append(draw.groupby("disorder")["rank"].apply(lambda r, k=k: float(np.mean(r <= k))).mean())
        n_disorders = int(part["disorders_in_gallery"].iloc[0])
        record = {"setting": setting, "cases added per unseen disorder": n, "queries per draw": int(len(part) / part["draw"].nunique())}
        for k in KS:
            record[f"top-{k}"] = f"{100 * np.mean(per_draw[k]):.1f} ± {100 * np.std(per_draw[k]):.1f}"
            record[f"random top-{k}"] = f"{100 * min(1.0, k / n_disorders):.1f}"
        records.append(record)
    return pd.DataFrame(records)
