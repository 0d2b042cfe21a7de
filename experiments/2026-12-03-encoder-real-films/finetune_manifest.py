"""A fine-tuning manifest that teaches the encoder what real films look like.

The bundled encoder learnt its disorder space on crisp 512-px phantoms. Real films in our hands
are 100-px copies; upsampled to the encoder's input they are blurred far beyond any phantom, and
the encoder tells them apart from phantom controls perfectly (classifier AUC 1.0). Measured on
200 development films (2026-12-03): against phantoms exported the same way
(domain-randomised, reduced to a 100-px film view) that AUC falls to 0.83, and the encoder
reads such a film copy's disorder only a quarter of the time (`real_dev_eval`
measures the latter for any model). So the manifest
holds three parts, all in our case-manifest layout (`matcher.manifest`), for `bone2gene train`:

1. the phantoms of a synthetic cohort, as rendered (their masks kept);
2. `copies` film copies of each phantom: a random real-looking export (`training.domain`)
   reduced to a 100-px film view as the RSNA copies were made, same patient, same disorder, so
   that the encoder must read a disorder through the blur and cannot use the blur itself;
3. real RSNA films from the training split as "unaffected" controls (children referred for
   bone-age assessment: no diagnosis, most without a skeletal dysplasia), with bone age and sex.

Validation films (`training.real_data.is_validation_id`), the development films (`is_dev_id`, same module)
and the reported full-resolution ids never enter it. RSNA gives no chronological age: the bone age
stands in for `age_months`.
"""

from __future__ import annotations

import os
from collections.abc import Set
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from matcher.manifest import ManifestError
from training.domain import DomainConfig, film_copy
from training.real_data import is_dev_id, is_validation_id, read_labels


def training_split_films(labels: pd.DataFrame, exclude: Set[int]) -> pd.DataFrame:
    """Rows of an RSNA `labels.csv` that no report or choice reads: neither validation, development
    nor in `exclude` (the reported films). What an encoder fine-tune or a gallery may hold."""
    ids = labels["id"].to_numpy()
    return labels[~is_validation_id(ids) & ~is_dev_id(ids) & ~labels["id"].isin(list(exclude))]


@dataclass(frozen=True)
class FineTuneManifestConfig:
    cohort: Path  # a synthetic cohort folder with manifest.csv (and masks)
    rsna: Path  # an RSNA folder: labels.csv, images/<id>.png
    out: Path  # the folder the manifest and the film copies go to
    copies: int = 1
    real_films: int = 2000
    exclude_ids: frozenset[int] = frozenset()  # reported elsewhere (real_hands_labelled)
    seed: int = 0
    domain: DomainConfig = field(default_factory=DomainConfig)
    workers: int = 0


def _write_film_copy(job: tuple[str, str, str, int, DomainConfig]) -> None:
    image_path, mask_path, out_path, seed, domain = job
    cv2.imwrite(out_path, film_copy(Path(image_path), Path(mask_path), seed, domain))


def film_copies(config: FineTuneManifestConfig, phantoms: pd.DataFrame) -> pd.DataFrame:
    """Write `config.copies` film copies per phantom under `out/film_copies`; their manifest rows."""
    folder = config.out / "film_copies"
    folder.mkdir(parents=True, exist_ok=True)
    rows, jobs = [], []
    for copy in range(config.copies):
        for i, case in enumerate(phantoms.itertuples(index=False)):
            name = f"{case.case_id}-film{copy}.png"
            seed = config.seed * 1_000_003 + copy * 100_003 + i
            jobs.append((str(config.cohort / case.image), str(config.cohort / case.mask), str(folder / name), seed, config.domain))
            rows.append(
                {
                    **case._asdict(),
                    "image": f"film_copies/{name}",
                    "case_id": f"{case.case_id}-film{copy}",
                    "mask": "",
                    "source": "film-copy",
                }
            )
    with ProcessPoolExecutor(config.workers or os.cpu_count() or 1) as pool:
        list(pool.map(_write_film_copy, jobs, chunksize=32))
    return pd.DataFrame(rows)


def real_controls(config: FineTuneManifestConfig) -> pd.DataFrame:
    """`config.real_films` training-split RSNA films (seeded draw) as 'unaffected' rows."""
    usable = training_split_films(read_labels(config.rsna), config.exclude_ids)
    if config.real_films > len(usable):
        raise ManifestError(
            f"{config.real_films} real films asked for, but {config.rsna} has {len(usable)} training-split films "
            f"(validation, development and reported ids are kept out); ask for at most {len(usable)} (--real-films)"
        )
    drawn = usable.sample(config.real_films, random_state=config.seed).sort_values("id")
    return pd.DataFrame(
        {
            "image": [str((config.rsna / "images" / f"{i}.png").resolve()) for i in drawn["id"]],
            "case_id": [f"rsna-{i}" for i in drawn["id"]],
            "patient_id": [f"rsna-{i}" for i in drawn["id"]],
            "sex": np.where(drawn["male"], "M", "F"),
            "age_months": drawn["boneage"].astype(float).to_numpy(),
            "disorder": "unaffected",
            "gene": "",
            "bone_age_months": drawn["boneage"].astype(float).to_numpy(),
            "source": "rsna-100px",
            "split": "train",
            "mask": "",
        }
    )


def write_finetune_manifest(config: FineTuneManifestConfig) -> Path:
    """Phantoms + their film copies + real controls as `out/manifest.csv` (phantom image paths relative to it)."""
    phantoms = pd.read_csv(config.cohort / "manifest.csv", dtype=str, keep_default_na=False)
    if "mask" not in phantoms.columns:
        raise ManifestError(f"{config.cohort}/manifest.csv has no mask column; film copies need the phantoms' masks")
    real = real_controls(config)  # before any file is written: a count it cannot meet fails first
    config.out.mkdir(parents=True, exist_ok=True)
    copies = film_copies(config, phantoms)
    relative = os.path.relpath(config.cohort.resolve(), config.out.resolve())
    originals = phantoms.assign(
        image=[f"{relative}/{p}" for p in phantoms["image"]], mask=[f"{relative}/{p}" for p in phantoms["mask"]], source="phantom"
    )
    table = pd.concat([originals, copies, real], ignore_index=True)
    path = config.out / "manifest.csv"
    table.to_csv(path, index=False)
    return path
