//! Results handed to Python: classes with read-only getters instead of positional tuples.
//!
//! Copies: the `f32` outputs (scores, weights, labels) are moved into numpy, no copy; the
//! integer outputs are converted value by value (each class says how). A getter returns the
//! same numpy array every time, not a copy.

use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::prelude::*;
use sw2s_core::{Csr, KnnResult, SmoothResult};

/// A square CSR matrix as numpy arrays (`knn_to_weights`, `symmetrize_max`), for
/// `scipy.sparse.csr_array((data, indices, indptr), shape=(n, n))`.
#[pyclass(frozen, module = "selective_w2sg.graph._core")]
pub(crate) struct CsrArrays {
    n: usize,
    indptr: Py<PyArray1<i64>>,
    indices: Py<PyArray1<i32>>,
    data: Py<PyArray1<f32>>,
}

impl CsrArrays {
    /// The core's `u64` row pointers and `u32` columns are converted value by value in place
    /// (same-size types: std reuses the vector's buffer, so no second buffer is allocated);
    /// the values are moved. numpy then owns the buffers.
    pub(crate) fn new(py: Python<'_>, w: Csr) -> Self {
        let indptr: Vec<i64> = w.indptr.into_iter().map(|v| v as i64).collect();
        let indices: Vec<i32> = w.indices.into_iter().map(|v| v as i32).collect();
        CsrArrays {
            n: w.n,
            indptr: indptr.into_pyarray(py).unbind(),
            indices: indices.into_pyarray(py).unbind(),
            data: w.data.into_pyarray(py).unbind(),
        }
    }
}

#[pymethods]
impl CsrArrays {
    /// Rows (and columns) of the square matrix.
    #[getter]
    fn n(&self) -> usize {
        self.n
    }

    /// `(n + 1,)` int64 row pointers.
    #[getter]
    fn indptr(&self, py: Python<'_>) -> Py<PyArray1<i64>> {
        self.indptr.clone_ref(py)
    }

    /// `(nnz,)` int32 column indices, ascending within each row.
    #[getter]
    fn indices(&self, py: Python<'_>) -> Py<PyArray1<i32>> {
        self.indices.clone_ref(py)
    }

    /// `(nnz,)` float32 weights.
    #[getter]
    fn data(&self, py: Python<'_>) -> Py<PyArray1<f32>> {
        self.data.clone_ref(py)
    }
}

/// `knn_graph`'s result.
#[pyclass(frozen, module = "selective_w2sg.graph._core")]
pub(crate) struct KnnOutput {
    indices: Py<PyArray2<i64>>,
    scores: Py<PyArray2<f32>>,
    metric: &'static str,
    method: &'static str,
    estimated_recall: Option<f64>,
    approx_recalls: Vec<f64>,
}

impl KnnOutput {
    /// The core's `u32` indices are copied into a new `int64` buffer (the element sizes
    /// differ: one copy of `n * k` values); the scores are moved.
    pub(crate) fn new(py: Python<'_>, r: KnnResult, metric: &'static str) -> Self {
        let (n, k) = (r.n, r.k);
        let idx: Vec<i64> = r.indices.into_iter().map(|i| i as i64).collect();
        let indices = numpy::ndarray::Array2::from_shape_vec((n, k), idx).expect("core returned n*k indices");
        let scores = numpy::ndarray::Array2::from_shape_vec((n, k), r.scores).expect("core returned n*k scores");
        KnnOutput {
            indices: indices.into_pyarray(py).unbind(),
            scores: scores.into_pyarray(py).unbind(),
            metric,
            method: r.method_used.name(),
            estimated_recall: r.estimated_recall,
            approx_recalls: r.approx_recalls,
        }
    }
}

#[pymethods]
impl KnnOutput {
    /// `(n, k)` int64 neighbour indices, best first, never the point itself.
    #[getter]
    fn indices(&self, py: Python<'_>) -> Py<PyArray2<i64>> {
        self.indices.clone_ref(py)
    }

    /// `(n, k)` float32 scores: similarity (cosine, ip) or squared distance (sqeuclidean).
    #[getter]
    fn scores(&self, py: Python<'_>) -> Py<PyArray2<f32>> {
        self.scores.clone_ref(py)
    }

    /// The metric's name (an alias given to `knn_graph` comes back as its metric's name).
    #[getter]
    fn metric(&self) -> &'static str {
        self.metric
    }

    /// The method that produced the graph: "exact" or "approx" (never "auto").
    #[getter]
    fn method(&self) -> &'static str {
        self.method
    }

    /// recall@k estimated on a sample against exact search; None for exact search.
    #[getter]
    fn estimated_recall(&self) -> Option<f64> {
        self.estimated_recall
    }

    /// method "auto" only, when its first approximate pass fell short of `min_recall`: the
    /// estimated recall of each approximate pass it ran; else empty. A new list per access.
    #[getter]
    fn approx_recalls(&self) -> Vec<f64> {
        self.approx_recalls.clone()
    }
}

/// `smooth_labels`' result.
#[pyclass(frozen, module = "selective_w2sg.graph._core")]
pub(crate) struct SmoothOutput {
    labels: Py<PyArray2<f32>>,
    iterations: usize,
    residual: f32,
    converged: bool,
    setup_seconds: f64,
    iterate_seconds: f64,
}

impl SmoothOutput {
    /// The labels are moved into numpy, no copy.
    pub(crate) fn new(py: Python<'_>, r: SmoothResult, c: usize) -> Self {
        let rows = r.labels.len() / c.max(1);
        let labels = numpy::ndarray::Array2::from_shape_vec((rows, c), r.labels).expect("core returned n*c labels");
        SmoothOutput {
            labels: labels.into_pyarray(py).unbind(),
            iterations: r.iterations,
            residual: r.residual,
            converged: r.converged,
            setup_seconds: r.setup_seconds,
            iterate_seconds: r.iterate_seconds,
        }
    }
}

#[pymethods]
impl SmoothOutput {
    /// `(n, c)` float32 labels, rows summing to 1.
    #[getter]
    fn labels(&self, py: Python<'_>) -> Py<PyArray2<f32>> {
        self.labels.clone_ref(py)
    }

    /// Iterations run.
    #[getter]
    fn iterations(&self) -> usize {
        self.iterations
    }

    /// `max |F_t - F_{t-1}|` of the last iteration.
    #[getter]
    fn residual(&self) -> f32 {
        self.residual
    }

    /// Whether the residual fell below `tol` within `max_iter` iterations.
    #[getter]
    fn converged(&self) -> bool {
        self.converged
    }

    /// Seconds spent building the operator `S` and the node order.
    #[getter]
    fn setup_seconds(&self) -> f64 {
        self.setup_seconds
    }

    /// Seconds spent in the iterations.
    #[getter]
    fn iterate_seconds(&self) -> f64 {
        self.iterate_seconds
    }
}
