"""VectorIndex searches keep working once faiss.contrib.torch_utils is loaded.

pytorch-metric-learning imports that module, which replaces ``Index.search``
with a version that has no ``params`` argument; the whole suite imports torch,
so filtered and ANN searches must not depend on which test ran first.
"""

from __future__ import annotations

import faiss.contrib.torch_utils  # noqa: F401 - the swap under test
import numpy as np
import pytest

from index.vectors import IndexSpec, VectorIndex


def unit_vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("factory", ["Flat", "IVF4,Flat", "HNSW8"])
def test_filtered_search_after_torch_utils_import(factory: str) -> None:
    vectors = unit_vectors(200)
    ids = np.arange(1000, 1200, dtype=np.int64)
    index = VectorIndex(16, IndexSpec(factory=factory, nprobe=4, ef_search=64))
    index.rebuild(ids, vectors)
    sims, found = index.search(vectors[:1], 5)
    assert found[0, 0] == 1000 and sims[0, 0] == pytest.approx(1.0, abs=1e-5)
    allowed = ids[1::2]
    sims, found = index.search(vectors[:1], 5, allowed)
    assert set(found[0][found[0] >= 0]) <= set(allowed.tolist())
    assert 1000 not in found[0]


def _recall_at_10(spec: IndexSpec, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, tmp_path) -> tuple[float, float]:
    """Recall@10 against exact search, of the built index and of the same index saved and loaded."""
    ids = np.arange(len(vectors), dtype=np.int64)
    index = VectorIndex(vectors.shape[1], spec)
    index.rebuild(ids, vectors)
    built = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(index.search(queries, 10)[1], truth, strict=True)])
    index.save(tmp_path, 0, 1)
    loaded = VectorIndex(vectors.shape[1], spec)
    loaded.load(tmp_path / "index.e0.g1.faiss", 0, 1)
    again = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(loaded.search(queries, 10)[1], truth, strict=True)])
    return float(built), float(again)


def test_a_pre_transformed_ivf_searches_with_the_configured_nprobe(tmp_path) -> None:
    """'PCA16,IVF64,Flat' hides its IVF behind the PCA: nprobe must still reach it (it used to stay at FAISS's default of 1)."""
    vectors, queries = unit_vectors(3000, dim=32, seed=1), unit_vectors(40, dim=32, seed=2)
    exact = VectorIndex(32, IndexSpec("PCA16,Flat"))
    exact.rebuild(np.arange(3000, dtype=np.int64), vectors)
    truth = exact.search(queries, 10)[1]  # exact search in the same PCA space: what visiting every list gives
    (tmp_path / "all").mkdir()
    (tmp_path / "one").mkdir()
    every_list = _recall_at_10(IndexSpec("PCA16,IVF64,Flat", nprobe=64), vectors, queries, truth, tmp_path / "all")
    one_list = _recall_at_10(IndexSpec("PCA16,IVF64,Flat", nprobe=1), vectors, queries, truth, tmp_path / "one")
    assert every_list[0] > 0.97 and every_list[1] > 0.97, every_list
    assert one_list[0] < 0.8, one_list  # the setting matters on this data
    allowed = np.arange(0, 3000, 3, dtype=np.int64)
    index = VectorIndex(32, IndexSpec("PCA16,IVF64,Flat", nprobe=64))
    index.rebuild(np.arange(3000, dtype=np.int64), vectors)
    found = index.search(queries, 10, allowed)[1]
    assert set(found.ravel()) <= set(allowed.tolist())
