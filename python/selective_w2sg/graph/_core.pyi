# Type stubs for the compiled Rust extension (rust/bindings/src). Hand-written;
# tests/test_core_stub.py checks them against the compiled module (names, parameters and
# defaults, classes and getters, constants, and the types of what each function returns).
from typing import final

import numpy as np

__version__: str
AUTO_EXACT_MAX_N: int
DEFAULT_MIN_RECALL: float
DEFAULT_RECALL_SAMPLE: int
METRICS: tuple[str, ...]
METHODS: tuple[str, ...]

@final
class KnnOutput:
    """`knn_graph`'s result."""

    @property
    def indices(self) -> np.ndarray[tuple[int, int], np.dtype[np.int64]]: ...
    @property
    def scores(self) -> np.ndarray[tuple[int, int], np.dtype[np.float32]]: ...
    @property
    def metric(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def estimated_recall(self) -> float | None: ...
    @property
    def approx_recalls(self) -> list[float]: ...

@final
class CsrArrays:
    """A square CSR matrix: ``scipy.sparse.csr_array((data, indices, indptr), shape=(n, n))``."""

    @property
    def n(self) -> int: ...
    @property
    def indptr(self) -> np.ndarray[tuple[int], np.dtype[np.int64]]: ...
    @property
    def indices(self) -> np.ndarray[tuple[int], np.dtype[np.int32]]: ...
    @property
    def data(self) -> np.ndarray[tuple[int], np.dtype[np.float32]]: ...

@final
class SmoothOutput:
    """`smooth_labels`' result."""

    @property
    def labels(self) -> np.ndarray[tuple[int, int], np.dtype[np.float32]]: ...
    @property
    def iterations(self) -> int: ...
    @property
    def residual(self) -> float: ...
    @property
    def converged(self) -> bool: ...
    @property
    def setup_seconds(self) -> float: ...
    @property
    def iterate_seconds(self) -> float: ...

def knn_graph(
    data: np.ndarray[tuple[int, int], np.dtype[np.float32]],
    k: int,
    metric: str,
    method: str,
    seed: int,
    num_threads: int | None = None,
    min_recall: float | None = None,
    recall_sample: int | None = None,
) -> KnnOutput: ...
def knn_to_weights(
    indices: np.ndarray[tuple[int, int], np.dtype[np.int64]],
    scores: np.ndarray[tuple[int, int], np.dtype[np.float32]],
    metric: str,
    num_threads: int | None = None,
) -> CsrArrays: ...
def symmetrize_max(
    n: int,
    indptr: np.ndarray[tuple[int], np.dtype[np.int64]],
    indices: np.ndarray[tuple[int], np.dtype[np.int32]],
    data: np.ndarray[tuple[int], np.dtype[np.float32]],
    num_threads: int | None = None,
) -> CsrArrays: ...
def smooth_labels(
    n: int,
    indptr: np.ndarray[tuple[int], np.dtype[np.int64]],
    indices: np.ndarray[tuple[int], np.dtype[np.int32]],
    data: np.ndarray[tuple[int], np.dtype[np.float32]],
    labels: np.ndarray[tuple[int, int], np.dtype[np.float32]],
    alpha: float,
    max_iter: int,
    tol: float,
    confidence: np.ndarray[tuple[int], np.dtype[np.float32]] | None = None,
    clamped: np.ndarray[tuple[int], np.dtype[np.bool_]] | None = None,
    num_threads: int | None = None,
) -> SmoothOutput: ...
def recall_lower_bound(recall: float, sample: int, n: int, k: int) -> float: ...
def metric_name(metric: str) -> str: ...
def check_alpha(alpha: float) -> float: ...
def available_cpus() -> int: ...
