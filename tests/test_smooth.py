"""`smooth_labels` against a scipy reference, the closed form, and every bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import selective_w2sg as sw
from conftest import clustered


def reference_spreading(w, y, alpha, iters, conf=None, clamped=None):
    """scipy/numpy reference of label spreading (float64), with the package's conventions."""
    w = sp.csr_array(w, dtype=np.float64)
    d = np.asarray(w.sum(axis=1)).ravel()
    inv = np.zeros_like(d)
    inv[d > 0] = 1 / np.sqrt(d[d > 0])
    s = sp.diags(inv) @ w @ sp.diags(inv)
    y = y.astype(np.float64)
    y0 = y * (conf[:, None] if conf is not None else 1.0)
    f = y0.copy()
    for _ in range(iters):
        f = alpha * (s @ f) + (1 - alpha) * y0
        if clamped is not None:
            f[clamped] = y0[clamped]
    return f, s


def closed_form(w, y, alpha):
    _, s = reference_spreading(w, y, alpha, 0)
    n = y.shape[0]
    f = (1 - alpha) * np.linalg.solve(np.eye(n) - alpha * s.toarray(), y.astype(np.float64))
    return f / f.sum(axis=1, keepdims=True)


def random_symmetric(n, density, rng):
    a = sp.random(n, n, density=density, random_state=rng, dtype=np.float64)
    a = a + a.T
    a.setdiag(0)
    a.eliminate_zeros()
    return sp.csr_array(a)


def soft_rows(n, c, rng):
    y = rng.random((n, c)) + 0.01
    return (y / y.sum(1, keepdims=True)).astype(np.float32)


def test_matches_closed_form_on_small_graph(rng):
    w = random_symmetric(40, 0.15, rng)
    y = soft_rows(40, 3, rng)
    for alpha in (0.0, 0.3, 0.9):
        f = sw.smooth_labels(w, y, alpha=alpha, max_iter=2000, tol=1e-9)
        np.testing.assert_allclose(f, closed_form(w, y, alpha), atol=1e-4)


def test_matches_scipy_iteration_fixed_steps(rng):
    x = clustered(500, 8, centres=5, seed=1)
    g = sw.knn_graph(x, 6, method="exact")
    y = soft_rows(500, 2, rng)
    res = sw.smooth_labels(g, y, alpha=0.7, max_iter=12, tol=0.0, return_info=True)
    assert res.iterations == 12 and not res.converged
    f, _ = reference_spreading(g.weights(), y, 0.7, 12)
    np.testing.assert_allclose(res.labels, f / f.sum(1, keepdims=True), atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 30), c=st.integers(1, 4), alpha=st.floats(0.0, 0.95), seed=st.integers(0, 2**31))
def test_property_against_reference(n, c, alpha, seed):
    rng = np.random.default_rng(seed)
    w = random_symmetric(n, 0.3, rng)
    y = soft_rows(n, c, rng)
    f = sw.smooth_labels(w, y, alpha=alpha, max_iter=7, tol=0.0)
    ref, _ = reference_spreading(w, y, alpha, 7)
    ref = ref / ref.sum(1, keepdims=True)
    np.testing.assert_allclose(f, ref, atol=1e-4)
    np.testing.assert_allclose(f.sum(1), 1.0, atol=1e-5)


def test_binary_vector_shape_and_meaning(rng):
    x = clustered(400, 8, centres=2, seed=2, spread=0.05)
    g = sw.knn_graph(x, 8)
    truth = (x @ (x[0] - x[-1]) > 0).astype(np.float32)  # a labelling aligned with the clusters
    noisy = np.where(rng.random(400) < 0.2, 1 - truth, truth).astype(np.float32)
    p = sw.smooth_labels(g, noisy, alpha=0.9)
    assert p.shape == (400,) and p.dtype == np.float32
    assert np.mean((p > 0.5) == truth) > np.mean(noisy == truth)  # smoothing removes label noise
    two = sw.smooth_labels(g, np.stack([1 - noisy, noisy], 1), alpha=0.9)
    np.testing.assert_allclose(p, two[:, 1], atol=1e-6)


