"""`knn_graph` against a numpy brute force, and every bad input."""

from __future__ import annotations

import re
import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import selective_w2sg as sw
from conftest import brute_force_knn, clustered


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)]))


@pytest.mark.parametrize("metric", ["cosine", "ip", "sqeuclidean"])
@pytest.mark.parametrize("n,d,k", [(2, 3, 1), (37, 5, 4), (300, 16, 10), (1100, 33, 7)])
def test_exact_equals_brute_force(metric, n, d, k, rng):
    x = rng.standard_normal((n, d)).astype(np.float32)
    g = sw.knn_graph(x, k, metric=metric, method="exact")
    ref_idx, ref_scores = brute_force_knn(x, k, metric)
    assert g.indices.shape == (n, k) and g.indices.dtype == np.int64
    assert g.scores.dtype == np.float32
    assert g.method == "exact" and g.estimated_recall is None
    assert not np.any(g.indices == np.arange(n)[:, None]), "a point is its own neighbour"
    np.testing.assert_allclose(g.scores, ref_scores, rtol=1e-4, atol=1e-4)
    # Indices must agree except where two candidates tie in float32 rounding.
    mismatch = g.indices != ref_idx
    if mismatch.any():
        np.testing.assert_allclose(g.scores[mismatch], ref_scores[mismatch], atol=1e-4)
    # Best first.
    if metric == "sqeuclidean":
        assert np.all(np.diff(g.scores, axis=1) >= -1e-5)
    else:
        assert np.all(np.diff(g.scores, axis=1) <= 1e-5)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 80),
    d=st.integers(1, 12),
    data=st.data(),
    metric=st.sampled_from(["cosine", "ip", "sqeuclidean"]),
)
def test_exact_property(n, d, data, metric):
    k = data.draw(st.integers(1, n - 1))
    seed = data.draw(st.integers(0, 2**31))
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    g = sw.knn_graph(x, k, metric=metric, method="exact")
    _, ref_scores = brute_force_knn(x, k, metric)
    np.testing.assert_allclose(g.scores, ref_scores, rtol=1e-4, atol=1e-4)
    assert not np.any(g.indices == np.arange(n)[:, None])
    assert np.all((g.indices >= 0) & (g.indices < n))


def test_duplicates_and_ties_never_self(rng):
    base = rng.standard_normal((10, 4)).astype(np.float32)
    x = np.concatenate([base, base, base])  # every point has two exact duplicates
    g = sw.knn_graph(x, 2, metric="sqeuclidean", method="exact")
    assert not np.any(g.indices == np.arange(30)[:, None])
    np.testing.assert_allclose(g.scores, 0.0, atol=1e-5)
    assert np.all(g.indices % 10 == (np.arange(30) % 10)[:, None])


def test_approx_recall_on_clustered_data():
    x = clustered(6000, 32, centres=30, seed=3)
    g = sw.knn_graph(x, 10, method="approx", seed=7)
    truth = sw.knn_graph(x, 10, method="exact")
    r = recall(g.indices, truth.indices)
    assert g.method == "approx"
    assert r >= 0.95, r
    assert g.estimated_recall is not None and abs(g.estimated_recall - r) < 0.05
    assert not np.any(g.indices == np.arange(len(x))[:, None])


def test_approx_is_deterministic_for_seed_and_threads():
    x = clustered(3000, 16, centres=20, seed=5)
    a = sw.knn_graph(x, 8, method="approx", seed=11, num_threads=2)
    b = sw.knn_graph(x, 8, method="approx", seed=11, num_threads=2)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_auto_small_is_exact(rng):
    x = rng.standard_normal((500, 8)).astype(np.float32)
    g = sw.knn_graph(x, 5)
    assert g.method == "exact"
    ref, _ = brute_force_knn(x, 5, "cosine")
    assert recall(g.indices, ref) > 0.999


