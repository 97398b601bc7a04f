//! k-nearest-neighbour graphs: exact (blocked GEMM fused with a top-k filter, using the
//! symmetry of the all-pairs problem), approximate (NN-descent seeded by random-projection
//! trees), and `Auto`, which picks between them by size and estimated recall.
//!
//! Modules, lowest first (each uses only those above it): [`types`] (public parameters and
//! results), `prepared` (validated, normalised input), `topk` (bounded best-k lists),
//! `exact` and `bf16` (all-pairs and per-query search), `recall` (recall estimated against
//! exact search), `approx` (NN-descent), `search` (one call's searches, each a finished
//! result), `auto` (`Auto`'s decisions and its announcement of the exact fallback); this
//! module only validates and dispatches.

mod approx;
mod auto;
mod bf16;
mod exact;
mod prepared;
mod recall;
mod search;
mod topk;
pub mod types;

#[cfg(test)]
mod tests;

pub use auto::{ExactFallback, AUTO_EXACT_MAX_N};
pub use bf16::EXACT_BF16_ENV;
pub use recall::recall_lower_bound;
pub use search::AUTO_RETRY_TREES;
pub use types::{ApproxParams, KnnParams, KnnResult, Method, Metric, DEFAULT_MIN_RECALL, DEFAULT_RECALL_SAMPLE};

use crate::cancel::check_cancel;
use crate::{MatrixView, Result};
use prepared::Prepared;
use search::Search;
use std::sync::atomic::AtomicBool;

/// Validate `data` (finite; non-zero rows under cosine; 2 <= n; 1 <= k < n) and build the
/// graph. `Auto` falls back to exact search without a word; see [`knn_graph_with_hook`].
pub fn knn_graph(data: MatrixView<'_>, params: &KnnParams, cancel: &AtomicBool) -> Result<KnnResult> {
    knn_graph_with_hook(data, params, cancel, &|_| Ok(()))
}

/// [`knn_graph`], with `on_exact_fallback` called by `Auto` when its approximate passes fell
/// short of `min_recall`, before the exact search starts (so that a caller can say so while
/// there is still time to stop it). An error it returns ends the call with that error
/// (e.g. [`CoreError::Cancelled`](crate::CoreError::Cancelled)) and exact search does not
/// start. Other methods never call it.
pub fn knn_graph_with_hook(
    data: MatrixView<'_>,
    params: &KnnParams,
    cancel: &AtomicBool,
    on_exact_fallback: &dyn Fn(&ExactFallback) -> Result<()>,
) -> Result<KnnResult> {
    let prep = Prepared::validate(data, params)?;
    check_cancel(cancel)?;
    let search = Search { prep: &prep, params, cancel };
    match params.method {
        Method::Exact => search.exact(),
        Method::Approx => search.approx(),
        Method::Auto => auto::auto(&search, on_exact_fallback),
    }
}