def test_alpha_zero_returns_labels(rng):
    w = random_symmetric(20, 0.3, rng)
    y = rng.random(20).astype(np.float32)
    np.testing.assert_allclose(sw.smooth_labels(w, y, alpha=0.0), y, atol=1e-6)


def test_clamped_and_confidence(rng):
    w = random_symmetric(30, 0.3, rng)
    y = soft_rows(30, 2, rng)
    clamped = np.zeros(30, bool)
    clamped[:5] = True
    conf = rng.random(30).astype(np.float32) + 0.1
    f = sw.smooth_labels(w, y, alpha=0.8, clamped=clamped, confidence=conf, max_iter=9, tol=0)
    np.testing.assert_allclose(f[:5], y[:5], atol=1e-6)
    ref, _ = reference_spreading(w, y, 0.8, 9, conf=conf, clamped=clamped)
    np.testing.assert_allclose(f, ref / ref.sum(1, keepdims=True), atol=1e-5)


def test_isolated_node_keeps_its_label(rng):
    w = sp.csr_array(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=np.float32))
    y = np.array([0.9, 0.1, 0.3], np.float32)
    f = sw.smooth_labels(w, y, alpha=0.5)
    assert f[2] == pytest.approx(0.3, abs=1e-6)


def test_user_graph_pair_and_asymmetric_sparse(rng):
    x = clustered(200, 6, centres=4, seed=9)
    g = sw.knn_graph(x, 5, method="exact")
    y = rng.random(200).astype(np.float32)
    a = sw.smooth_labels(g, y)
    b = sw.smooth_labels((g.indices, g.scores), y)  # e.g. from faiss
    np.testing.assert_allclose(a, b, atol=1e-6)
    c = sw.smooth_labels(g.to_scipy(), y)  # directed: symmetrised by max
    np.testing.assert_allclose(a, c, atol=1e-5)
    # faiss marks missing neighbours with -1: skipped
    idx = g.indices.copy()
    idx[:, -1] = -1
    sw.smooth_labels((idx, g.scores), y)


def test_user_sparse_is_used_as_given(rng):
    w = random_symmetric(25, 0.3, rng) * 3.0
    y = soft_rows(25, 2, rng)
    np.testing.assert_allclose(sw.weight_matrix(w).toarray(), w.toarray(), atol=1e-6)
    ref, _ = reference_spreading(w, y, 0.5, 5)
    np.testing.assert_allclose(sw.smooth_labels(w, y, max_iter=5, tol=0), ref / ref.sum(1, keepdims=True), atol=1e-5)


def test_converges(rng):
    w = random_symmetric(100, 0.05, rng)
    res = sw.smooth_labels(w, rng.random(100).astype(np.float32), alpha=0.5, max_iter=500, tol=1e-6, return_info=True)
    assert res.converged and res.residual < 1e-6 and res.iterations < 500


# ---- bad input -------------------------------------------------------------------------


def test_label_length_mismatch(rng):
    g = sw.knn_graph(rng.standard_normal((20, 3)).astype(np.float32), 3)
    with pytest.raises(sw.LabelsError, match="labels have 19 rows but the graph has 20 nodes"):
        sw.smooth_labels(g, np.full(19, 0.5, np.float32))


@pytest.mark.parametrize("bad", [1.5, -0.1, np.nan])
def test_label_out_of_range(bad, rng):
    g = sw.knn_graph(rng.standard_normal((20, 3)).astype(np.float32), 3)
    y = np.full(20, 0.5, np.float32)
    y[7] = bad
    with pytest.raises(sw.LabelsError, match="row 7"):
        sw.smooth_labels(g, y)


def test_label_row_summing_to_zero(rng):
    g = sw.knn_graph(rng.standard_normal((20, 3)).astype(np.float32), 3)
    y = soft_rows(20, 3, rng)
    y[4] = 0
    with pytest.raises(sw.LabelsError, match="row 4 sums to 0"):
        sw.smooth_labels(g, y)


