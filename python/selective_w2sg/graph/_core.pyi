# Type stubs for the compiled Rust extension (rust/bindings/src/lib.rs).
import numpy as np
import numpy.typing as npt

__version__: str

def knn_graph(
    data: npt.NDArray[np.float32],
    k: int,
    metric: str,
    method: str,
    seed: int,
    num_threads: int | None = None,
    min_recall: float = 0.95,
    recall_sample: int = 1000,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], str, float | None]: ...
def knn_to_weights(
    indices: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    metric: str,
    num_threads: int | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
def symmetrize_max(
    n: int,
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    num_threads: int | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
def smooth_labels(
    n: int,
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    labels: npt.NDArray[np.float32],
    alpha: float,
    max_iter: int,
    tol: float,
    confidence: npt.NDArray[np.float32] | None = None,
    clamped: npt.NDArray[np.bool_] | None = None,
    num_threads: int | None = None,
) -> tuple[npt.NDArray[np.float32], int, float, bool, float, float]: ...
