//! Thin PyO3 bindings: convert numpy arrays to core views and back, release the GIL
//! around all heavy work, make long calls interruptible (Ctrl-C), and map core errors to
//! the typed exceptions of `selective_w2sg.graph.errors`. No algorithm lives here.

use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use sw2s_core::{
    ApproxParams, CoreError, Csr, KnnParams, Method, MatrixView, Metric, SmoothParams,
};

// The exception classes of `selective_w2sg.graph.errors`. They are defined in Python because most
// derive from both `Sw2sError` and a builtin (`ValueError`, `KeyboardInterrupt`), which
// `create_exception!` cannot express; here they are imported as typed Rust handles.
pyo3::import_exception!(selective_w2sg.graph.errors, Sw2sError);
pyo3::import_exception!(selective_w2sg.graph.errors, InputError);
pyo3::import_exception!(selective_w2sg.graph.errors, EmbeddingsError);
pyo3::import_exception!(selective_w2sg.graph.errors, LabelsError);
pyo3::import_exception!(selective_w2sg.graph.errors, GraphError);
pyo3::import_exception!(selective_w2sg.graph.errors, ParameterError);
pyo3::import_exception!(selective_w2sg.graph.errors, InterruptedComputation);

/// The Python exception for a core error: its class in `selective_w2sg.graph.errors`, with the
/// core's message. Every error the core returns goes through here.
fn to_pyerr(err: CoreError) -> PyErr {
    let msg = err.to_string();
    match err {
        CoreError::NonFinite { .. }
        | CoreError::ZeroNorm { .. }
        | CoreError::TooFewPoints { .. }
        | CoreError::ScoreOverflow(_) => {
            EmbeddingsError::new_err(msg)
        }
        CoreError::ShapeMismatch(_) => InputError::new_err(msg),
        CoreError::InvalidK { .. } | CoreError::InvalidAlpha(_) | CoreError::InvalidParameter(_) => {
            ParameterError::new_err(msg)
        }
        CoreError::LabelOutOfRange { .. } | CoreError::ZeroLabelRow { .. } => LabelsError::new_err(msg),
        CoreError::InvalidGraph(_) => GraphError::new_err(msg),
        CoreError::Cancelled => InterruptedComputation::new_err(msg),
    }
}

/// A panic in the core, reported as `Sw2sError` instead of crashing Python.
fn internal_error(what: String) -> PyErr {
    Sw2sError::new_err(format!("internal error in the Rust core (please report): {what}"))
}

/// Threads for one call: the argument, else `SW2S_NUM_THREADS`, else rayon's default; at
/// most the CPUs available to the process.
/// A pool per call keeps the core fork-safe (torch DataLoader workers fork): no rayon
/// threads outlive a call, so a forked child never inherits a dead global pool.
/// An unset or empty variable means the default; anything but a positive integer is a
/// `ParameterError`, not silently ignored.
fn thread_pool(num_threads: Option<usize>) -> PyResult<rayon::ThreadPool> {
    let n = match num_threads {
        Some(0) => return Err(ParameterError::new_err("num_threads=0 must be at least 1")),
        Some(t) => t,
        None => match std::env::var("SW2S_NUM_THREADS") {
            Ok(v) if !v.trim().is_empty() => match v.trim().parse::<usize>() {
                Ok(t) if t >= 1 => t,
                _ => {
                    return Err(ParameterError::new_err(format!(
                        "SW2S_NUM_THREADS={v:?} is not a positive integer (unset it for all cores)"
                    )))
                }
            },
            _ => 0,
        },
    };
    // Never more threads than the CPUs this process may use (the Python side warns when it
    // caps a request): 100,000 threads on two cores only thrash the machine.
    let avail = std::thread::available_parallelism().map(|a| a.get()).unwrap_or(1);
    let n = n.min(avail);
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("sw2s-{i}"))
        .build()
        .map_err(|e| ParameterError::new_err(format!("cannot start {n} threads: {e}")))
}

/// Run `work` on a worker thread inside a fresh rayon pool with the GIL released, while
/// this thread polls for Ctrl-C and raises the cancel flag the core checks between blocks.
/// Errors become typed Python exceptions; a panic becomes `Sw2sError`, never a panic in Python.
fn run<T, F>(py: Python<'_>, num_threads: Option<usize>, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&AtomicBool) -> Result<T, CoreError> + Send,
{
    let pool = thread_pool(num_threads)?;
    let cancel = AtomicBool::new(false);
    let outcome = py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel();
            let cancel_ref = &cancel;
            let pool_ref = &pool;
            s.spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    pool_ref.install(|| work(cancel_ref))
                }));
                let _ = tx.send(r);
            });
            loop {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(r) => return r,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if Python::attach(|py| py.check_signals().is_err()) {
                            cancel.store(true, Ordering::Relaxed);
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return Err(Box::new("worker thread vanished") as Box<dyn std::any::Any + Send>)
                    }
                }
            }
        })
    });
    match outcome {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_pyerr(e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string());
            Err(internal_error(what))
        }
    }
}

