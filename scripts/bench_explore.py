"""Benchmark: UMAP fit and transform on 3,000 and 30,000 cases, as the gallery's maps use them.

    python scripts/bench_explore.py [--sizes 3000 30000] [--dim 256] [--out benchmarks/explore.md]

Clustered unit vectors (one cluster per ~100 cases, like bench_index). Measured in one
process: the `import umap` cost (numba; cached JIT after the first run on a machine), the
fit (`index.explore.fit_umap`, cosine metric), transform of one query (warm) and of 100
queries, and the cached-map load; the baseline is a PCA to 2-D (numpy SVD) of the same data.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def clustered(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(max(10, n // 100), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, len(centres), n)] + rng.normal(scale=0.045, size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 30000])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "explore.md")
    args = parser.parse_args()
    start = time.perf_counter()
    import umap  # noqa: F401 - the import itself is timed (numba compiles)

    import_s = time.perf_counter() - start
    import pickle

    from index.explore import MapSettings, fit_umap

    rng = np.random.default_rng(0)
    # numba compiles UMAP's kernels on the first fit/transform in a process: measured apart
    start = time.perf_counter()
    warm, _ = fit_umap(clustered(500, args.dim, rng), MapSettings())
    warm.transform(clustered(5, args.dim, rng))
    jit_s = time.perf_counter() - start
    rows = []
    for n in args.sizes:
        data = clustered(n, args.dim, rng)
        queries = clustered(100, args.dim, rng)
        t = time.perf_counter()
        centred = data - data.mean(axis=0)
        np.linalg.svd(centred, full_matrices=False)
        pca_s = time.perf_counter() - t
        t = time.perf_counter()
        reducer, _ = fit_umap(data, MapSettings())
        fit_s = time.perf_counter() - t
        reducer.transform(queries)  # warm-up of the transform path at both batch sizes
        reducer.transform(queries[:1])
        one = statistics.median([_timed(lambda i=i, r=reducer, q=queries: r.transform(q[i : i + 1])) for i in range(10)])
        hundred = _timed(lambda r=reducer, q=queries: r.transform(q))
        blob = pickle.dumps(reducer)
        load_s = statistics.median([_timed(lambda b=blob: pickle.loads(b)) for _ in range(3)])
        rows.append((n, pca_s, fit_s, one, hundred, load_s, len(blob)))
        print(f"{n}: fit {fit_s:.1f} s", file=sys.stderr)
    lines = [
        "# Cohort maps: UMAP speed",
        "",
        f"Command: `python scripts/bench_explore.py {' '.join(sys.argv[1:])}`",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}); umap-learn, cosine metric, n_neighbors 15, one job; "
        f"{args.dim}-d clustered unit vectors. `import umap` in this process: **{import_s:.1f} s** (numba; the JIT cache makes later "
        "processes faster); first fit + transform of 500 points in a process (numba compiling): "
        f"**{jit_s:.1f} s**, excluded from the "
        "rows below. The service fits a gallery's map once and keeps it; queries are placed with `transform`.",
        "",
        "| cases | PCA 2-D baseline, s | UMAP fit, s | fit / PCA | transform 1 query (warm), ms | transform 100, ms per query | cached map load, ms | map file, MB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, pca_s, fit_s, one, hundred, load_s, size in rows:
        lines.append(
            f"| {n:,} | {pca_s:.2f} | {fit_s:.1f} | {fit_s / pca_s:.0f}x | {one * 1e3:.1f} | {hundred * 10:.2f} | {load_s * 1e3:.0f} | {size / 1e6:.1f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
