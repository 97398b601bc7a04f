"""k-nearest-neighbour graphs over embeddings, computed by the Rust core."""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from . import _core
from .errors import DataError, EmbeddingsError, GraphError, ParameterError
from .io import save_npz

# The names are the Rust core's (one table, `_core.METRICS` / `_core.METHODS`, which also
# parses them); the Literal aliases repeat them for type checkers only (a test keeps them equal).
MetricName = Literal["cosine", "ip", "sqeuclidean"]
MethodName = Literal["auto", "exact", "approx"]
METRICS: tuple[str, ...] = _core.METRICS
METHODS: tuple[str, ...] = _core.METHODS


U64_MAX = 2**64 - 1
MAX_THREADS = 4096


def check_int(name: str, value: Any, lo: int, hi: int, error: type[Exception] = ParameterError) -> int:
    """`value` as an int in ``[lo, hi]``; anything else (bool, float, out of range, also
    beyond what the core's integer types hold) is a typed error naming it, never an
    OverflowError from the bindings."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise error(f"{name}={value!r} must be an integer")
    v = int(value)
    if not lo <= v <= hi:
        raise error(f"{name}={v} must be in [{lo}, {hi}]")
    return v


def check_threads(num_threads: Any) -> int | None:
    """None (``SW2S_NUM_THREADS``, else all cores) or an int in [1, MAX_THREADS], else a
    `ParameterError` naming it. The core reads ``SW2S_NUM_THREADS`` and caps every request at the
    CPUs available (`_core.available_cpus()`) with a `ThreadsCappedWarning`."""
    return None if num_threads is None else check_int("num_threads", num_threads, 1, MAX_THREADS)


def normalize_metric(metric: str) -> str:
    """The name of `metric` given by its name or an alias ("l2" -> "sqeuclidean"), as the core
    reads it; `ParameterError` for anything else."""
    return _core.metric_name(metric)


def as_embeddings(x: Any, name: str = "embeddings") -> np.ndarray:
    """Return `x` as a C-contiguous `(n, d)` float32 array, without a copy when it already is
    one (a memory-mapped float32 `.npy` stays memory-mapped). float16/float64 are converted;
    integer, bool, complex and object arrays are refused."""
    a = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if a.ndim != 2:
        raise EmbeddingsError(f"{name} must be a 2-d (n, d) array, got shape {a.shape}")
    if a.dtype.kind != "f":
        raise EmbeddingsError(
            f"{name} has dtype {a.dtype}; expected float32 (float16/float64 are converted, "
            "integer and other dtypes are refused: convert them explicitly if that is what you mean)"
        )
    if a.shape[1] == 0:
        raise EmbeddingsError(f"{name} has shape {a.shape}: no dimensions")
    return np.ascontiguousarray(a, dtype=np.float32)


_GRAPH_ARRAYS = ("indices", "scores", "metric", "method", "estimated_recall", "fingerprint", "seed")


def _reason(e: BaseException) -> str:
    """The first sentence of an exception's message, on one line."""
    text = str(e).split(". ")[0].replace("\n", " ").strip()
    return text or type(e).__name__