fn parse_metric(s: &str) -> PyResult<Metric> {
    match s {
        "cosine" => Ok(Metric::Cosine),
        "ip" | "inner_product" => Ok(Metric::InnerProduct),
        "sqeuclidean" | "l2" | "squared_l2" => Ok(Metric::SquaredL2),
        other => Err(ParameterError::new_err(format!(
            "metric={other:?} is not one of 'cosine', 'ip', 'sqeuclidean'"
        ))),
    }
}

fn parse_method(s: &str) -> PyResult<Method> {
    match s {
        "exact" => Ok(Method::Exact),
        "approx" => Ok(Method::Approx),
        "auto" => Ok(Method::Auto),
        "approx_retry" => Ok(Method::ApproxRetry), // internal: auto's second pass (graph.py)
        other => Err(ParameterError::new_err(format!(
            "method={other:?} is not one of 'auto', 'exact', 'approx'"
        ))),
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Exact => "exact",
        Method::Approx => "approx",
        Method::Auto => "auto",
        Method::ApproxRetry => "approx",
    }
}

type KnnOut<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f32>>, &'static str, Option<f64>, Vec<f64>);

/// kNN graph of the rows of a C-contiguous `(n, d)` float32 array (borrowed, not copied).
/// Returns `(indices int64 (n, k), scores float32 (n, k), method_used, estimated_recall,
/// approx_recalls)` (the last: `KnnResult::approx_recalls`).
#[pyfunction]
#[pyo3(signature = (data, k, metric, method, seed, num_threads=None, min_recall=0.95, recall_sample=1000))]
#[allow(clippy::too_many_arguments)]
fn knn_graph<'py>(
    py: Python<'py>,
    data: PyReadonlyArray2<'py, f32>,
    k: usize,
    metric: &str,
    method: &str,
    seed: u64,
    num_threads: Option<usize>,
    min_recall: f64,
    recall_sample: usize,
) -> PyResult<KnnOut<'py>> {
    let shape = data.shape();
    let (n, d) = (shape[0], shape[1]);
    let slice = data
        .as_slice()
        .map_err(|_| EmbeddingsError::new_err("embeddings must be C-contiguous"))?;
    let params = KnnParams {
        k,
        metric: parse_metric(metric)?,
        method: parse_method(method)?,
        seed,
        approx: ApproxParams { min_recall, recall_sample, ..ApproxParams::default() },
    };
    let view = MatrixView::new(slice, n, d).map_err(to_pyerr)?;
    let res = run(py, num_threads, |cancel| sw2s_core::knn_graph(view, &params, cancel))?;
    let idx: Vec<i64> = res.indices.iter().map(|&i| i as i64).collect();
    let idx = numpy::ndarray::Array2::from_shape_vec((res.n, res.k), idx)
        .expect("core returned n*k indices")
        .into_pyarray(py);
    let scores = numpy::ndarray::Array2::from_shape_vec((res.n, res.k), res.scores)
        .expect("core returned n*k scores")
        .into_pyarray(py);
    Ok((idx, scores, method_name(res.method_used), res.estimated_recall, res.approx_recalls))
}

type CsrOut<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i32>>, Bound<'py, PyArray1<f32>>);

fn csr_out<'py>(py: Python<'py>, w: Csr) -> CsrOut<'py> {
    let indptr: Vec<i64> = w.indptr.iter().map(|&v| v as i64).collect();
    let indices: Vec<i32> = w.indices.iter().map(|&v| v as i32).collect();
    (indptr.into_pyarray(py), indices.into_pyarray(py), w.data.into_pyarray(py))
}

/// CSR arrays from numpy (`int64` row pointers, `int32` columns) as a core [`Csr`]. The
/// arrays are checked here, before the conversion to unsigned types, since negative values
/// cannot be represented after it; errors are `GraphError`s.
fn csr_in(
    n: usize,
    indptr: &PyReadonlyArray1<'_, i64>,
    indices: &PyReadonlyArray1<'_, i32>,
    data: &PyReadonlyArray1<'_, f32>,
) -> PyResult<Csr> {
    let indptr = indptr.as_slice()?;
    let indices = indices.as_slice()?;
    let data = data.as_slice()?;
    let bad = |m: String| to_pyerr(CoreError::InvalidGraph(m));
    if indptr.len() != n + 1 {
        return Err(bad(format!("indptr has length {}, expected n+1 = {}", indptr.len(), n + 1)));
    }
    if indices.len() != data.len() {
        return Err(bad(format!("{} indices but {} values", indices.len(), data.len())));
    }
    if let Some(row) = indptr.windows(2).position(|w| w[0] > w[1] || w[0] < 0) {
        return Err(bad(format!("indptr decreases at row {row}")));
    }
    if indptr[n] as usize != indices.len() {
        return Err(bad(format!("indptr[n]={} but there are {} entries", indptr[n], indices.len())));
    }
    if let Some(pos) = indices.iter().position(|&j| j < 0 || j as usize >= n) {
        return Err(bad(format!("column index {} at entry {pos} is outside [0, {n})", indices[pos])));
    }
    Ok(Csr {
        n,
        indptr: indptr.iter().map(|&v| v as u64).collect(),
        indices: indices.iter().map(|&v| v as u32).collect(),
        data: data.to_vec(),
    })
}

