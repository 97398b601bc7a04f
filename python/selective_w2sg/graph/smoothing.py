"""Label spreading (Zhou et al. 2004) of soft labels over a graph, run by the Rust core."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from . import _core
from .errors import GraphError, LabelsError, ParameterError
from .knn import KnnGraph, MetricName, check_int, check_threads


@dataclass(frozen=True)
class SmoothResult:
    """Smoothed labels (same shape as the input labels) and how the iteration ended."""

    labels: np.ndarray
    iterations: int
    residual: float
    converged: bool
    setup_seconds: float = 0.0  # building S and the node order in the core
    iterate_seconds: float = 0.0  # the iterations themselves


def weight_matrix(graph: Any, n: int | None = None, *, metric: MetricName = "cosine") -> sp.csr_array:
    """The symmetric weight matrix W that `smooth_labels` uses for `graph`.

    graph: a `KnnGraph` (W = `KnnGraph.weights()`); a scipy sparse matrix, used as W as given
        (made symmetric by ``max(W, W^T)`` only when it is not; negative or non-finite weights
        are refused; the diagonal is ignored; a W whose largest weight is outside [1e-18, 1e18]
        is scaled to a largest weight of 1, which leaves the spreading unchanged); or an ``(indices, scores)`` pair of ``(n, k)``
        arrays from another tool (faiss, hnswlib: -1 entries skipped), whose scores are read
        as `metric` (similarities for cosine/ip, squared distances for sqeuclidean).
    n: the expected number of nodes (the label count); a mismatch raises `GraphError`."""
    if isinstance(graph, KnnGraph):
        w = graph.weights()
    elif sp.issparse(graph):
        w = _user_sparse(graph)
    elif isinstance(graph, tuple) and len(graph) == 2:
        indices = np.asarray(graph[0])
        scores = np.asarray(graph[1])
        if indices.ndim != 2 or indices.shape != scores.shape:
            raise GraphError(
                f"(indices, scores) must be two (n, k) arrays of equal shape, got {indices.shape} and {scores.shape}"
            )
        if indices.dtype.kind not in "iu":
            raise GraphError(f"graph indices have dtype {indices.dtype}; expected integers")
        arrays = _core.knn_to_weights(
            np.ascontiguousarray(indices, dtype=np.int64),
            np.ascontiguousarray(scores, dtype=np.float32),
            metric,
        )
        w = sp.csr_array((arrays.data, arrays.indices, arrays.indptr), shape=(arrays.n, arrays.n))
    else:
        raise GraphError(
            f"graph must be a KnnGraph, a scipy sparse matrix or an (indices, scores) pair, got {type(graph).__name__}"
        )
    if n is not None and w.shape[0] != n:
        raise GraphError(f"graph has {w.shape[0]} nodes but labels have {n} rows (a graph from other data?)")
    return w


def _user_sparse(m: Any) -> sp.csr_array:
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise GraphError(f"weight matrix must be square, got shape {m.shape}")
    # S = D^-1/2 W D^-1/2 does not change when W is scaled: a W whose largest weight is far
    # outside the float32 comfort zone is scaled (in float64) to a largest weight of 1 before
    # the float32 cast, so weights of 1e-39 or 1e39 keep their edges. Other W are used as given.
    w64 = sp.csr_array(m, dtype=np.float64)
    w64.setdiag(0)
    w64.eliminate_zeros()
    finite = w64.data[np.isfinite(w64.data)]
    top = float(np.abs(finite).max()) if finite.size else 0.0
    if top > 0 and not 1e-18 <= top <= 1e18:
        w64 = w64 * (1.0 / top)
    w = sp.csr_array(w64, dtype=np.float32)
    w.setdiag(0)
    w.eliminate_zeros()
    w.sum_duplicates()
    for bad, what in ((~np.isfinite(w.data), "a non-finite weight"), (w.data < 0, "a negative weight")):
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            row = int(np.searchsorted(w.indptr, pos, side="right") - 1)
            raise GraphError(f"weight matrix row {row} has {what} {w.data[pos]}; W must be finite and >= 0")
    if (abs(w - w.T) > 1e-6 * max(1.0, float(w.data.max(initial=0.0)))).nnz:
        sym = _core.symmetrize_max(w.shape[0], w.indptr.astype(np.int64), w.indices.astype(np.int32), w.data)
        w = sp.csr_array((sym.data, sym.indices, sym.indptr), shape=w.shape)
    return w


def _as_labels(labels: Any) -> tuple[np.ndarray, bool]:
    y = np.asarray(labels)
    if y.dtype.kind not in "fiub":
        raise LabelsError(f"labels have dtype {y.dtype}; expected probabilities (float)")
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        # (n,) and (n, 1): probabilities of the positive class
        p = y.reshape(-1).astype(np.float32)
        return np.ascontiguousarray(np.stack([1.0 - p, p], axis=1)), True
    if y.ndim == 2 and y.shape[1] >= 2:
        return np.ascontiguousarray(y, dtype=np.float32), False
    raise LabelsError(f"labels must be (n,) probabilities or (n, c) soft labels, got shape {y.shape}")


def _check_label_values(y: np.ndarray, binary: bool) -> None:
    bad = ~np.isfinite(y) | (y < 0) | (y > 1)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        value = y[row, 1] if binary else y[row][bad[row]][0]
        raise LabelsError(f"labels row {row} has value {value} outside [0, 1]")


def smooth_labels(
    graph: Any,
    labels: Any,
    *,
    alpha: float = 0.5,
    max_iter: int = 50,
    tol: float = 1e-6,
    confidence: Any = None,
    clamped: Any = None,
    metric: MetricName = "cosine",
    num_threads: int | None = None,
    return_info: bool = False,
) -> np.ndarray | SmoothResult:
    """Spread soft labels over a graph: ``F <- alpha S F + (1 - alpha) Y`` with
    ``S = D^-1/2 W D^-1/2`` (Zhou et al. 2004), from ``F = Y`` until ``max|dF| < tol`` or
    `max_iter` iterations, then rows normalised to sum 1.

    graph: a `KnnGraph`, a scipy sparse W, or an ``(indices, scores)`` pair (see `weight_matrix`).
    labels: ``(n,)`` or ``(n, 1)`` probabilities of the positive class, or ``(n, c)``
        soft-label rows, c >= 2 (each in [0, 1], summing > 0). The result has the same shape
        (float32). A label count other than the graph's node count is a `LabelsError`.
    alpha: in [0, 1): weight of the neighbours against a node's own label (0 returns Y).
    confidence: optional ``(n,)`` weights >= 0 scaling each node's seed label ``Y_i``.
    clamped: optional ``(n,)`` bool; clamped nodes keep their own label.
    return_info: return a `SmoothResult` with iteration count and residual instead."""
    y, binary = _as_labels(labels)
    shape = np.shape(labels)
    n = y.shape[0]
    num_threads = check_threads(num_threads)
    _check_label_values(y, binary)
    if not isinstance(alpha, (int, float, np.floating)):  # its range is the core's to check
        raise ParameterError(f"alpha={alpha} must be in [0, 1)")
    max_iter = check_int("max_iter", max_iter, 0, 2**63 - 1)
    if not isinstance(tol, (int, float, np.integer, np.floating)) or not (tol >= 0):
        raise ParameterError(f"tol={tol} must be >= 0")
    conf = None
    if confidence is not None:
        conf = np.ascontiguousarray(confidence, dtype=np.float32)
        if conf.shape != (n,):
            raise LabelsError(f"confidence has shape {conf.shape}, expected ({n},)")
        bad = ~np.isfinite(conf) | (conf < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise LabelsError(f"confidence row {i} is {conf[i]}; must be finite and >= 0")
    clamp = None
    if clamped is not None:
        clamp = np.ascontiguousarray(clamped, dtype=np.bool_)
        if clamp.shape != (n,):
            raise LabelsError(f"clamped has shape {clamp.shape}, expected ({n},)")
    w = weight_matrix(graph, metric=metric)
    if w.shape[0] != n:
        raise LabelsError(f"labels have {n} rows but the graph has {w.shape[0]} nodes (labels or graph from other data?)")
    out = _core.smooth_labels(
        n,
        np.ascontiguousarray(w.indptr, dtype=np.int64),
        np.ascontiguousarray(w.indices, dtype=np.int32),
        np.ascontiguousarray(w.data, dtype=np.float32),
        y,
        float(alpha),
        int(max_iter),
        float(tol),
        conf,
        clamp,
        num_threads,
    )
    labels_out = out.labels
    result = np.ascontiguousarray(labels_out[:, 1]).reshape(shape) if binary else labels_out
    if return_info:
        return SmoothResult(result, out.iterations, out.residual, out.converged, out.setup_seconds, out.iterate_seconds)
    return result