@pytest.mark.parametrize("alpha", [1.0, -0.5, 2.0])
def test_bad_alpha(alpha, rng):
    g = sw.knn_graph(rng.standard_normal((20, 3)).astype(np.float32), 3)
    with pytest.raises(sw.ParameterError, match=f"alpha={alpha}"):
        sw.smooth_labels(g, np.full(20, 0.5, np.float32), alpha=alpha)


def test_bad_graphs(rng):
    y = np.full(4, 0.5, np.float32)
    with pytest.raises(sw.GraphError, match="square"):
        sw.smooth_labels(sp.csr_array(np.ones((4, 3))), y)
    neg = sp.csr_array(np.array([[0, -1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], np.float32))
    with pytest.raises(sw.GraphError, match="negative weight"):
        sw.smooth_labels(neg, y)
    with pytest.raises(sw.GraphError, match="index 9|row 0"):
        sw.smooth_labels((np.array([[9], [0], [1], [2]]), np.ones((4, 1), np.float32)), y)
    with pytest.raises(sw.GraphError, match="KnnGraph"):
        sw.smooth_labels("graph", y)


def test_bad_confidence(rng):
    w = random_symmetric(10, 0.3, rng)
    with pytest.raises(sw.LabelsError, match="confidence row 3"):
        conf = np.ones(10, np.float32)
        conf[3] = -1
        sw.smooth_labels(w, np.full(10, 0.5, np.float32), confidence=conf)


# ---- issue 11: never silent garbage, never a false success ----


def test_labels_n_by_1_are_probabilities(rng):
    g = sw.knn_graph(clustered(60, 4, centres=2, seed=1), 5)
    p = rng.random(60).astype(np.float32)
    flat = sw.smooth_labels(g, p, alpha=0.5)
    col = sw.smooth_labels(g, p[:, None], alpha=0.5)
    assert col.shape == (60, 1)
    np.testing.assert_allclose(col[:, 0], flat, atol=1e-6)
    assert not np.allclose(col, 1.0)


def test_negative_indices_other_than_minus_one_refused(rng):
    idx = np.array([[1, -1], [0, -2], [0, 1]], np.int64)
    sc = np.ones((3, 2), np.float32)
    with pytest.raises(sw.GraphError, match="row 1 has neighbour index -2"):
        sw.smooth_labels((idx, sc), np.full(3, 0.5, np.float32))
    idx[1, 1] = -1
    assert sw.smooth_labels((idx, sc), np.full(3, 0.5, np.float32)).shape == (3,)


def test_negative_squared_distance_refused():
    idx = np.array([[1], [0], [0]], np.int64)
    sc = np.array([[0.5], [-0.25], [0.5]], np.float32)
    with pytest.raises(sw.GraphError, match="row 1 has negative squared distance"):
        sw.smooth_labels((idx, sc), np.full(3, 0.5, np.float32), metric="sqeuclidean")


@pytest.mark.parametrize("scale", [1e-39, 1e-45, 1e39])
def test_scaled_scipy_weights_keep_their_edges(scale, rng):
    g = sw.knn_graph(clustered(50, 4, centres=2, seed=3), 4)
    y = rng.random(50).astype(np.float32)
    ref = sw.smooth_labels(g.weights(), y, alpha=0.7)
    w = sp.csr_array(g.weights().astype(np.float64) * scale)
    out = sw.smooth_labels(w, y, alpha=0.7)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert not np.allclose(out, y)


@pytest.mark.parametrize("threads", [0, -1, 2**70, True, 1.5])
def test_bad_num_threads_typed(threads, rng):
    g = sw.knn_graph(rng.standard_normal((20, 3)).astype(np.float32), 3)
    with pytest.raises(sw.ParameterError, match="num_threads"):
        sw.smooth_labels(g, np.full(20, 0.5, np.float32), num_threads=threads)


@pytest.mark.parametrize("max_iter", [-1, 2**70])
def test_bad_max_iter_typed(max_iter, rng):
    g = sw.knn_graph(rng.standard_normal((20, 3)).astype(np.float32), 3)
    with pytest.raises(sw.ParameterError, match="max_iter"):
        sw.smooth_labels(g, np.full(20, 0.5, np.float32), max_iter=max_iter)
