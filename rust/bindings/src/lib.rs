//! Thin PyO3 bindings: convert numpy arrays to core views and back, parse string options
//! into core enums, release the GIL around all heavy work, make long calls interruptible
//! (Ctrl-C), relay the core's warnings to the calling thread, and map core errors to the
//! typed exceptions of `selective_w2sg.graph.errors`. No algorithm and no rule lives here: names,
//! defaults, limits and messages are the core's.
//!
//! Modules: `errors` (exception classes, core error mapping), `run` (thread pool, worker
//! thread, Ctrl-C, warnings), `convert` (arguments in), `outputs` (result classes out).

mod convert;
mod errors;
mod outputs;
mod run;

use convert::{csr_in, Named, Wrap};
use errors::{to_pyerr, EmbeddingsError, ParameterError};
use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use outputs::{CsrArrays, KnnOutput, SmoothOutput};
use pyo3::prelude::*;
use run::{run, Threads};
use sw2s_core::knn::{DEFAULT_MIN_RECALL, DEFAULT_RECALL_SAMPLE};
use sw2s_core::{ApproxParams, CoreError, KnnParams, MatrixView, Method, Metric, SmoothParams};

/// kNN graph of the rows of a C-contiguous `(n, d)` float32 array (borrowed, not copied).
/// `min_recall` and `recall_sample` default (None) to `DEFAULT_MIN_RECALL` and
/// `DEFAULT_RECALL_SAMPLE`. With method "auto", a fallback to exact search is announced by an
/// `ExactFallbackWarning` before the exact search starts; when a warnings filter turns it
/// into an error, the call stops and raises it.
#[pyfunction]
#[pyo3(signature = (data, k, metric, method, seed, num_threads=None, min_recall=None, recall_sample=None))]
#[allow(clippy::too_many_arguments)]
fn knn_graph(
    py: Python<'_>,
    data: PyReadonlyArray2<'_, f32>,
    k: usize,
    metric: Wrap<Metric>,
    method: Wrap<Method>,
    seed: u64,
    num_threads: Option<usize>,
    min_recall: Option<f64>,
    recall_sample: Option<usize>,
) -> PyResult<KnnOutput> {
    let shape = data.shape();
    let (n, d) = (shape[0], shape[1]);
    let slice = data.as_slice().map_err(|_| EmbeddingsError::new_err("embeddings must be C-contiguous"))?;
    let defaults = ApproxParams::default();
    let approx = ApproxParams {
        min_recall: min_recall.unwrap_or(defaults.min_recall),
        recall_sample: recall_sample.unwrap_or(defaults.recall_sample),
        ..defaults
    };
    let params = KnnParams { k, metric: metric.0, method: method.0, seed, approx };
    let view = MatrixView::new(slice, n, d).map_err(to_pyerr)?;
    let res = run(py, num_threads, Threads::CapAndWarn, |call| {
        sw2s_core::knn_graph_with_hook(view, &params, call.cancel, &|f| call.on_exact_fallback(f))
    })?;
    Ok(KnnOutput::new(py, res, metric.0.name()))
}

/// The weight matrix `W` of a kNN graph (`(n, k)` int64 indices, -1 for none, and float32
/// scores read as `metric`), borrowed, not copied.
#[pyfunction]
#[pyo3(signature = (indices, scores, metric, num_threads=None))]
fn knn_to_weights(
    py: Python<'_>,
    indices: PyReadonlyArray2<'_, i64>,
    scores: PyReadonlyArray2<'_, f32>,
    metric: Wrap<Metric>,
    num_threads: Option<usize>,
) -> PyResult<CsrArrays> {
    let (n, k) = (indices.shape()[0], indices.shape()[1]);
    if scores.shape() != indices.shape() {
        return Err(to_pyerr(CoreError::ShapeMismatch(format!(
            "indices {:?} vs scores {:?}",
            indices.shape(),
            scores.shape()
        ))));
    }
    let idx = indices.as_slice()?;
    let sc = scores.as_slice()?;
    let w = run(py, num_threads, Threads::Cap, |_| sw2s_core::knn_to_weights(idx, sc, n, k, metric.0))?;
    Ok(CsrArrays::new(py, w))
}

/// `max(W, W^T)` of a square CSR matrix given as arrays (copied in, see `csr_in`).
#[pyfunction]
#[pyo3(signature = (n, indptr, indices, data, num_threads=None))]
fn symmetrize_max(
    py: Python<'_>,
    n: usize,
    indptr: PyReadonlyArray1<'_, i64>,
    indices: PyReadonlyArray1<'_, i32>,
    data: PyReadonlyArray1<'_, f32>,
    num_threads: Option<usize>,
) -> PyResult<CsrArrays> {
    let w = csr_in(n, &indptr, &indices, &data)?;
    let s = run(py, num_threads, Threads::Cap, |_| Ok(sw2s_core::symmetrize_max(&w)))?;
    Ok(CsrArrays::new(py, s))
}

