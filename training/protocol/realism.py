"""Can a small network tell a cohort's films from real ones? The realism suite.

Real films: the atlas's training ids and RSNA training films (never validation, development or
full-resolution ones), all unaffected. The cohort: any manifest (today's phantoms, warped real
hands). Every film is first brought to the RSNA copies' form (the whole film squashed to 100 x 100
px by nearest-neighbour sampling, as those copies were made), so that neither resolution, the frame's
shape nor the copies' aliasing can give a source away. For a cohort derived from real films (`derived_from`: `bone2gene synth-warped`) the real
films are exactly those it came from, one derived film per real hand, so that the two sides
share their sites and hands and only what the warp did can tell them apart. Equal numbers of each are read as 128-px views, each standardised to zero
mean and unit SD (so a global grey level gives nothing away), and split by hand (a warped film
and the real film it came from fall on the same side) into 70% to train a four-layer CNN and
30% to measure it on. The held-out ROC AUC comes with a bootstrap 95% interval: 0.5 is
indistinguishable, 1.0 perfectly told apart. The same run measures a baseline: two real sites
(RSNA training films, the atlas's training ids) against each other by the same network. Since two
real sites are told apart too, a phantom cohort is also read against a real site the network never
saw (`unseen_site_auc`): what sets phantoms apart from real films of any site, not from one site.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupShuffleSplit
from torch import nn

from training.protocol import markdown
from training.synth.warped_cohort import real_film_path, real_film_sexes

VIEW = 128
COMMON_SIZE = 100  # the RSNA copies: every film squashed to this square first
EPOCHS = 12
HELD_OUT = 0.3


@dataclass(frozen=True)
class Films:
    views: np.ndarray  # (N, VIEW, VIEW) float32
    groups: list[str]  # the hand each film shows
    paths: tuple[Path, ...] = ()
    sexes: tuple[str, ...] = ()

    def of_source(self, prefix: str) -> Films:
        """The films whose keys start with `prefix` ("dha:", "rsna:"): one real site."""
        keep = [i for i, g in enumerate(self.groups) if g.startswith(prefix)]
        pick = lambda values: tuple(values[i] for i in keep) if values else ()  # noqa: E731
        return Films(self.views[keep], [self.groups[i] for i in keep], pick(self.paths), pick(self.sexes))


def rsna_copy(image: np.ndarray) -> np.ndarray:
    """An 8-bit film as the RSNA copies were made: the whole film squashed to COMMON_SIZE px square by
    nearest-neighbour sampling (Pillow's NEAREST, the aspect ratio not kept). This reproduces the copies
    of the 14 full-resolution RSNA films exactly."""
    return np.asarray(Image.fromarray(image).resize((COMMON_SIZE, COMMON_SIZE), Image.Resampling.NEAREST))


def _view(image: np.ndarray) -> np.ndarray:
    """The film's RSNA-style copy (`rsna_copy`) read at VIEW px and standardised. Every source gets the
    same treatment, so that neither sharpness, the frame's shape nor the copies' aliasing tells one apart."""
    view = cv2.resize(rsna_copy(image).astype(np.float32), (VIEW, VIEW), interpolation=cv2.INTER_LINEAR)
    return (view - view.mean()) / max(float(view.std()), 1e-6)


def _atlas_keys(shared: Path) -> list[str]:
    """The atlas's training ids, as film keys."""
    from training.landmark_data import dha_split

    return [f"dha:{i}" for i in dha_split(shared / "dha")[0]]


def _rsna_keys(shared: Path, count: int, rng: np.random.Generator) -> list[str]:
    """`count` RSNA training films drawn at random, as film keys."""
    from training.real_data import training_labels

    pool = training_labels(shared / "rsna_100px")["id"].to_numpy()
    return [f"rsna:{i}" for i in rng.choice(pool, size=max(count, 0), replace=False)]


def _file_view(path: Path) -> np.ndarray:
    return _view(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))


def real_films(shared: Path, count: int, rng: np.random.Generator) -> Films:
    """`count` real unaffected films: the atlas's training ids first, then RSNA training films."""
    keys = _atlas_keys(shared)
    keys += _rsna_keys(shared, count - len(keys), rng)
    return source_films(shared, keys[:count])


def cohort_films(manifest: Path, count: int, rng: np.random.Generator) -> Films:
    """`count` films of a cohort manifest, grouped by patient; of a derived cohort, one changed film per real hand."""
    table = pd.read_csv(manifest)
    if "derived_from" in table.columns:
        table = table[table["disorder"] != "unaffected"]  # its controls are the real films themselves
        table = table.sample(frac=1.0, random_state=int(rng.integers(2**31))).drop_duplicates("derived_from")
        groups = table["derived_from"]
    else:
        groups = table["patient_id"].astype(str)
    chosen = rng.choice(len(table), size=min(count, len(table)), replace=False)
    table, groups = table.iloc[chosen], groups.iloc[chosen]
    paths = tuple(manifest.parent / p for p in table["image"])
    views = [_file_view(p) for p in paths]
    return Films(np.stack(views), [str(g) for g in groups], paths, tuple(table["sex"].astype(str)))


