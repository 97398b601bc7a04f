from __future__ import annotations

import numpy as np
import pytest


def brute_force_knn(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Reference kNN in float64: (indices, scores), best first, ties to the smaller index."""
    x64 = x.astype(np.float64)
    if metric == "cosine":
        x64 = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
    if metric == "sqeuclidean":
        sq = (x64**2).sum(1)
        s = sq[:, None] + sq[None, :] - 2 * x64 @ x64.T
        key = s.copy()
    else:
        s = x64 @ x64.T
        key = -s
    np.fill_diagonal(key, np.inf)
    n = x.shape[0]
    order = np.lexsort((np.broadcast_to(np.arange(n), (n, n)), key), axis=1)[:, :k]
    return order, np.take_along_axis(s, order, axis=1)


def clustered(n: int, d: int, centres: int, seed: int = 0, spread: float = 0.15) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)).astype(np.float32)
    lab = rng.integers(0, centres, n)
    return (c[lab] + spread * rng.standard_normal((n, d)).astype(np.float32)).astype(np.float32)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