/// Label spreading over CSR `W` (copied in, see `csr_in`). `labels` is `(n, c)` float32,
/// borrowed, as are `confidence` and `clamped`; `alpha` is checked by the core as given.
#[pyfunction]
#[pyo3(signature = (n, indptr, indices, data, labels, alpha, max_iter, tol, confidence=None, clamped=None, num_threads=None))]
#[allow(clippy::too_many_arguments)]
fn smooth_labels(
    py: Python<'_>,
    n: usize,
    indptr: PyReadonlyArray1<'_, i64>,
    indices: PyReadonlyArray1<'_, i32>,
    data: PyReadonlyArray1<'_, f32>,
    labels: PyReadonlyArray2<'_, f32>,
    alpha: f64,
    max_iter: usize,
    tol: f32,
    confidence: Option<PyReadonlyArray1<'_, f32>>,
    clamped: Option<PyReadonlyArray1<'_, bool>>,
    num_threads: Option<usize>,
) -> PyResult<SmoothOutput> {
    let params = SmoothParams { alpha: sw2s_core::check_alpha(alpha).map_err(to_pyerr)?, max_iter, tol };
    let w = csr_in(n, &indptr, &indices, &data)?;
    let c = labels.shape()[1];
    let y = labels.as_slice()?;
    let conf = confidence.as_ref().map(|a| a.as_slice()).transpose()?;
    let clamp = clamped.as_ref().map(|a| a.as_slice()).transpose()?;
    let res = run(py, num_threads, Threads::CapAndWarn, |call| sw2s_core::smooth_labels(&w, y, c, &params, conf, clamp, call.cancel))?;
    Ok(SmoothOutput::new(py, res, c))
}

/// The lower end of the Wilson 95% interval of a recall@k estimated on `sample` of `n` rows
/// (`sample * k` neighbour checks), as method "auto" compares it with `min_recall`; the
/// estimate itself when every row was checked.
#[pyfunction]
fn recall_lower_bound(recall: f64, sample: usize, n: usize, k: usize) -> PyResult<f64> {
    if !(0.0..=1.0).contains(&recall) {
        return Err(ParameterError::new_err(format!("recall={recall} must be in [0, 1]")));
    }
    if sample.clamp(1, n.max(1)).checked_mul(k).is_none() {
        return Err(ParameterError::new_err(format!("sample * k = {sample} * {k} is too large")));
    }
    Ok(sw2s_core::knn::recall_lower_bound(recall, sample, n, k))
}

/// The name of a metric given by its name or an alias ("l2" -> "sqeuclidean");
/// `ParameterError` for anything else.
#[pyfunction]
fn metric_name(metric: Wrap<Metric>) -> &'static str {
    metric.0.name()
}

/// `alpha` as label spreading takes it (a float in [0, 1)), else the core's `ParameterError`:
/// how a configuration checks alpha before any work starts, by the core's rule.
#[pyfunction]
fn check_alpha(alpha: f64) -> PyResult<f64> {
    sw2s_core::check_alpha(alpha).map(|_| alpha).map_err(to_pyerr)
}

/// The CPUs this process may run on: the most threads any call uses (more are capped, with a
/// `ThreadsCappedWarning`).
#[pyfunction]
fn available_cpus() -> usize {
    run::available_cpus()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("AUTO_EXACT_MAX_N", sw2s_core::AUTO_EXACT_MAX_N)?;
    m.add("DEFAULT_MIN_RECALL", DEFAULT_MIN_RECALL)?;
    m.add("DEFAULT_RECALL_SAMPLE", DEFAULT_RECALL_SAMPLE)?;
    m.add("METRICS", Metric::names_tuple(py)?)?;
    m.add("METHODS", Method::names_tuple(py)?)?;
    m.add_class::<KnnOutput>()?;
    m.add_class::<CsrArrays>()?;
    m.add_class::<SmoothOutput>()?;
    m.add_function(wrap_pyfunction!(knn_graph, m)?)?;
    m.add_function(wrap_pyfunction!(knn_to_weights, m)?)?;
    m.add_function(wrap_pyfunction!(symmetrize_max, m)?)?;
    m.add_function(wrap_pyfunction!(smooth_labels, m)?)?;
    m.add_function(wrap_pyfunction!(recall_lower_bound, m)?)?;
    m.add_function(wrap_pyfunction!(metric_name, m)?)?;
    m.add_function(wrap_pyfunction!(check_alpha, m)?)?;
    m.add_function(wrap_pyfunction!(available_cpus, m)?)?;
    Ok(())
}
