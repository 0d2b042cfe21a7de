"""`trainer: landmarks`: the hand landmark network trained on real annotated films and phantoms.

Each epoch shows every training atlas film `dha_repeats` times, every RSNA keypoint film once and
`phantom_films` phantoms, each as a freshly augmented view (`training.landmark_augment`). The loss
covers the points a film knows (`matcher.landmark_net.heatmap_loss`), so a film with 20 of the
37 points teaches those 20. A film annotated in a foreign scheme named in `foreign_schemes`
teaches that scheme's own channels, not the atlas's; a run can start from a trained landmark
model (`start_from`, `training.landmark_start`). Atlas films are held out by id
(`training.landmark_data.dha_split`) and never trained on; neither are the films of `reported`. A checkpoint after every epoch lets
`--resume` continue a run; the model is written to `out/model` at the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from matcher.hand_scheme import ATLAS_SCHEME
from matcher.landmark_files import read_landmark_card, save_landmark_model
from matcher.landmark_net import LandmarkNetConfig, heatmap_loss, heatmap_targets
from matcher.progress import progress_bar
from training.distributed import pick_device
from training.landmark_augment import ViewAugment, training_view
from training.landmark_data import LandmarkFilm, dha_films, dha_split, known_fraction, phantom_films, rsna_keypoint_films
from training.landmark_start import started_network
from training.schedule import fast_forward


@dataclass(kw_only=True)
class LandmarkRun:
    path_fields: ClassVar[tuple[str, ...]] = ("out", "dha", "rsna", "phantoms", "reported", "start_from")
    required_hint: ClassVar[str] = "the run folder and the Digital Hand Atlas folder"

    out: Path
    dha: Path  # the atlas: labels.csv with 37 points, images/<id>.jpg
    rsna: Path | None = None  # rsna_100px with keypoints.csv (20 points, all ages)
    phantoms: Path | None = None  # a rendered PNG cohort (`bone2gene synth`): the ray points of every phantom
    start_from: Path | None = None  # a landmark model folder whose weights start the run (ImageNet otherwise)
    reported: Path | None = None  # a folder of films reported elsewhere: their ids (file stems) are never trained on
    phantom_films: int = 300  # phantoms per epoch, drawn from the cohort
    rsna_films: int = 0  # RSNA keypoint films per epoch, drawn from them (0: all)
    held_out_every: int = 4  # every k-th atlas id is held out
    dha_repeats: int = 4
    input_size: int = 384
    decoder_channels: int = 64
    foreign_schemes: tuple[str, ...] = ()  # annotation schemes with channels of their own (`LandmarkNetConfig`)
    read_size: int | None = None  # the view side the model reads films at in use (`LandmarkNetConfig`; None: input_size)
    low_resolution: float = 0.0  # the chance a view is made to look like an enlarged small copy (`ViewAugment`)
    sigma: float = 1.5  # of the target heatmaps, in cells
    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    imagenet: bool = True
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    resume: bool = False

    def __post_init__(self) -> None:
        for name in ("input_size", "read_size"):
            size = getattr(self, name)
            if size is not None and size % 32:
                raise ValueError(f"{name} {size} must be a multiple of 32 (the encoder's stride)")


class _Views(Dataset):
    def __init__(self, films: list[LandmarkFilm], order: np.ndarray, config: LandmarkNetConfig, seed: int, low_resolution: float) -> None:
        self.films, self.order, self.config, self.seed = films, order, config, seed
        self.augment = ViewAugment(low_resolution=low_resolution)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        film = self.films[self.order[i]]
        view, points = training_view(film.image, film.points, self.config.input_size, self.augment, np.random.default_rng([self.seed, i]))
        scheme = film.scheme if film.scheme in self.config.foreign_schemes else ATLAS_SCHEME
        return view[None], self.config.scheme_targets(points, scheme)


def _films(run: LandmarkRun, log: Callable[[str], object]) -> tuple[list[LandmarkFilm], list[LandmarkFilm], list[str]]:
    train_ids, held_out = dha_split(run.dha, run.held_out_every)
    atlas = dha_films(run.dha, train_ids)
    reported = {p.stem for p in run.reported.iterdir()} if run.reported is not None else set()
    rsna = rsna_keypoint_films(run.rsna, exclude=reported) if run.rsna is not None else []
    phantoms = phantom_films(run.phantoms, seed=run.seed) if run.phantoms is not None else []
    log(
        f"training films: {len(atlas)} atlas (held out: {len(held_out)}), {len(rsna)} RSNA "
        f"({100 * known_fraction(rsna):.0f}% of points known), {len(phantoms)} phantoms ({100 * known_fraction(phantoms):.0f}%)"
    )
    return atlas + rsna, phantoms, held_out


def _draw(rng: np.random.Generator, start: int, count: int, limit: int) -> np.ndarray:
    """`limit` of the indices start..start+count-1 (all of them when `limit` is 0 or more than there are)."""
    if not limit or limit >= count:
        return np.arange(start, start + count)
    return start + rng.choice(count, size=limit, replace=False)


def _epoch_order(real: int, atlas: int, phantoms: int, run: LandmarkRun, epoch: int) -> np.ndarray:
    """Indices into real + phantoms: the atlas films `dha_repeats` times, `rsna_films` of the other
    real films and `phantom_films` phantoms."""
    rng = np.random.default_rng([run.seed, epoch])
    order = [np.tile(np.arange(atlas), run.dha_repeats), _draw(rng, atlas, real - atlas, run.rsna_films)]
    if phantoms and run.phantom_films:
        order.append(_draw(rng, real, phantoms, run.phantom_films))
    return rng.permutation(np.concatenate(order))


def _started_from(start_from: Path | None) -> str | None:
    """The fingerprint of the model a run started from, for its provenance."""
    if start_from is None:
        return None
    return read_landmark_card(start_from).fingerprint[:12]


def train_landmarks(run: LandmarkRun, log: Callable[[str], object] = print, progress: bool = False) -> Path:
    from training.config_file import write_resolved

    run.out.mkdir(parents=True, exist_ok=True)
    write_resolved(run, "landmarks", run.out / "config.yaml")
    real, phantoms, held_out = _films(run, log)
    atlas = sum(f.source == "dha" for f in real)
    films = real + phantoms
    device = pick_device(run.device)
    torch.manual_seed(run.seed)
    config = LandmarkNetConfig(
        input_size=run.input_size, decoder_channels=run.decoder_channels, foreign_schemes=run.foreign_schemes, read_size=run.read_size
    )
    network = started_network(config, run.imagenet, run.start_from).to(device, memory_format=torch.channels_last)
    steps = len(_epoch_order(len(real), atlas, len(phantoms), run, 0)) // run.batch_size
    optimiser = torch.optim.AdamW(network.parameters(), lr=run.lr, weight_decay=run.weight_decay)
    total = steps * run.epochs  # a warm-up of at least 2 steps: torch's one-cycle divides by zero on a shorter one
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=run.lr, total_steps=total, pct_start=min(0.5, max(0.1, 2 / total)))
    checkpoint, history, start = run.out / "checkpoint.pt", [], 0
    if run.resume and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        network.load_state_dict(state["network"])
        optimiser.load_state_dict(state["optimiser"])
        start, history = int(state["epoch"]), json.loads(state["history"])
        fast_forward(scheduler, start * steps)  # also under a longer plan than the checkpoint's
        log(f"resumed after epoch {start}")
    for epoch in range(start, run.epochs):
        order = _epoch_order(len(real), atlas, len(phantoms), run, epoch)
        loader = DataLoader(
            _Views(films, order, config, run.seed * 1000 + epoch, run.low_resolution),
            batch_size=run.batch_size,
            shuffle=False,
            drop_last=True,
            num_workers=run.workers,
            persistent_workers=False,
        )
        network.train()
        started, losses = time.perf_counter(), []
        with progress_bar(f"epoch {epoch + 1}/{run.epochs}", unit="batch", disable=not progress) as bar:
            for step, (views, points) in enumerate(loader, start=1):
                views = views.to(device, memory_format=torch.channels_last)
                targets = heatmap_targets(points.to(device), run.input_size, run.sigma)
                loss = heatmap_loss(network(views), targets)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                scheduler.step()
                losses.append(loss.item())
                bar(step, len(loader))
        history.append({"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4), "seconds": round(time.perf_counter() - started, 1)})
        log(json.dumps(history[-1]))
        state = {
            "network": network.state_dict(),
            "optimiser": optimiser.state_dict(),
            "epoch": epoch + 1,
            "history": json.dumps(history),
        }
        torch.save(state, checkpoint.with_suffix(".tmp"))
        checkpoint.with_suffix(".tmp").replace(checkpoint)
        pd.DataFrame(history).to_csv(run.out / "log.csv", index=False)
    provenance = {
        "trainer": "landmarks",
        "held_out_atlas_ids": held_out,
        "training_films": {"atlas": atlas, "rsna": len(real) - atlas, "phantoms": len(phantoms)},
        "epochs": run.epochs,
        "imagenet_start": run.imagenet and run.start_from is None,
        "started_from": _started_from(run.start_from),
        "history": history,
    }
    save_landmark_model(network.float().cpu(), run.out / "model", provenance)
    return run.out / "model"