def test_auto_never_returns_a_poor_graph():
    # Unstructured data (uniform noise, high d) is where NN-descent recall collapses;
    # auto must notice (sampled recall) and refine or fall back to exact.
    x = np.random.default_rng(0).standard_normal((30000, 64)).astype(np.float32)
    g = sw.knn_graph(x, 10, method="auto", recall_sample=300)
    if g.method == "approx":
        assert g.estimated_recall is not None and g.estimated_recall >= 0.95
    sample = np.random.default_rng(1).choice(len(x), 200, replace=False)
    sims = (x[sample] / np.linalg.norm(x[sample], axis=1, keepdims=True)) @ (
        x / np.linalg.norm(x, axis=1, keepdims=True)
    ).T
    sims[np.arange(200), sample] = -np.inf
    truth = np.argsort(-sims, axis=1)[:, :10]
    assert recall(g.indices[sample], truth) >= 0.93


def test_memmap_input_without_copy(tmp_path, rng):
    x = rng.standard_normal((200, 8)).astype(np.float32)
    np.save(tmp_path / "e.npy", x)
    m = np.load(tmp_path / "e.npy", mmap_mode="r")
    g = sw.knn_graph(m, 4, method="exact")
    np.testing.assert_array_equal(g.indices, sw.knn_graph(x, 4, method="exact").indices)


def test_float64_is_converted_and_int_refused(rng):
    x = rng.standard_normal((50, 4))
    g64 = sw.knn_graph(x, 3, method="exact")
    g32 = sw.knn_graph(x.astype(np.float32), 3, method="exact")
    np.testing.assert_array_equal(g64.indices, g32.indices)
    with pytest.raises(sw.EmbeddingsError, match="dtype int64"):
        sw.knn_graph(np.ones((5, 2), dtype=np.int64), 2)


def test_to_scipy_and_weights(rng):
    x = rng.standard_normal((60, 6)).astype(np.float32)
    g = sw.knn_graph(x, 5, method="exact")
    a = g.to_scipy()
    assert isinstance(a, sp.csr_array) and a.shape == (60, 60) and a.nnz == 60 * 5
    for i in (0, 17, 59):
        row = a[[i], :].toarray().ravel()
        np.testing.assert_allclose(row[g.indices[i]], g.scores[i])
    w = g.weights()
    assert abs(w - w.T).max() == 0
    assert w.diagonal().max() == 0
    dense_a = np.maximum(a.toarray(), 0)
    np.testing.assert_allclose(w.toarray(), np.maximum(dense_a, dense_a.T), atol=1e-6)
    assert g.to_scipy(symmetric=True) is w


def test_save_load_roundtrip_and_fingerprint(tmp_path, rng):
    x = rng.standard_normal((40, 4)).astype(np.float32)
    g = sw.knn_graph(x, 3)
    g.save(tmp_path / "g.npz")
    h = sw.KnnGraph.load(tmp_path / "g.npz")
    np.testing.assert_array_equal(g.indices, h.indices)
    assert h.metric == g.metric and h.fingerprint == g.fingerprint
    h.check_matches(x)
    with pytest.raises(sw.GraphError, match="other embeddings"):
        h.check_matches(x + 1)
    with pytest.raises(sw.GraphError, match="40 nodes"):
        h.check_matches(x[:30])


# ---- bad input -------------------------------------------------------------------------


def test_nan_names_first_bad_row(rng):
    x = rng.standard_normal((100, 4)).astype(np.float32)
    x[17, 2] = np.nan
    x[60, 0] = np.inf
    with pytest.raises(sw.EmbeddingsError, match="row 17"):
        sw.knn_graph(x, 3)
    with pytest.raises(ValueError):  # typed errors are ValueErrors too
        sw.knn_graph(x, 3)


def test_inf_names_row(rng):
    x = rng.standard_normal((30, 4)).astype(np.float32)
    x[29, 3] = -np.inf
    with pytest.raises(sw.EmbeddingsError, match="row 29"):
        sw.knn_graph(x, 3, metric="ip")