def source_films(shared: Path, keys: list[str]) -> Films:
    """Real films named by their keys ("dha:ID", "rsna:ID"), each its own group."""
    files = tuple(real_film_path(shared, k) for k in keys)
    views = [_file_view(p) for p in files]
    return Films(np.stack(views), list(keys), files, tuple(real_film_sexes(shared, list(keys))))


def _network() -> nn.Module:
    layers: list[nn.Module] = []
    channels = 1
    for width in (16, 32, 64, 64):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
        channels = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 1))


def _trained(x: np.ndarray, y: np.ndarray, seed: int) -> nn.Module:
    """The four-layer CNN trained on views `x` (N, 1, VIEW, VIEW) for labels `y` (1: the cohort), mirrored at random."""
    torch.manual_seed(seed)
    network, rng = _network(), np.random.default_rng(seed)
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-3)
    loss = nn.BCEWithLogitsLoss()
    for _ in range(EPOCHS):
        network.train()
        for batch in np.array_split(rng.permutation(len(x)), max(1, len(x) // 32)):
            views = torch.from_numpy(x[batch])
            if rng.random() < 0.5:
                views = views.flip(-1)
            optimiser.zero_grad()
            loss(network(views).squeeze(1), torch.from_numpy(y[batch])).backward()
            optimiser.step()
    return network.eval()


def _scored(network: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(network(torch.from_numpy(x)).squeeze(1)).numpy()


def _auc_with_interval(y: np.ndarray, scores: np.ndarray, seed: int) -> dict:
    """ROC AUC and its bootstrap 95% interval (1000 resamples)."""
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(1000):
        pick = rng.integers(len(y), size=len(y))
        if 0 < y[pick].sum() < len(pick):
            boot.append(roc_auc_score(y[pick], scores[pick]))
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"auc": round(float(roc_auc_score(y, scores)), 3), "interval": [round(float(low), 3), round(float(high), 3)]}


def held_out_auc(real: Films, other: Films, seed: int = 0) -> dict:
    """Train on 70% of the hands, score the other 30%: AUC with its bootstrap 95% interval."""
    x = np.concatenate([real.views, other.views])[:, None]
    y = np.concatenate([np.zeros(len(real.views)), np.ones(len(other.views))]).astype(np.float32)
    groups = np.array(real.groups + other.groups)
    train, test = next(GroupShuffleSplit(1, test_size=HELD_OUT, random_state=seed).split(x, y, groups))
    network = _trained(x[train], y[train], seed)
    return {**_auc_with_interval(y[test], _scored(network, x[test]), seed), "train": len(train), "held_out": len(test)}


def unseen_site_auc(seen: Films, unseen: Films, other: Films, seed: int = 0) -> dict:
    """Train on one real site (`seen`) against 70% of the cohort's hands, then set films of a real
    site the network never saw (`unseen`) against the cohort's other 30%. Near 0.5: the network only
    learnt "not the seen site", and the cohort passes as well as a real site it never saw; near 1.0:
    it found what sets the cohort apart from real films of any site."""
    y_other = np.ones(len(other.views), np.float32)
    train, test = next(GroupShuffleSplit(1, test_size=HELD_OUT, random_state=seed).split(other.views, y_other, np.array(other.groups)))
    x = np.concatenate([seen.views, other.views[train]])[:, None]
    y = np.concatenate([np.zeros(len(seen.views)), y_other[train]]).astype(np.float32)
    network = _trained(x, y, seed)
    x_test = np.concatenate([unseen.views, other.views[test]])[:, None]
    y_test = np.concatenate([np.zeros(len(unseen.views)), y_other[test]])
    return {**_auc_with_interval(y_test, _scored(network, x_test), seed), "train": len(x), "held_out": len(x_test)}


def two_sites(shared: Path, rng: np.random.Generator, seed: int = 0) -> dict:
    """The baseline measured in the same run: two real sites against each other, the atlas's training
    ids against as many RSNA training films, by the same network. Real films of one site are told
    from another's too; a cohort is read against that."""
    atlas = _atlas_keys(shared)
    return held_out_auc(source_films(shared, _rsna_keys(shared, len(atlas), rng)), source_films(shared, atlas), seed)


def space_auc(model_dir: Path, real: Films, other: Films, seed: int = 0) -> dict:
    """The same question in a model's feature space: a logistic model on the embeddings of the films
    the gate accepts, five folds that never split a hand (`index.cohort_stats.cross_validated_auc`)."""
    from index.cohort_stats import cross_validated_auc
    from matcher.checkpoint import load_model
    from training.protocol.encoders import embed_films

    model, card = load_model(model_dir)
    a, kept_a = embed_films(model, list(real.paths), list(real.sexes), "cpu", 0)
    b, kept_b = embed_films(model, list(other.paths), list(other.sexes), "cpu", 0)
    groups = np.array(
        [g for g, k in zip(real.groups, kept_a, strict=True) if k] + [g for g, k in zip(other.groups, kept_b, strict=True) if k]
    )
    y = np.r_[np.zeros(len(a), int), np.ones(len(b), int)]
    auc = cross_validated_auc(np.vstack([a, b]), y, groups, 5, seed)
    return {"model": card.fingerprint[:12], "auc": round(auc, 3), "real": len(a), "cohort": len(b)}


def realism_report(shared: Path, manifest: Path, count: int = 300, seed: int = 0, model_dir: Path | None = None) -> tuple[str, dict]:
    rng = np.random.default_rng(seed)
    other = cohort_films(manifest, count, rng)
    derived = "derived_from" in pd.read_csv(manifest, nrows=1).columns
    real = source_films(shared, other.groups) if derived else real_films(shared, len(other.views), rng)
    result = held_out_auc(real, other, seed)
    sites = two_sites(shared, rng, seed)
    data = {
        "cohort": str(manifest),
        "films_per_class": len(other.views),
        "real_are_the_sources": derived,
        **result,
        "two_real_sites": sites,
    }
    lines = [
        "# Real films against a cohort: can a small network tell them apart?",
        "",
        f"{len(other.views)} films of {manifest} against as many real unaffected films "
        + (
            "(the very films they were derived from, one derived film per real hand)"
            if derived
            else "(atlas training ids, RSNA training films)"
        )
        + f", {VIEW}-px standardised views, split by hand: a {EPOCHS}-epoch four-layer CNN trained on {result['train']} "
        f"films, measured on {result['held_out']} held out.",
        "",
        *markdown.table(
            ["cohort", "held-out AUC", "95% interval"],
            [
                [str(manifest), result["auc"], f"{result['interval'][0]}-{result['interval'][1]}"],
                [
                    f"baseline: RSNA training films against the atlas's training ids ({sites['train'] + sites['held_out']} films, two real sites)",
                    sites["auc"],
                    f"{sites['interval'][0]}-{sites['interval'][1]}",
                ],
            ],
        ),
    ]
    if not derived:
        unseen = data["unseen_site"] = unseen_site_auc(real.of_source("rsna:"), real.of_source("dha:"), other, seed)
        lines += [
            "",
            f"Trained on the RSNA films against {1 - HELD_OUT:.0%} of the cohort's hands, then the atlas's films (a site it never saw) "
            f"against the cohort's held-out films: AUC **{unseen['auc']}** ({unseen['interval'][0]}-{unseen['interval'][1]}; "
            "0.5: the cohort passes as well as an unseen real site).",
        ]
    if model_dir is not None:
        space = data["space"] = space_auc(model_dir, real, other, seed)
        lines += [
            "",
            f"In model {space['model']}'s feature space ({space['real']} real and {space['cohort']} cohort films the gate accepts; "
            f"a logistic model, five folds that never split a hand): AUC **{space['auc']}**.",
        ]
    shafts = _shaft_sets(shared, manifest, rng)
    if shafts:
        from training.protocol.shaft_profiles import shaft_lines

        data["shafts"] = {name: t.median().round(4).to_dict() | {"films": len(t)} for name, t in shafts.items()}
        lines += ["", *shaft_lines(shafts)]
    return "\n".join(lines), data


SHAFT_FILMS = 60


def _shaft_sets(shared: Path, manifest: Path, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Shaft measures of atlas training films and of up to SHAFT_FILMS cohort films (a derived cohort's: those from the atlas)."""
    from matcher.hand_measure import bundled_measurer
    from training.landmark_data import dha_split
    from training.protocol.shaft_profiles import measures_of

    measurer = bundled_measurer()
    if measurer is None:
        return {}
    table = pd.read_csv(manifest)
    if "derived_from" in table.columns:
        table = table[table["derived_from"].str.startswith("dha:") & (table["disorder"] != "unaffected")]
    table = table.iloc[rng.permutation(len(table))[:SHAFT_FILMS]]
    find = lambda image: measurer.landmarks_of(image).points  # noqa: E731
    real = [shared / "dha" / "images" / f"{i}.jpg" for i in dha_split(shared / "dha")[0]]
    return {
        "real (atlas training ids)": measures_of(real, find),
        str(manifest): measures_of([manifest.parent / p for p in table["image"]], find),
    }