def data_fingerprint(x: np.ndarray) -> str:
    """Cheap identity of an embedding matrix: its shape and 16 evenly spaced rows. Lets
    a saved graph refuse to be used with other data without reading all of it."""
    h = hashlib.sha1(f"{x.shape}".encode())
    for i in np.linspace(0, x.shape[0] - 1, num=min(16, x.shape[0]), dtype=np.int64):
        h.update(np.ascontiguousarray(x[i], dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class KnnGraph:
    """A directed kNN graph. ``indices[i]`` are the ``k`` neighbours of point ``i``, best
    first, never ``i`` itself (int64, ``(n, k)``); ``scores[i]`` their similarity (cosine,
    ip: higher is better) or squared distance (sqeuclidean: lower is better) (float32,
    ``(n, k)``). ``method`` is the method that produced it ("exact" or "approx") and
    ``estimated_recall`` its recall@k measured on a sample against exact search."""

    indices: np.ndarray
    scores: np.ndarray
    metric: str
    method: str
    estimated_recall: float | None = None
    fingerprint: str | None = None
    seed: int = 0

    @property
    def n(self) -> int:
        return int(self.indices.shape[0])

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def to_scipy(self, symmetric: bool = False) -> sp.csr_array:
        """The graph as an ``(n, n)`` CSR array. ``symmetric=False``: the directed graph with
        the raw scores (row i holds i's k neighbours). ``symmetric=True``: the weight matrix W
        (see `weights`)."""
        if symmetric:
            return self.weights()
        n, k = self.indices.shape
        valid = self.indices >= 0
        rows = np.repeat(np.arange(n, dtype=np.int64), k).reshape(n, k)[valid]
        return sp.csr_array((self.scores[valid], (rows, self.indices[valid])), shape=(n, n))

    def weights(self) -> sp.csr_array:
        """The symmetric weight matrix W that `smooth_labels` spreads over:
        ``W_ij = max(w(i->j), w(j->i))`` where ``w`` is ``max(score, 0)`` for cosine and ip
        (negative similarities are no evidence of agreement, so they add no edge) and a
        self-tuning Gaussian kernel ``exp(-d_ij / (sigma_i sigma_j))`` of the squared distance
        for sqeuclidean (``sigma_i^2`` = distance to i's k-th neighbour). No self-loops."""
        return self._weight_matrix

    @cached_property
    def _weight_matrix(self) -> sp.csr_array:
        w = _core.knn_to_weights(
            np.ascontiguousarray(self.indices, dtype=np.int64),
            np.ascontiguousarray(self.scores, dtype=np.float32),
            self.metric,
        )
        return sp.csr_array((w.data, w.indices, w.indptr), shape=(w.n, w.n))

    def save(self, path: str | os.PathLike[str], overwrite: bool = True) -> Path:
        """Write the graph to an ``.npz`` file atomically (`overwrite=False`: only if `path`
        does not exist when the write completes, see `io.atomic_path`)."""
        return save_npz(
            path,
            overwrite=overwrite,
            indices=self.indices,
            scores=self.scores,
            metric=np.array(self.metric),
            method=np.array(self.method),
            estimated_recall=np.array(np.nan if self.estimated_recall is None else self.estimated_recall),
            fingerprint=np.array(self.fingerprint or ""),
            seed=np.array(self.seed),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KnnGraph:
        """A graph saved by `save`; a missing, empty, truncated or other file is a `DataError`
        naming it and what is wrong."""
        where = f"graph file {str(path)!r}"
        if Path(path).is_dir():
            raise DataError(f"{where} is a folder, not a .npz graph")
        if Path(path).is_file() and Path(path).stat().st_size == 0:
            raise DataError(f"{where} is empty (0 bytes), not a graph saved by sw2s")
        try:
            fh = open(path, "rb")  # opened here: numpy leaks the file it opens when the zip is bad
        except FileNotFoundError:
            raise DataError(f"{where} does not exist") from None
        with fh:
            return cls._read(fh, where)

    @classmethod
    def _read(cls, fh: Any, where: str) -> KnnGraph:
        try:
            z = np.load(fh, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"{where} is not a readable .npz graph ({_reason(e)})") from None
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise DataError(f"{where} holds a single array (a .npy), not a graph saved by `sw2s knn` (.npz)")
        missing = [a for a in _GRAPH_ARRAYS if a not in z.files]
        if missing:
            z.close()
            raise DataError(f"{where} is not a graph saved by sw2s (no {missing[0]!r} array; "
                            f"it holds {', '.join(z.files[:5]) or 'no arrays'})")
        try:
            with z:
                recall = float(z["estimated_recall"])
                g = cls(
                    indices=np.asarray(z["indices"]),
                    scores=np.asarray(z["scores"]),
                    metric=str(z["metric"]),
                    method=str(z["method"]),
                    estimated_recall=None if np.isnan(recall) else recall,
                    fingerprint=str(z["fingerprint"]) or None,
                    seed=int(z["seed"]),
                )
        except (KeyError, ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"{where} is truncated or corrupt ({_reason(e)})") from None
        if g.indices.ndim != 2 or g.scores.shape != g.indices.shape or g.indices.dtype.kind not in "iu":
            raise DataError(f"{where} is corrupt: indices {g.indices.shape} {g.indices.dtype}, scores {g.scores.shape}")
        if g.metric not in METRICS:
            raise DataError(f"{where} is corrupt: unknown metric {g.metric!r}")
        return g

    def check_matches(self, embeddings: np.ndarray) -> None:
        """Raise `GraphError` when this graph was not built from `embeddings`."""
        if embeddings.shape[0] != self.n:
            raise GraphError(f"graph has {self.n} nodes but embeddings have {embeddings.shape[0]} rows")
        if self.fingerprint is not None and data_fingerprint(embeddings) != self.fingerprint:
            raise GraphError("graph was built from other embeddings (fingerprint mismatch)")


def knn_graph(
    embeddings: Any,
    k: int = 10,
    *,
    metric: MetricName = "cosine",
    method: MethodName = "auto",
    seed: int = 0,
    num_threads: int | None = None,
    min_recall: float = _core.DEFAULT_MIN_RECALL,
    recall_sample: int = _core.DEFAULT_RECALL_SAMPLE,
) -> KnnGraph:
    """k-nearest-neighbour graph of the rows of `embeddings`.

    embeddings: ``(n, d)`` float32 (float64/float16 converted; a memory-mapped float32 `.npy`
        is read in place, without a copy).
    k: neighbours per point, ``1 <= k < n``; a point is never its own neighbour.
    metric: "cosine" (rows normalised; zero rows refused), "ip" (inner product) or
        "sqeuclidean" (squared Euclidean distance).
    method: "exact" (blocked matrix product fused with a top-k filter: identical to brute
        force up to exact ties, which go to the smaller index), "approx" (NN-descent; for
        millions of points; deterministic for a given seed and thread count) or "auto"
        (exact for small n; otherwise approximate, with recall@k estimated on `recall_sample`
        points against exact search; below `min_recall` a stronger approximate pass, and if
        that too falls short, exact search with an `ExactFallbackWarning` naming both
        estimated recalls and `min_recall`). A pass is accepted when the lower end of the
        Wilson 95% interval of its sampled recall (`_core.recall_lower_bound`) reaches
        `min_recall`, so that the floor holds for the graph, not only for the sample. The Rust
        core makes these decisions and issues the warning, attributed to the caller, before
        the exact search starts; a warnings filter that turns it into an error stops the call
        there and raises it.
    num_threads: threads for this call (default: ``SW2S_NUM_THREADS`` or all cores); at most
        the CPUs available, with a `ThreadsCappedWarning` when more are asked for.

    seed: an integer in [0, 2^64).
    recall_sample: at least 1.

    Numerics: cosine rows are normalised from norms computed in float64, so rows of tiny
    (even denormal) norm get proper unit vectors; for sqeuclidean and ip the rows are centred
    and scaled by a power of two before the float32 search and the scores scaled back, so data
    far from the origin (an offset of 1e4) keeps its precision and scales from 1e-30 to 1e15
    give the same graph.

    Raises `EmbeddingsError` (NaN/inf naming the first bad row, zero-norm rows under cosine,
    n < 2, bad shape or dtype, scores beyond the float32 range such as squared distances of
    data scaled by 1e30), `ParameterError` (k, seed, num_threads, recall_sample, metric,
    method)."""
    x = as_embeddings(embeddings)
    # integers checked here, before the conversion to the core's types (a bool, a float or an
    # int beyond them would be a TypeError or OverflowError there); the core checks k < n,
    # reads metric and method, and decides "auto"
    k = check_int("k", k, 1, U64_MAX)
    seed = check_int("seed", seed, 0, U64_MAX)
    recall_sample = check_int("recall_sample", recall_sample, 1, U64_MAX)
    num_threads = check_threads(num_threads)
    if isinstance(min_recall, bool) or not isinstance(min_recall, (int, float, np.integer, np.floating)):
        raise ParameterError(f"min_recall={min_recall!r} must be in [0, 1]")  # the range is the core's to check
    out = _core.knn_graph(x, k, metric, method, seed, num_threads, float(min_recall), recall_sample)
    return KnnGraph(
        indices=out.indices,
        scores=out.scores,
        metric=out.metric,
        method=out.method,
        estimated_recall=out.estimated_recall,
        fingerprint=data_fingerprint(x),
        seed=int(seed),
    )
