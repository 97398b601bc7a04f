//! How a call runs: on a worker thread inside a fresh rayon pool, with the GIL released,
//! while the calling thread polls for Ctrl-C and issues the warnings the worker asks for.

use crate::errors::{internal_error, to_pyerr, ExactFallbackWarning, ParameterError, ThreadsCappedWarning};
use pyo3::prelude::*;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use sw2s_core::{CoreError, ExactFallback};

/// How often the calling thread looks for Ctrl-C while the worker runs.
const POLL: Duration = Duration::from_millis(50);

/// Frames up from the Python function that called into `_core` that a warning is attributed
/// to: 2 is that function's caller (the user's line calling `selective_w2sg.knn_graph`), as
/// `warnings.warn(..., stacklevel=2)` in that function would.
const WARN_STACKLEVEL: i32 = 2;

/// Whether a call warns when it caps the threads asked for: the library's entry points
/// (`knn_graph`, `smooth_labels`) do, once per call; their helper calls (`knn_to_weights`,
/// `symmetrize_max`) cap silently, so one user call gives one warning.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    CapAndWarn,
    Cap,
}

/// The CPUs this process may run on (its affinity mask and cgroup quota, where the OS has
/// them): the most threads a call uses.
pub(crate) fn available_cpus() -> usize {
    std::thread::available_parallelism().map(|a| a.get()).unwrap_or(1)
}

/// Threads for one call: the argument, else `SW2S_NUM_THREADS`, else rayon's default;
/// at most the CPUs available, with a `ThreadsCappedWarning` (attributed to the caller) when
/// more are asked for: 100,000 threads on two cores only thrash the machine.
/// A pool per call keeps the core fork-safe (torch DataLoader workers fork): no rayon
/// threads outlive a call, so a forked child never inherits a dead global pool.
/// An unset or empty variable means the default; anything but a positive integer is a
/// `ParameterError`, not silently ignored.
fn thread_pool(py: Python<'_>, num_threads: Option<usize>, threads: Threads) -> PyResult<rayon::ThreadPool> {
    let requested = match num_threads {
        Some(0) => return Err(ParameterError::new_err("num_threads=0 must be at least 1")),
        Some(t) => Some((t, format!("num_threads={t}"))),
        None => match std::env::var("SW2S_NUM_THREADS") {
            Ok(v) if !v.trim().is_empty() => match v.trim().parse::<usize>() {
                Ok(t) if t >= 1 => Some((t, format!("SW2S_NUM_THREADS={}", v.trim()))),
                _ => {
                    return Err(ParameterError::new_err(format!(
                        "SW2S_NUM_THREADS={v:?} is not a positive integer (unset it for all cores)"
                    )))
                }
            },
            _ => None,
        },
    };
    let avail = available_cpus();
    let n = match requested {
        Some((t, what)) if t > avail && threads == Threads::CapAndWarn => {
            let message = format!("{what} is more than the {avail} CPU(s) available; using {avail}");
            warn(py, &py.get_type::<ThreadsCappedWarning>(), message)?;
            avail
        }
        Some((t, _)) => t.min(avail),
        None => 0, // rayon's default: RAYON_NUM_THREADS, else every CPU available
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("sw2s-{i}"))
        .build()
        .map_err(|e| ParameterError::new_err(format!("cannot start {n} threads: {e}")))
}

/// What the worker thread sends the calling thread.
enum Msg<T> {
    /// the work ended: its result, or the panic that ended it
    Done(std::thread::Result<Result<T, CoreError>>),
    /// `Auto` is about to fall back to exact search: warn with this message, then answer
    /// whether the work goes on (false: the warning was raised as an error)
    ExactFallback(String, mpsc::SyncSender<bool>),
}

/// The worker's side of a call: the cancel flag the core polls (raised on Ctrl-C), and the
/// way back to the calling thread.
pub(crate) struct Call<'a, T> {
    pub(crate) cancel: &'a AtomicBool,
    to_caller: &'a mpsc::Sender<Msg<T>>,
}

impl<T> Call<'_, T> {
    /// The hook for `knn_graph_with_hook`: has the calling thread issue an
    /// `ExactFallbackWarning` (attributed to the caller, see [`WARN_STACKLEVEL`]) and waits
    /// for it, so the warning comes before the exact search starts. When a warnings filter
    /// turns the warning into an error, the work stops here with `Cancelled` and [`run`]
    /// raises that error instead.
    pub(crate) fn on_exact_fallback(&self, notice: &ExactFallback) -> Result<(), CoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        if self.to_caller.send(Msg::ExactFallback(notice.to_string(), reply)).is_err() {
            return Err(CoreError::Cancelled);
        }
        match answer.recv() {
            Ok(true) => Ok(()),
            _ => Err(CoreError::Cancelled),
        }
    }
}

/// Issue a warning of `category` from the calling thread, attributed to the caller
/// ([`WARN_STACKLEVEL`]); an `Err` when a warnings filter raises it as an error.
fn warn(py: Python<'_>, category: &Bound<'_, pyo3::types::PyType>, message: String) -> PyResult<()> {
    let message = CString::new(message).map_err(|e| internal_error(e.to_string()))?;
    PyErr::warn(py, category.as_any(), &message, WARN_STACKLEVEL)
}

/// Run `work` on a worker thread inside a fresh rayon pool with the GIL released, while
/// this thread polls for Ctrl-C (raising the cancel flag the core checks between blocks) and
/// issues the warnings the worker asks for ([`Call::on_exact_fallback`]).
/// Errors become typed Python exceptions; a panic becomes `Sw2sError`, never a panic in
/// Python; a warning raised as an error (a warnings filter) is raised as it is.
pub(crate) fn run<T, F>(py: Python<'_>, num_threads: Option<usize>, threads: Threads, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&Call<'_, T>) -> Result<T, CoreError> + Send,
{
    let pool = thread_pool(py, num_threads, threads)?;
    let cancel = AtomicBool::new(false);
    let (outcome, raised) = py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel();
            let (cancel_ref, pool_ref) = (&cancel, &pool);
            s.spawn(move || {
                let call = Call { cancel: cancel_ref, to_caller: &tx };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool_ref.install(|| work(&call))));
                let _ = tx.send(Msg::Done(r));
            });
            let mut raised: Option<PyErr> = None;
            loop {
                match rx.recv_timeout(POLL) {
                    Ok(Msg::Done(r)) => return (r, raised),
                    Ok(Msg::ExactFallback(message, reply)) => {
                        let go_on = match Python::attach(|py| warn(py, &py.get_type::<ExactFallbackWarning>(), message)) {
                            Ok(()) => true,
                            Err(e) => {
                                raised = Some(e);
                                false
                            }
                        };
                        let _ = reply.send(go_on);
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if Python::attach(|py| py.check_signals().is_err()) {
                            cancel.store(true, Ordering::Relaxed);
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return (Err(Box::new("worker thread vanished") as Box<dyn std::any::Any + Send>), raised)
                    }
                }
            }
        })
    });
    if let Some(e) = raised {
        return Err(e);
    }
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
