"""How far a rendered cohort's views are from RSNA development films', as the realism suite sees them.

    python experiments/2026-12-07-film-framing/view_statistics.py --shared ../shared build/film300s/manifest.csv [...]

For each cohort: 300 of its films and the first 300 RSNA development films (id % 20 == 10, never
reported on), each copied and standardised as the realism suite does (`training.protocol.realism`).
Prints the mean absolute difference of the two sets' mean views, and how well each of three simple
statistics of a view alone tells the two sets apart (univariate ROC AUC, folded to >= 0.5): the share of
the view above its mean, its 75th percentile, the mean of its brightest tenth.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from training.protocol.realism import cohort_films, source_films
from training.real_data import is_dev_id, read_labels


def statistics(views: np.ndarray) -> dict[str, np.ndarray]:
    flat = np.sort(views.reshape(len(views), -1), axis=1)
    n = flat.shape[1]
    return {"share above mean": (flat > 0).mean(1), "75th percentile": flat[:, 3 * n // 4], "brightest tenth": flat[:, -n // 10 :].mean(1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, required=True)
    parser.add_argument("manifests", type=Path, nargs="+")
    args = parser.parse_args()
    labels = read_labels(args.shared / "rsna_100px")
    ids = labels.loc[is_dev_id(labels["id"].to_numpy()), "id"].tolist()[:300]
    development = source_films(args.shared, [f"rsna:{i}" for i in ids]).views
    real = statistics(development)
    for manifest in args.manifests:
        views = cohort_films(manifest, 300, np.random.default_rng(2)).views
        cohort = statistics(views)
        y = np.r_[np.zeros(len(development)), np.ones(len(views))]
        parts = [f"mean-view difference {np.abs(views.mean(0) - development.mean(0)).mean():.3f}"]
        for name in real:
            auc = roc_auc_score(y, np.r_[real[name], cohort[name]])
            parts.append(f"{name} {max(auc, 1 - auc):.3f} ({np.median(real[name]):.3f} / {np.median(cohort[name]):.3f})")
        print(f"{manifest}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
