"""The feature space on development films, for choosing between encoders (`dev_real_space.py`).

`training.real_eval` reports on the RSNA validation films (id % 20 == 0); nothing may be chosen
there. Choices are made here instead, on the development films (id % 20 == 10,
`training.real_data.is_dev_id`: never trained on by an encoder fine-tune), against
phantom galleries of other seeds than the report's:

- `training.real_eval.space_figures` per (gallery seed, query seed): real controls "unaffected"
  first or flagged, held-out synthetic top-1 and the flag on its right answers, real vs synthetic
  controls;
- film copies of the query phantoms (a real-looking export reduced to a 100-px film view,
  `training.domain`) against the crisp gallery: top-1, and how often a disorder is read as
  "unaffected". A model that learnt "looks like a real film, so unaffected" would call real
  patients with a dysplasia unaffected; this is the nearest measure of that we have without real
  films with diagnoses.
"""

from __future__ import annotations

import tempfile
from collections.abc import Set
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from finetune_manifest import training_split_films

from matcher.analysis import Analyzer
from matcher.model import Bone2GeneModel
from matcher.rank import DEFAULT_RULE, LabelIndex
from matcher.score_features import Neighbourhood
from training.domain import DomainConfig, film_copy
from training.real_data import is_dev_id, read_labels
from training.real_eval import analyse_films, embed_images, space_figures, synthetic_embeddings

DEV_SEEDS = ((5001, 5002), (5003, 5004))  # (gallery, queries): neither the report's (2027, 4049) nor any training cohort's
REAL_GALLERY_SEED = 7001  # the draw of training-split films that join a gallery as real controls


def dev_film_embeddings(model: Bone2GeneModel, rsna: Path, exclude: Set[int], limit: int | None = None) -> list[np.ndarray]:
    """Embeddings of the development films the gate accepts (all of them, or the first `limit` by id)."""
    labels = read_labels(rsna)
    dev = labels[is_dev_id(labels["id"].to_numpy()) & ~labels["id"].isin(list(exclude))].sort_values("id")
    if limit is not None:
        dev = dev.head(limit)
    _, _, embeddings, _ = analyse_films(Analyzer(model), [rsna / "images" / f"{i}.png" for i in dev["id"]], dev["male"].to_numpy())
    return [e for e in embeddings if e is not None]


def real_control_cases(model: Bone2GeneModel, rsna: Path, exclude: Set[int], n: int, seed: int = REAL_GALLERY_SEED) -> pd.DataFrame:
    """Gallery rows for `n` training-split films (`training_split_films`, a seeded draw) labelled
    "unaffected", with source "rsna": real controls beside the phantoms, as a hospital's gallery
    would hold them. The films the gate refuses are left out."""
    usable = training_split_films(read_labels(rsna), exclude)
    if n > len(usable):
        raise ValueError(f"{n} real gallery films asked for, but {rsna} has {len(usable)} training-split films; ask for at most that")
    films = usable.sample(n, random_state=seed).sort_values("id")
    _, _, embeddings, _ = analyse_films(Analyzer(model), [rsna / "images" / f"{i}.png" for i in films["id"]], films["male"].to_numpy())
    rows = pd.DataFrame(
        {"patient_id": [f"rsna-{i}" for i in films["id"]], "disorder": "unaffected", "embedding": embeddings, "source": "rsna"}
    )
    return rows[[e is not None for e in embeddings]].reset_index(drop=True)


def film_copy_queries(model: Bone2GeneModel, gallery: pd.DataFrame, queries: pd.DataFrame, queries_root: Path, seed: int) -> dict:
    """Film copies of the query phantoms (images under `queries_root`; copy k drawn with seed
    `seed * 1000 + k`) against the crisp gallery's embeddings: does the disorder survive the export?
    Both tables come from `training.real_eval.synthetic_embeddings`."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        copies = [f"copy-{k}.png" for k in range(len(queries))]
        for k, (image, mask) in enumerate(zip(queries["image"], queries["mask"], strict=True)):
            view = film_copy(queries_root / image, queries_root / mask, seed * 1000 + k, DomainConfig())
            cv2.imwrite(str(root / copies[k]), view)
        embedded = embed_images(model, root, copies, list(queries["sex"]))
    query_kept = np.array([e is not None for e in embedded])
    query_vectors = np.stack([e for e in embedded if e is not None]).astype(np.float32)
    vectors = np.stack(gallery["embedding"]).astype(np.float32)
    index = LabelIndex.of(gallery["disorder"].astype(str).tolist())
    truth = queries["disorder"].astype(str).to_numpy()[query_kept]
    present = np.isin(truth, index.names)
    neighbourhood = Neighbourhood.from_similarities(query_vectors[present] @ vectors.T, index, DEFAULT_RULE)
    top = np.array(index.names)[neighbourhood.top()]
    affected = truth[present] != "unaffected"
    return {
        "film_copies_accepted": int(query_kept.sum()),
        "film_copy_top1": round(float((top == truth[present]).mean()), 4),
        "film_copy_disorder_read_unaffected": round(float((top[affected] == "unaffected").mean()), 4),
    }


def development_space(
    model: Bone2GeneModel,
    rsna: Path,
    exclude: Set[int],
    limit: int | None = None,
    gallery_n: int = 300,
    query_n: int = 200,
    real_gallery_n: int = 0,
) -> dict:
    """Every development figure, per pair of seeds in DEV_SEEDS; each pair's phantoms are drawn
    and embedded once, for both the feature space and the film copies. `real_gallery_n` real
    controls (`real_control_cases`) join every phantom gallery."""
    real = dev_film_embeddings(model, rsna, exclude, limit)
    real_cases = real_control_cases(model, rsna, exclude, real_gallery_n) if real_gallery_n else None
    out: dict = {"dev_films_accepted": len(real), "real_gallery_controls": 0 if real_cases is None else len(real_cases)}
    for gallery_seed, query_seed in DEV_SEEDS:
        with tempfile.TemporaryDirectory() as tmp:
            gallery = synthetic_embeddings(model, Path(tmp), gallery_n, gallery_seed)
            if real_cases is not None:
                gallery = pd.concat([gallery, real_cases], ignore_index=True)
            queries = synthetic_embeddings(model, Path(tmp), query_n, query_seed)
            figures = space_figures(gallery, queries, real)
            figures.update(film_copy_queries(model, gallery, queries, Path(tmp) / f"cohort-{query_seed}", query_seed))
        out[f"gallery_{gallery_seed}_queries_{query_seed}"] = figures
    return out


def dev_summary(result: dict) -> pd.DataFrame:
    """One row per seed pair with the figures the decision reads."""
    keys = [
        "real_unaffected_first",
        "real_unaffected_first_or_flagged",
        "synthetic_top1",
        "synthetic_flag_off_when_first",
        "film_copy_top1",
        "film_copy_disorder_read_unaffected",
    ]
    rows = {
        name: {k: figures[k] for k in keys} | {"real_vs_controls_auc": figures["real_vs_synthetic_controls"]["auc"]}
        for name, figures in result.items()
        if name.startswith("gallery_")
    }
    return pd.DataFrame(rows).T