def test_zero_norm_under_cosine(rng):
    x = rng.standard_normal((30, 4)).astype(np.float32)
    x[5] = 0
    with pytest.raises(sw.EmbeddingsError, match="row 5 has zero norm"):
        sw.knn_graph(x, 3, metric="cosine")
    sw.knn_graph(x, 3, metric="sqeuclidean")  # fine without normalisation


@pytest.mark.parametrize("k", [0, 10, 11, -1])
def test_bad_k(k, rng):
    x = rng.standard_normal((10, 3)).astype(np.float32)
    with pytest.raises(sw.ParameterError, match=f"k={k}"):
        sw.knn_graph(x, k)


def test_too_few_points():
    with pytest.raises(sw.EmbeddingsError, match="n=1"):
        sw.knn_graph(np.ones((1, 3), np.float32), 1)


@pytest.mark.parametrize("shape", [(10,), (2, 3, 4), (5, 0)])
def test_bad_ndim(shape):
    with pytest.raises(sw.EmbeddingsError, match="shape"):
        sw.knn_graph(np.ones(shape, np.float32), 1)


def test_bad_metric_and_method(rng):
    x = rng.standard_normal((10, 3)).astype(np.float32)
    with pytest.raises(sw.ParameterError, match="'manhattan'"):
        sw.knn_graph(x, 2, metric="manhattan")
    with pytest.raises(sw.ParameterError, match="'hnsw'"):
        sw.knn_graph(x, 2, method="hnsw")


# ---- issue 11: never silent garbage, never a false success ----


def test_tiny_norm_row_under_cosine():
    from conftest import brute_force_knn

    x = np.random.default_rng(7).standard_normal((500, 16)).astype(np.float32)
    x[42] = 1e-40
    ref, _ = brute_force_knn(x, 8, "cosine")
    g = sw.knn_graph(x, k=8, method="exact")
    assert (g.indices < 500).all() and np.isfinite(g.scores).all()
    # identical to the float64 brute force (row 42's neighbours all tie? no: it is (1,..,1)/4)
    assert (g.indices == ref).all(axis=1).sum() >= 499
    a = sw.knn_graph(x, k=8, method="approx")
    assert (a.indices < 500).all() and np.isfinite(a.scores).all()


@pytest.mark.parametrize("offset", [1e3, 1e4])
def test_sqeuclidean_offset_keeps_precision(offset):
    from conftest import brute_force_knn

    x = np.random.default_rng(7).standard_normal((500, 16)).astype(np.float32)
    xs = (x + np.float32(offset)).astype(np.float32)
    ref, _ = brute_force_knn(xs, 8, "sqeuclidean")
    g = sw.knn_graph(xs, 8, metric="sqeuclidean", method="exact")
    recall = np.mean([len(set(a) & set(b)) / 8 for a, b in zip(g.indices.tolist(), ref.tolist())])
    assert recall >= 0.99


@pytest.mark.parametrize("metric", ["sqeuclidean", "ip"])
def test_extreme_scales_right_graph_or_typed_error(metric):
    x = np.random.default_rng(7).standard_normal((300, 16)).astype(np.float32)
    base = sw.knn_graph(x, 8, metric=metric, method="exact")
    small = sw.knn_graph(x * np.float32(1e-30), 8, metric=metric, method="exact")
    assert (small.indices == base.indices).mean() > 0.99
    with pytest.raises(sw.EmbeddingsError, match="float32 range"):
        sw.knn_graph(x * np.float32(1e30), 8, metric=metric, method="exact")
    with pytest.raises(sw.EmbeddingsError, match="float32 range"):
        sw.knn_graph(x * np.float32(1e30), 8, metric=metric, method="approx")


def test_approx_deterministic_on_identical_rows():
    x = np.tile(np.linspace(-1, 1, 8, dtype=np.float32), (2000, 1))
    runs = [sw.knn_graph(x, 10, method="approx", seed=3, num_threads=2) for _ in range(4)]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.indices, runs[0].indices)
        assert r.estimated_recall == runs[0].estimated_recall


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"num_threads": 0}, "num_threads"),
        ({"num_threads": -1}, "num_threads"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**70}, "seed"),
        ({"recall_sample": -5}, "recall_sample"),
        ({"recall_sample": 0}, "recall_sample"),
    ],
)
def test_bad_integers_are_typed(kw, match, rng):
    x = rng.standard_normal((30, 3)).astype(np.float32)
    with pytest.raises(sw.ParameterError, match=match):
        sw.knn_graph(x, 3, **kw)


