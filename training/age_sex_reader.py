"""The age and sex reader's trainer (`trainer: age_sex_reader`): bone age and sex on real films.

Bone age and sex are learnt on the RSNA 100-px films (Deeplasia's task: sex as input, z-scored
age, its head; plus the sex logit), on the film view (`matcher.film_view`), so that a
full-resolution film and its 100-px copy give the same answer (`training.joint` does the
steps). The ids of `reported` are never trained on; the validation films are fixed by id
(`training.real_data.is_validation_id`). At the end the BatchNorm statistics are re-estimated
on training films (`training.age_sex_reader_finish`) and the model is saved as `out/finished`;
`bone2gene model attach-reader MODEL out/finished --half` makes it a model's reader.

With a `synthetic` section the same network also learns the disorders of phantoms after
domain randomisation (`training.domain`): one joint model (`out/model`), not a reader. Such
a model was not bundled: at 100 px its disorder space stayed far below the encoder's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from matcher.checkpoint import load_model, save_model
from matcher.progress import progress_bar
from training.age_sex_reader_finish import finish_age_sex_reader
from training.config_file import write_resolved
from training.domain import synthetic_views
from training.joint import JointConfig, train_joint
from training.joint_data import JointData
from training.real_data import load_rsna_100px, reported_ids
from training.synth.cohort import CohortConfig, generate_cohort
from training.train import TrainConfigError


@dataclass(frozen=True)
class SyntheticSource:
    """Phantoms beside the real films: a cohort rendered once into `out/../cohort`, then `copies`
    domain-randomised film views of each (cached beside it)."""

    n: int = 8000
    copies: int = 2
    image_size: int = 512
    held_out: tuple[str, ...] = ("trps1", "ellis_van_creveld", "holt_oram", "acromesomelic_maroteaux")


@dataclass(kw_only=True)
class AgeSexReaderConfig(JointConfig):
    path_fields: ClassVar[tuple[str, ...]] = ("out", "init", "init_checkpoint", "rsna", "reported")
    required_hint: ClassVar[str] = "the run folder and the folder of the RSNA 100-px films"

    rsna: Path  # the RSNA 100-px films: labels.csv and their images
    reported: Path | None = None  # a folder of films reported elsewhere (its labels.csv ids are never trained on)
    finish_films: int = 4000  # training films that re-estimate the BatchNorm statistics at the end (0: keep them)
    synthetic: SyntheticSource | None = None  # phantoms as well: a joint model, not a reader


def _synthetic_views(source: SyntheticSource, work: Path, seed: int, progress: bool) -> tuple[np.ndarray, pd.DataFrame]:
    cohort = work / "cohort"
    if not (cohort / "manifest.csv").is_file():
        with progress_bar("rendering", unit="image", disable=not progress) as bar:
            generate_cohort(CohortConfig(n=source.n, out=cohort, seed=seed, size=source.image_size), bar)
    cache, table_path = work / f"synthetic_views_{source.copies}.npz", work / f"synthetic_views_{source.copies}.csv"
    if cache.is_file():
        return np.load(cache)["views"], pd.read_csv(table_path)
    views, table = synthetic_views(cohort / "manifest.csv", copies=source.copies, seed=seed)
    np.savez(cache, views=views)
    table.to_csv(table_path, index=False)
    return views, table


def _data(config: AgeSexReaderConfig, progress: bool) -> JointData:
    work = config.out.parent  # the films' cache is shared by the runs of one work folder
    real = load_rsna_100px(config.rsna, cache=work / "rsna_100px.npz")
    reported = reported_ids(config.reported) if config.reported is not None else frozenset()
    if config.synthetic is None:
        if config.init is None:
            raise TrainConfigError("an age and sex reader starts from `init` (a model directory whose labels and weights it keeps)")
        return JointData.real_only(real, load_model(config.init)[0].config.labels, reported)
    views, table = _synthetic_views(config.synthetic, work, config.seed, progress)
    return JointData.build(views, table, real, config.synthetic.held_out, reported, seed=config.seed)


def train_age_sex_reader(config: AgeSexReaderConfig, log: Callable[[str], object] = print, progress: bool = False) -> Path:
    """Train; returns the finished reader's directory (`out/finished`), or the joint model's (`out/model`)."""
    write_resolved(config, "age_sex_reader", config.out / "config.yaml")
    started = time.perf_counter()
    data = _data(config, progress)
    log(
        f"synthetic {len(data.synth_train)} train / {len(data.synth_val)} val; real {len(data.real_train)} train / "
        f"{len(data.real_val)} val; prepared in {time.perf_counter() - started:.0f} s"
    )
    joint = config if config.synthetic is not None else replace(config, synthetic_batch=0)
    model_dir = train_joint(joint, data, log=log)
    if config.synthetic is not None or config.finish_films == 0:
        return model_dir
    model, card = load_model(model_dir)
    report = finish_age_sex_reader(model, data, films=config.finish_films)
    log(json.dumps({"finished": report.recalibrated, "as_trained": report.as_trained}))
    finished = config.out / "finished"
    save_model(model, finished, provenance={**card.provenance, **report.provenance()})
    return finished