/// The weight matrix `W` of a kNN graph, as CSR arrays `(indptr int64, indices int32, data float32)`.
#[pyfunction]
#[pyo3(signature = (indices, scores, metric, num_threads=None))]
fn knn_to_weights<'py>(
    py: Python<'py>,
    indices: PyReadonlyArray2<'py, i64>,
    scores: PyReadonlyArray2<'py, f32>,
    metric: &str,
    num_threads: Option<usize>,
) -> PyResult<CsrOut<'py>> {
    let (n, k) = (indices.shape()[0], indices.shape()[1]);
    if scores.shape() != indices.shape() {
        return Err(to_pyerr(CoreError::ShapeMismatch(format!(
            "indices {:?} vs scores {:?}",
            indices.shape(),
            scores.shape()
        ))));
    }
    let metric = parse_metric(metric)?;
    let idx = indices.as_slice()?;
    let sc = scores.as_slice()?;
    let w = run(py, num_threads, |_| sw2s_core::knn_to_weights(idx, sc, n, k, metric))?;
    Ok(csr_out(py, w))
}

/// `max(W, W^T)` of a square CSR matrix given as arrays.
#[pyfunction]
#[pyo3(signature = (n, indptr, indices, data, num_threads=None))]
fn symmetrize_max<'py>(
    py: Python<'py>,
    n: usize,
    indptr: PyReadonlyArray1<'py, i64>,
    indices: PyReadonlyArray1<'py, i32>,
    data: PyReadonlyArray1<'py, f32>,
    num_threads: Option<usize>,
) -> PyResult<CsrOut<'py>> {
    let w = csr_in(n, &indptr, &indices, &data)?;
    let s = run(py, num_threads, |_| Ok(sw2s_core::symmetrize_max(&w)))?;
    Ok(csr_out(py, s))
}

type SmoothOut<'py> = (Bound<'py, PyArray2<f32>>, usize, f32, bool, f64, f64);

/// Label spreading over CSR `W`. `labels` is `(n, c)` float32; returns
/// `(labels (n, c) float32 rows summing to 1, iterations, residual, converged, setup_seconds,
/// iterate_seconds)`.
#[pyfunction]
#[pyo3(signature = (n, indptr, indices, data, labels, alpha, max_iter, tol, confidence=None, clamped=None, num_threads=None))]
#[allow(clippy::too_many_arguments)]
fn smooth_labels<'py>(
    py: Python<'py>,
    n: usize,
    indptr: PyReadonlyArray1<'py, i64>,
    indices: PyReadonlyArray1<'py, i32>,
    data: PyReadonlyArray1<'py, f32>,
    labels: PyReadonlyArray2<'py, f32>,
    alpha: f32,
    max_iter: usize,
    tol: f32,
    confidence: Option<PyReadonlyArray1<'py, f32>>,
    clamped: Option<PyReadonlyArray1<'py, bool>>,
    num_threads: Option<usize>,
) -> PyResult<SmoothOut<'py>> {
    let w = csr_in(n, &indptr, &indices, &data)?;
    let c = labels.shape()[1];
    let y = labels.as_slice()?;
    let conf = confidence.as_ref().map(|a| a.as_slice()).transpose()?;
    let clamp = clamped.as_ref().map(|a| a.as_slice()).transpose()?;
    let params = SmoothParams { alpha, max_iter, tol };
    let res = run(py, num_threads, |cancel| {
        sw2s_core::smooth_labels(&w, y, c, &params, conf, clamp, cancel)
    })?;
    let rows = res.labels.len() / c.max(1);
    let out = numpy::ndarray::Array2::from_shape_vec((rows, c), res.labels)
        .expect("core returned n*c labels")
        .into_pyarray(py);
    Ok((out, res.iterations, res.residual, res.converged, res.setup_seconds, res.iterate_seconds))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("AUTO_EXACT_MAX_N", sw2s_core::knn::AUTO_EXACT_MAX_N)?;
    m.add_function(wrap_pyfunction!(knn_graph, m)?)?;
    m.add_function(wrap_pyfunction!(knn_to_weights, m)?)?;
    m.add_function(wrap_pyfunction!(symmetrize_max, m)?)?;
    m.add_function(wrap_pyfunction!(smooth_labels, m)?)?;
    Ok(())
}
