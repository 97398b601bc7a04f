"""Property harness: `knn_graph` and `smooth_labels` on hostile inputs (dtypes, shapes, scales
1e-30..1e30, offsets up to 1e4, exact duplicates, denormal rows). Each call either raises a
typed `Sw2sError` (a `ValueError`) or returns a valid result; exact search equals a float64
brute force up to ties (within float32 rounding of the magnitudes involved)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import selective_w2sg as sw
from selective_w2sg.graph.errors import Sw2sError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@st.composite
def embeddings(draw):
    n = draw(st.integers(3, 48))
    d = draw(st.integers(1, 10))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["normal", "ints", "clustered"]))
    if kind == "normal":
        x = rng.standard_normal((n, d))
    elif kind == "ints":
        x = rng.integers(-2, 3, (n, d)).astype(np.float64)
    else:
        x = rng.standard_normal((3, d))[rng.integers(0, 3, n)] + 0.05 * rng.standard_normal((n, d))
    scale = 10.0 ** draw(st.sampled_from([-30, -12, -3, 0, 3, 12, 30]))
    offset = draw(st.sampled_from([0.0, 1.0, 1e4, -1e4]))
    x = (x + offset) * scale
    for _ in range(draw(st.integers(0, 3))):  # exact duplicates
        i, j = rng.integers(0, n, 2)
        x[i] = x[j]
    if draw(st.booleans()):  # a row of tiny (denormal in float32) values
        x[rng.integers(0, n)] = rng.choice([1e-40, -3e-42, 1e-45], d)
    dtype = draw(st.sampled_from([np.float32, np.float64, np.float16]))
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return x.astype(dtype)


def _keys64(x32: np.ndarray, metric: str) -> np.ndarray:
    """Float64 keys (higher is better) of every pair, the diagonal -inf."""
    x = x32.astype(np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    ip = x @ x.T
    if metric == "sqeuclidean":
        sq = (x**2).sum(1)
        key = -np.maximum(sq[:, None] + sq[None, :] - 2 * ip, 0)
        diff = x[:, None, :] - x[None, :, :]  # small n: the exact differences
        key = -(diff**2).sum(-1)
    else:
        key = ip
    np.fill_diagonal(key, -np.inf)
    return key


def _tolerance(x32: np.ndarray, metric: str) -> float:
    x = x32.astype(np.float64)
    if metric == "cosine":
        return 1e-5
    if metric == "sqeuclidean":
        return 1e-5 * float(((x - x.mean(0)) ** 2).sum(1).max()) + 1e-300
    return 1e-4 * x.shape[1] * float(np.abs(x).max()) ** 2 + 1e-300


def check_graph(x: np.ndarray, g: sw.KnnGraph, k: int, metric: str, exact: bool) -> None:
    n = x.shape[0]
    assert g.indices.shape == (n, k) and g.scores.shape == (n, k)
    assert ((g.indices >= 0) & (g.indices < n)).all(), "index out of range"
    assert (g.indices != np.arange(n)[:, None]).all(), "self as neighbour"
    assert all(len(set(r)) == k for r in g.indices.tolist()), "duplicate neighbour"
    assert np.isfinite(g.scores).all()
    if metric == "sqeuclidean":
        assert (g.scores >= 0).all()
    if exact:
        x32 = x.astype(np.float32)
        key = _keys64(x32, metric)
        kth = np.sort(key, axis=1)[:, ::-1][:, k - 1]
        got = np.take_along_axis(key, g.indices, axis=1)
        tol = _tolerance(x32, metric)
        bad = got < kth[:, None] - tol
        assert not bad.any(), f"row {np.argwhere(bad)[0]}: not among the k nearest (tol {tol})"


@SETTINGS
@given(x=embeddings(), metric=st.sampled_from(["cosine", "ip", "sqeuclidean"]), method=st.sampled_from(["exact", "approx"]), kf=st.floats(0, 1))
def test_knn_graph_never_garbage(x, metric, method, kf):
    n = x.shape[0]
    k = 1 + int(kf * (min(n - 1, 8) - 1))
    try:
        g = sw.knn_graph(x, k, metric=metric, method=method, seed=3, num_threads=2)
    except Sw2sError as e:
        assert isinstance(e, ValueError)
        # the only expected refusals: non-finite values (float16 overflow), zero rows under
        # cosine (underflow), scores beyond float32
        assert isinstance(e, sw.EmbeddingsError), e
        x32 = x.astype(np.float32)
        assert (not np.isfinite(x32).all()) or metric == "cosine" or "float32 range" in str(e), e
        return
    check_graph(x, g, k, metric, exact=(method == "exact"))


@SETTINGS
@given(
    x=embeddings(),
    shape=st.sampled_from(["n", "n1", "n3"]),
    alpha=st.floats(0, 0.99),
    wscale=st.sampled_from([None, 1e-39, 1e-20, 1.0, 1e20]),
    lseed=st.integers(0, 1000),
)
def test_smooth_labels_never_garbage(x, shape, alpha, wscale, lseed):
    n = x.shape[0]
    rng = np.random.default_rng(lseed)
    y = {"n": rng.random(n), "n1": rng.random((n, 1)), "n3": rng.dirichlet(np.ones(3), n)}[shape].astype(np.float32)
    try:
        g = sw.knn_graph(x, min(3, n - 1), metric="sqeuclidean", method="exact")
        graph = g if wscale is None else sp.csr_array(g.weights().astype(np.float64) * wscale)
        out = sw.smooth_labels(graph, y, alpha=alpha, num_threads=2)
    except Sw2sError as e:
        assert isinstance(e, ValueError) and isinstance(e, sw.EmbeddingsError), e
        return
    assert out.shape == y.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and (out >= -1e-6).all() and (out <= 1 + 1e-6).all()
    if shape == "n3":
        np.testing.assert_allclose(out.sum(1), 1, atol=1e-4)
    if wscale is not None and alpha > 0 and n > 1:
        # scaling W does not change S: same result as the unscaled weights
        ref = sw.smooth_labels(g.weights(), y, alpha=alpha, num_threads=2)
        np.testing.assert_allclose(out, ref, atol=1e-4)
