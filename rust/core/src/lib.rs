//! `sw2s-core`: the compiled heart of selective-w2sg.
//!
//! Pure Rust (no Python): exact and approximate k-nearest-neighbour graphs over dense
//! `f32` embeddings, the weight matrix `W` built from such a graph, and label spreading
//! (Zhou et al. 2004) over `W`. Parallel with rayon; callers choose the thread pool by
//! running calls inside `ThreadPool::install`.
//!
//! Long calls take a `&AtomicBool` cancel flag, polled between blocks of work, so a
//! caller (the Python bindings) can interrupt them (Ctrl-C); they then return
//! [`CoreError::Cancelled`]. [`knn_graph_with_hook`] also tells the caller, before it starts,
//! that `Method::Auto` falls back to a long exact search ([`ExactFallback`]).
//!
//! The rules the Python package follows live here, once: the metric and method names
//! ([`Metric::name`], [`Method::name`]), the recall defaults ([`knn::DEFAULT_MIN_RECALL`],
//! [`knn::DEFAULT_RECALL_SAMPLE`]), `Auto`'s decisions and its warning text, the checks of
//! `k` and `alpha` ([`check_alpha`]).

mod cancel;
mod csr;
mod cpu;
pub mod error;
mod fmt;
mod kernel;
pub mod knn;
mod rng;
pub mod smooth;
pub mod weights;

pub use error::{CoreError, Result};
pub use weights::{knn_to_weights, symmetrize_max, Csr};
pub use knn::{
    knn_graph, knn_graph_with_hook, ApproxParams, ExactFallback, KnnParams, KnnResult, Method, Metric, AUTO_EXACT_MAX_N,
};
pub use smooth::{check_alpha, smooth_labels, SmoothParams, SmoothResult};

/// A borrowed row-major `(n, d)` matrix of `f32` (e.g. a memory-mapped `.npy`).
#[derive(Clone, Copy, Debug)]
pub struct MatrixView<'a> {
    pub data: &'a [f32],
    pub n: usize,
    pub d: usize,
}

impl<'a> MatrixView<'a> {
    /// Errors with `ShapeMismatch` when `data.len() != n * d`.
    pub fn new(data: &'a [f32], n: usize, d: usize) -> Result<Self> {
        if data.len() != n * d {
            return Err(CoreError::ShapeMismatch(format!(
                "buffer has {} values, expected n*d = {}*{} = {}",
                data.len(),
                n,
                d,
                n * d
            )));
        }
        Ok(Self { data, n, d })
    }

    #[inline]
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.d..(i + 1) * self.d]
    }
}