def test_huge_k_is_typed(rng):
    x = rng.standard_normal((30, 3)).astype(np.float32)
    with pytest.raises(sw.ParameterError, match="k="):
        sw.knn_graph(x, 99999999999999999999)


@pytest.mark.parametrize("value", ["zero", "0", "-3", "1.5"])
def test_invalid_sw2s_num_threads_env(value, rng, monkeypatch):
    x = rng.standard_normal((30, 3)).astype(np.float32)
    monkeypatch.setenv("SW2S_NUM_THREADS", value)
    with pytest.raises(sw.ParameterError, match="SW2S_NUM_THREADS"):
        sw.knn_graph(x, 3)
    monkeypatch.setenv("SW2S_NUM_THREADS", "2")
    assert sw.knn_graph(x, 3).n == 30


def test_auto_fallback_to_exact_warns_before_exact_search():
    # Unstructured data with an unreachable recall floor: both approximate passes fall short,
    # auto runs exact search and says so, naming the estimated recalls and the floor, before the
    # exact search starts (at a million rows it takes an hour). The core decides and warns; the
    # warning is attributed to the caller's line.
    x = np.random.default_rng(0).standard_normal((21000, 128)).astype(np.float32)
    cpu_at_warning: list[float] = []
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        orig_show = warnings.showwarning
        warnings.showwarning = lambda *a, **kw: (cpu_at_warning.append(time.process_time()), orig_show(*a, **kw))
        g = sw.knn_graph(x, 10, method="auto", min_recall=1.0, recall_sample=500)
        cpu_after_call = time.process_time()
    fallback = [w for w in rec if issubclass(w.category, sw.ExactFallbackWarning)]
    assert g.method == "exact" and g.estimated_recall is None  # a sampled recall never proves 1.0
    assert len(fallback) == 1 and len(cpu_at_warning) == 1
    msg = str(fallback[0].message)
    assert "min_recall=1.0" in msg and "exact" in msg and "21,000 x 128" in msg
    assert re.search(r"recall@10 0\.\d{4} then 0\.\d{4} \(first pass, then a stronger one\)", msg), msg
    assert "(about 1 core-seconds at 100 GFLOP/s)" in msg, msg
    assert fallback[0].filename == __file__  # attributed to the caller, not to graph/knn.py
    t0 = time.process_time()
    exact = sw.knn_graph(x, 10, method="exact")
    exact_cpu = time.process_time() - t0
    np.testing.assert_array_equal(g.indices, exact.indices)
    # announced before the exact search ran: the exact search's CPU time came after the warning
    assert cpu_after_call - cpu_at_warning[0] >= 0.5 * exact_cpu, (cpu_after_call - cpu_at_warning[0], exact_cpu)


def test_auto_fallback_warning_as_error_stops_the_call():
    # A filter that turns the warning into an error stops the call before the exact search
    # and raises that error (not InterruptedComputation).
    x = np.random.default_rng(0).standard_normal((21000, 16)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sw.ExactFallbackWarning)
        with pytest.raises(sw.ExactFallbackWarning, match="below min_recall=1.0; falling back to exact search"):
            sw.knn_graph(x, 5, method="auto", min_recall=1.0, recall_sample=100)


def test_approx_never_warns_about_fallback(rng):
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sw.ExactFallbackWarning)
        g = sw.knn_graph(x, 5, method="approx", min_recall=1.0)
    assert g.method == "approx"


# ---- issue 19: threads capped, auto's recall floor is a lower confidence bound ----


