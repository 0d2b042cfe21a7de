"""A Markdown report comparing two cohorts of a gallery, with its figures beside it.

Sections: the cohorts (counts, sexes, ages), tightness of each against random gallery
subsets (permutation test), A vs B (distance distributions, classifier two-sample AUC
with a permutation p-value), a clustered heatmap of mean distances between the
disorders involved, and nearest-neighbour purity per disorder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from index.cohort_stats import compare, disorder_distances, neighbour_purity, tightness
from index.filters import Filters
from index.store import Gallery
from matcher.errors import Bone2GeneError


class ReportError(Bone2GeneError, ValueError):
    """A comparison that cannot be made; the message says why."""


def _describe(name: str, table: pd.DataFrame) -> str:
    sexes = ", ".join(f"{k} {v}" for k, v in table["sex"].value_counts().items())
    return (
        f"- **{name}**: {len(table)} cases from {table['patient_id'].nunique()} patients; {sexes}; age "
        f"{table['age_months'].min() / 12:.1f}-{table['age_months'].max() / 12:.1f} y; disorders: "
        + ", ".join(f"{k} ({v})" for k, v in table["disorder"].fillna("(undiagnosed)").value_counts().items())
    )


def _distance_histogram(comparison, stem: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    bins = np.linspace(0, max(comparison.distances_between.max(), 1e-6) * 1.05, 40)
    for values, label in (
        (comparison.distances_within_a, "within A"),
        (comparison.distances_within_b, "within B"),
        (comparison.distances_between, "A vs B"),
    ):
        ax.hist(values, bins=bins, alpha=0.5, density=True, label=label)
    ax.set_xlabel("cosine distance")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    hist_path = Path(f"{stem}_distances.png")
    fig.savefig(hist_path, dpi=200)
    plt.close(fig)
    return hist_path


def _disorder_heatmap(names: list[str], matrix: np.ndarray, stem: Path) -> Path:
    """The clustered heatmap of mean distances between disorders (written when there are two or more)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    heat_path = Path(f"{stem}_heatmap.png")
    if len(names) >= 2:
        condensed = squareform((matrix + matrix.T) / 2 - np.diag(np.diag(matrix)), checks=False)
        order = leaves_list(linkage(condensed, "average"))
        ordered = matrix[np.ix_(order, order)]
        fig, ax = plt.subplots(figsize=(0.42 * len(names) + 3, 0.42 * len(names) + 2.5))
        image = ax.imshow(ordered, cmap="viridis")
        ax.set_xticks(range(len(names)), [names[i] for i in order], rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), [names[i] for i in order], fontsize=7)
        fig.colorbar(image, ax=ax, label="mean cosine distance", shrink=0.8)
        fig.tight_layout()
        fig.savefig(heat_path, dpi=200)
        plt.close(fig)
    return heat_path


def write_comparison(gallery: Gallery, a: Filters, b: Filters, out: Path, permutations: int = 1000, seed: int = 0) -> Path:
    table_a, table_b = gallery.cases(a), gallery.cases(b)
    for name, table in (("A", table_a), ("B", table_b)):
        if len(table) < 4:
            raise ReportError(f"cohort {name} has {len(table)} cases; a comparison needs at least 4 in each")
    everything = gallery.cases()
    vec_all = gallery.vectors_of(everything["row"].tolist())
    vec_a, vec_b = gallery.vectors_of(table_a["row"].tolist()), gallery.vectors_of(table_b["row"].tolist())
    tight_a = tightness(vec_a, vec_all, permutations, seed)
    tight_b = tightness(vec_b, vec_all, permutations, seed + 1)
    comparison = compare(
        vec_a, vec_b, table_a["patient_id"].tolist(), table_b["patient_id"].tolist(), permutations=min(permutations, 200), seed=seed
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.with_suffix("")

    hist_path = _distance_histogram(comparison, stem)

    diagnosed = everything[everything["disorder"].notna()]
    labels = diagnosed["disorder"].astype(str).tolist()
    names, matrix = disorder_distances(gallery.vectors_of(diagnosed["row"].tolist()), labels)
    heat_path = _disorder_heatmap(names, matrix, stem)
    purity = neighbour_purity(gallery.vectors_of(diagnosed["row"].tolist()), labels, diagnosed["patient_id"].astype(str).tolist())

    def tight_line(name: str, t) -> str:
        return (
            f"| {name} | {t.cohort_size} | {t.observed:.4f} | {t.random_mean:.4f} ± {t.random_sd:.4f} | "
            f"{t.percentile:.1f} % | {t.p_value:.4f} |"
        )

    lines = [
        "# Cohort comparison",
        "",
        f"Gallery `{gallery.path}` (model {gallery.model_fingerprint[:12]}, {len(everything)} cases). "
        f"A = `{a.to_dict()}`, B = `{b.to_dict()}`.",
        "",
        _describe("A", table_a),
        _describe("B", table_b),
        "",
        "## Is each cohort tighter than random gallery subsets of its size?",
        "",
        f"Mean pairwise cosine distance against {permutations} random subsets of the whole gallery; p = (1 + subsets at least as tight) / (1 + subsets).",
        "",
        "| cohort | cases | observed | random (mean ± SD) | random subsets at least as tight | p |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        tight_line("A", tight_a),
        tight_line("B", tight_b),
        "",
        "## A vs B",
        "",
        f"Mean cosine distance within A {comparison.within_a:.4f}, within B {comparison.within_b:.4f}, between A and B {comparison.between:.4f}.",
        "",
        f"Classifier two-sample test: logistic regression on the embeddings, {comparison.folds}-fold cross-validation with each "
        f"patient's cases in one fold: **AUC {comparison.auc:.3f}**, permutation p = {comparison.auc_p_value:.4f} "
        f"({comparison.permutations} label permutations between patients). AUC near 0.5 means the cohorts cannot be told apart.",
        "",
        f"![distance distributions]({hist_path.name})",
        "",
        "## Distances between disorders",
        "",
        f"![clustered heatmap]({heat_path.name})" if len(names) >= 2 else "(fewer than two diagnosed disorders)",
        "",
        "## Nearest-neighbour purity",
        "",
        "Share of each case's 5 nearest cases (other patients only) with the same disorder, averaged per disorder.",
        "",
        "| disorder | cases | purity |",
        "| --- | ---: | ---: |",
        *[f"| {d} | {labels.count(d)} | {p:.3f} |" for d, p in sorted(purity.items(), key=lambda kv: -kv[1])],
        "",
    ]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
