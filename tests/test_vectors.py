"""VectorIndex searches keep working once faiss.contrib.torch_utils is loaded.

pytorch-metric-learning imports that module, which replaces ``Index.search``
with a version that has no ``params`` argument; the whole suite imports torch,
so filtered and ANN searches must not depend on which test ran first.
"""

from __future__ import annotations

import faiss.contrib.torch_utils  # noqa: F401  (the swap under test)
import numpy as np
import pytest

from index.vectors import IndexSpec, VectorIndex


def clustered(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("factory", ["Flat", "IVF4,Flat", "HNSW8"])
def test_filtered_search_after_torch_utils_import(factory: str) -> None:
    vectors = clustered(200)
    ids = np.arange(1000, 1200, dtype=np.int64)
    index = VectorIndex(16, IndexSpec(factory=factory, nprobe=4, ef_search=64))
    index.rebuild(ids, vectors)
    sims, found = index.search(vectors[:1], 5)
    assert found[0, 0] == 1000 and sims[0, 0] == pytest.approx(1.0, abs=1e-5)
    allowed = ids[1::2]
    sims, found = index.search(vectors[:1], 5, allowed)
    assert set(found[0][found[0] >= 0]) <= set(allowed.tolist())
    assert 1000 not in found[0]