def test_threads_above_the_cpus_are_capped_with_a_warning(rng, monkeypatch):
    from selective_w2sg.graph._core import available_cpus

    x = rng.standard_normal((200, 8)).astype(np.float32)
    ref = sw.knn_graph(x, 5)
    with pytest.warns(sw.ThreadsCappedWarning, match=f"num_threads=4096 .* {available_cpus()} CPU"):
        g = sw.knn_graph(x, 5, num_threads=4096)
    np.testing.assert_array_equal(g.indices, ref.indices)
    monkeypatch.setenv("SW2S_NUM_THREADS", "100000")
    with pytest.warns(sw.ThreadsCappedWarning, match="SW2S_NUM_THREADS=100000"):
        g = sw.knn_graph(x, 5)
    np.testing.assert_array_equal(g.indices, ref.indices)
    with pytest.warns(sw.ThreadsCappedWarning):
        sw.smooth_labels(g, np.full(200, 0.5, np.float32))


@settings(max_examples=200, deadline=None)
@given(recall=st.floats(0, 1), sample=st.integers(1, 5000), n=st.integers(2, 10**6), k=st.integers(1, 100))
def test_recall_lower_bound_is_a_lower_bound(recall, sample, n, k):
    from selective_w2sg.graph._core import recall_lower_bound  # the core's, which "auto" uses

    lb = recall_lower_bound(recall, sample, n, k)
    assert 0.0 <= lb <= recall
    if sample >= n:
        assert lb == recall  # every row checked: the recall is known
    else:
        assert lb <= recall_lower_bound(recall, min(n, 2 * sample), n, k) + 1e-12  # more checks: tighter


def test_recall_lower_bound_refuses_a_recall_outside_0_1():
    from selective_w2sg.graph._core import recall_lower_bound

    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(sw.ParameterError, match="recall="):
            recall_lower_bound(bad, 100, 1000, 10)


def test_option_names_are_the_cores():
    # one table of names (the core's); the typing aliases repeat it and must agree
    from typing import get_args

    from selective_w2sg.graph import _core
    from selective_w2sg.graph import knn as graph

    assert get_args(graph.MetricName) == _core.METRICS == graph.METRICS == ("cosine", "ip", "sqeuclidean")
    assert get_args(graph.MethodName) == _core.METHODS == graph.METHODS == ("auto", "exact", "approx")
    for alias, name in [("inner_product", "ip"), ("l2", "sqeuclidean"), ("squared_l2", "sqeuclidean"), ("ip", "ip")]:
        assert graph.normalize_metric(alias) == name
    for bad in ("manhattan", None, 3, "approx"):
        with pytest.raises(sw.ParameterError, match=r"metric=.* is not one of 'cosine', 'ip', 'sqeuclidean'"):
            graph.normalize_metric(bad)
    x = np.random.default_rng(1).standard_normal((30, 3)).astype(np.float32)
    with pytest.raises(sw.ParameterError) as e:
        sw.knn_graph(x, 3, method="approx_retry")  # auto's internal pass is no method of the API
    assert str(e.value) == "method='approx_retry' is not one of 'auto', 'exact', 'approx'"
    with pytest.raises(sw.ParameterError) as e:
        sw.knn_graph(x, 3, metric="manhattan")
    assert str(e.value) == "metric='manhattan' is not one of 'cosine', 'ip', 'sqeuclidean'"
    assert sw.knn_graph(x, 3, metric="l2").metric == "sqeuclidean"
    # the defaults are the core's
    import inspect

    params = inspect.signature(sw.knn_graph).parameters
    assert params["min_recall"].default == _core.DEFAULT_MIN_RECALL == 0.95
    assert params["recall_sample"].default == _core.DEFAULT_RECALL_SAMPLE == 1000


@pytest.mark.parametrize("method", ["exact", "approx", "auto"])
@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), "high", True])
def test_bad_min_recall_is_a_parameter_error_naming_it(method, bad):
    x = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    with pytest.raises(sw.ParameterError, match="min_recall="):
        sw.knn_graph(x, 3, method=method, min_recall=bad)
