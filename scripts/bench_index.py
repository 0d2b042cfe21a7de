"""Benchmark: gallery search at 1e4, 1e5 and 1e6 cases, against numpy brute force in the same run.

    python scripts/bench_index.py [--sizes 10000 100000 1000000] [--dim 256] [--out benchmarks/index.md]

Embeddings resemble real ones: a mixture of tight disorder clusters (one cluster per
~100 cases, unit vectors around random centres, within-cluster cosine ~0.7), queries drawn
from the same clusters but not in the gallery. For each size: build time and bytes per
case of each index; search latency at batch 1 (one query, as a clinician's request) and
batch 100 (evaluation, ingest); recall@10 of each ANN index against the exact result.
Search goes through `index.vectors.VectorIndex`, i.e. exactly what the gallery uses
(IDMap2 over the factory string, one OpenMP thread for a single query).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from index.vectors import IndexSpec, VectorIndex

REPO = Path(__file__).resolve().parents[1]

K = 10


def clustered(n: int, dim: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    labels = rng.integers(0, len(centres), n)
    x = centres[labels] + rng.normal(scale=0.045, size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def median_seconds(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def numpy_topk(gallery: np.ndarray, queries: np.ndarray) -> np.ndarray:
    sims = queries @ gallery.T
    top = np.argpartition(-sims, K, axis=1)[:, :K]
    order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def bench_size(n: int, dim: int, rng: np.random.Generator, repeats: int) -> list[str]:
    centres = rng.normal(size=(max(10, n // 100), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    gallery = clustered(n, dim, rng, centres)
    queries = clustered(100, dim, rng, centres)
    ids = np.arange(n, dtype=np.int64)
    one = queries[:1]
    rows = []
    threads = os.cpu_count() or 1

    np_1 = median_seconds(lambda: numpy_topk(gallery, one), repeats)
    np_100 = median_seconds(lambda: numpy_topk(gallery, queries), max(3, repeats // 5))
    rows.append((f"numpy brute force (baseline, {threads} BLAS threads)", "-", np_1, np_100, "1 (exact)", gallery.nbytes / n))

    exact = VectorIndex(dim, IndexSpec("Flat"))
    start = time.perf_counter()
    exact.rebuild(ids, gallery)
    build = time.perf_counter() - start
    truth = exact.search(queries, K)[1]
    e_1 = median_seconds(lambda: exact.search(one, K), repeats)
    e_100 = median_seconds(lambda: exact.search(queries, K), max(3, repeats // 5))
    size = faiss.serialize_index(exact.index).nbytes / n
    rows.append(
        (
            "FAISS Flat (exact; gallery default)",
            f"{build:.1f}",
            e_1,
            e_100,
            f"{recall(numpy_topk(gallery, queries), truth):.3f} (vs numpy)",
            size,
        )
    )

    # FAISS's own default: all OpenMP threads even for one query (what the gallery avoids)
    faiss.omp_set_num_threads(threads)
    default_1 = median_seconds(lambda: exact.index.search(one, K), repeats)
    rows.append((f"FAISS Flat, batch 1 with {threads} OpenMP threads (FAISS default)", "-", default_1, None, "-", size))

    nlist = 1024 if n <= 200_000 else 4096
    nlist = min(nlist, max(16, n // 40))
    for factory, spec in (("HNSW32", IndexSpec("HNSW32", ef_search=128)), (f"IVF{nlist},Flat", IndexSpec(f"IVF{nlist},Flat", nprobe=32))):
        index = VectorIndex(dim, spec)
        start = time.perf_counter()
        faiss.omp_set_num_threads(threads)
        index.rebuild(ids, gallery)
        build = time.perf_counter() - start
        found = index.search(queries, K)[1]
        a_1 = median_seconds(lambda index=index: index.search(one, K), repeats)
        a_100 = median_seconds(lambda index=index: index.search(queries, K), max(3, repeats // 5))
        size = faiss.serialize_index(index.index).nbytes / n
        params = f"efSearch {spec.ef_search}" if factory.startswith("HNSW") else f"nprobe {spec.nprobe}"
        rows.append((f"FAISS {factory} ({params})", f"{build:.1f}", a_1, a_100, f"{recall(found, truth):.3f}", size))
        del index

    lines = [
        f"### {n:,} cases x {dim}-d",
        "",
        "| index | build s | batch 1, ms/query | batch 100, ms/query | recall@10 vs exact | bytes per case |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, build_s, t1, t100, rec, per_case in rows:
        batch100 = "-" if t100 is None else f"{t100 / 100 * 1e3:.3f}"
        lines.append(f"| {name} | {build_s} | {t1 * 1e3:.3f} | {batch100} | {rec} | {per_case:.0f} |")
    exact_ratio = np_1 / e_1
    verdict = "met" if exact_ratio > 1 else "not met"
    lines += [
        "",
        f"Exact FAISS batch 1 vs numpy batch 1: **{exact_ratio:.2f}x** the speed of numpy ({verdict}; target: faster at every size).",
    ]
    for name, _, t1, _, rec, _ in rows[3:]:
        lines.append(f"{name} vs exact FAISS at batch 1: **{e_1 / t1:.1f}x faster**, recall@10 {rec}.")
    lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "index.md")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    lines = [
        "# Gallery search speed",
        "",
        f"Command: `python {' '.join(['scripts/bench_index.py', *sys.argv[1:]])}`",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), faiss {faiss.__version__}, numpy {np.__version__}. "
        "Clustered unit vectors (one cluster per ~100 cases, within-cluster cosine ~0.7); 100 held-out queries; medians.",
        "Targets (DESIGN.md section 6, issue 5): exact batch-1 search faster than numpy brute force at every size; "
        "an ANN index at 1e6 with recall@10 >= 0.99 at least 10x faster than exact.",
        "",
    ]
    notes = [
        "## Reading the numbers",
        "",
        "- FAISS's flat index searches one query on one thread (it parallelises over queries, not over the database;",
        "  facebookresearch/faiss#4121), while numpy's matrix-vector product uses both cores' memory bandwidth. On this",
        "  2-core machine exact FAISS is therefore slower than numpy at batch 1; a second OpenMP thread does not help",
        "  (row 'FAISS default'). At 1e4-1e5 cases the difference is ~1-4 ms per query, under 2% of one model forward pass.",
        "- For large galleries use an IVF index (`bone2gene gallery init --index IVF4096,Flat`): recall@10 1.000 on",
        "  clustered embeddings, and unlike HNSW it supports removing cases without a rebuild. HNSW32 at efSearch 128",
        "  is fastest but missed the recall target on these tight clusters at 1e6.",
        "",
    ]
    for n in args.sizes:
        print(f"benchmarking {n:,} cases ...", file=sys.stderr, flush=True)
        lines += bench_size(n, args.dim, rng, args.repeats)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines + notes) + "\n")  # partial results survive an interrupted run
    print("\n".join(lines))


if __name__ == "__main__":
    main()
