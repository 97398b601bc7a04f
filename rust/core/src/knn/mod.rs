//! k-nearest-neighbour graphs: exact (blocked GEMM fused with a top-k filter, using the
//! symmetry of the all-pairs problem), approximate (NN-descent seeded by random-projection
//! trees), and `Auto`, which picks between them by size and estimated recall.
//!
//! Modules, lowest first (each uses only those above it): [`types`] (public parameters and
//! results), `prepared` (validated, normalised input), `topk` (bounded best-k lists),
//! `exact` (all-pairs and per-query search), `recall` (recall estimated against exact
//! search), `approx` (NN-descent); this module only chooses among them.

mod approx;
mod bf16;
mod exact;
mod prepared;
mod recall;
mod topk;
pub mod types;

#[cfg(test)]
mod tests;

pub use bf16::EXACT_BF16_ENV;
pub use types::{ApproxParams, KnnParams, KnnResult, Method, Metric};

use crate::cancel::check_cancel;
use crate::{MatrixView, Result};
use prepared::Prepared;
use rayon::prelude::*;
use std::sync::atomic::AtomicBool;

/// `Auto` runs exact search when `n` is at most this (measured: below it exact search costs
/// about as much as NN-descent plus its recall check, and is exact).
pub const AUTO_EXACT_MAX_N: usize = 20_000;

/// `Auto`'s second approximate pass uses this many times the automatic number of trees.
pub const AUTO_RETRY_TREES: usize = 3;

/// Validate `data` (finite; non-zero rows under cosine; 2 <= n; 1 <= k < n) and build the graph.
pub fn knn_graph(data: MatrixView<'_>, params: &KnnParams, cancel: &AtomicBool) -> Result<KnnResult> {
    let prep = Prepared::validate(data, params)?;
    check_cancel(cancel)?;
    let search = Search { prep: &prep, params, cancel };
    let (n, ap) = (data.n, &params.approx);
    match params.method {
        Method::Exact => search.exact(),
        Method::Approx => search.approx(ap.build_k, ap.max_iters, 1),
        Method::ApproxRetry => search.approx_retry(),
        Method::Auto => {
            if n <= AUTO_EXACT_MAX_N {
                return search.exact();
            }
            let first = search.approx(ap.build_k, ap.max_iters, 1)?;
            // the sampled recall's lower confidence bound must reach the floor, not the estimate
            let passes = |r: f64| recall::recall_lower_bound(r, ap.recall_sample, n, params.k) >= ap.min_recall;
            let r1 = first.estimated_recall.unwrap_or(0.0);
            if passes(r1) {
                return Ok(first);
            }
            drop(first);
            // A stronger pass; then give up on approximation.
            let mut second = search.approx_retry()?;
            let r2 = second.estimated_recall.unwrap_or(0.0);
            if passes(r2) {
                second.approx_recalls = vec![r1, r2];
                return Ok(second);
            }
            drop(second);
            let mut exact = search.exact()?;
            exact.approx_recalls = vec![r1, r2];
            Ok(exact)
        }
    }
}

/// One call's validated input and parameters.
struct Search<'a> {
    prep: &'a Prepared<'a>,
    params: &'a KnnParams,
    cancel: &'a AtomicBool,
}

impl Search<'_> {
    fn exact(&self) -> Result<KnnResult> {
        let (n, k) = (self.prep.data.n, self.params.k);
        let (indices, keys) = if bf16::usable(self.prep)? { bf16::exact_all_bf16(self.prep, k, self.cancel)? } else { exact::exact_all(self.prep, k, self.cancel)? };
        let scores = keys_to_scores(keys, self.prep);
        self.prep.check_scores(&scores, k)?;
        Ok(KnnResult { n, k, indices, scores, method_used: Method::Exact, estimated_recall: None, approx_recalls: Vec::new() })
    }

    /// `Auto`'s stronger approximate pass: AUTO_RETRY_TREES times the seeding trees, twice the
    /// candidate pool and iteration cap.
    fn approx_retry(&self) -> Result<KnnResult> {
        let (n, ap) = (self.prep.data.n, &self.params.approx);
        let bk = approx::auto_build_k(self.params.k, n, ap.build_k);
        self.approx((2 * bk).min(n - 1), ap.max_iters.max(approx::auto_iters(n)) * 2, AUTO_RETRY_TREES)
    }

    fn approx(&self, build_k: usize, max_iters: usize, tree_factor: usize) -> Result<KnnResult> {
        let (n, k, p) = (self.prep.data.n, self.params.k, self.params);
        let nd = approx::NnDescentParams { k, build_k, n_trees: p.approx.n_trees, tree_factor, max_iters, seed: p.seed };
        let (indices, scores) = approx::nn_descent(self.prep, &nd, self.cancel)?;
        self.prep.check_scores(&scores, k)?;
        let recall = recall::estimate_recall(self.prep, &indices, k, p.approx.recall_sample, p.seed, self.cancel)?;
        Ok(KnnResult { n, k, indices, scores, method_used: Method::Approx, estimated_recall: Some(recall), approx_recalls: Vec::new() })
    }
}

/// Internal keys are "higher is better" (similarity, or minus the squared distance, of the
/// transformed rows); scores are in the caller's units (see [`prepared`]).
fn keys_to_scores(mut keys: Vec<f32>, prep: &Prepared<'_>) -> Vec<f32> {
    if prep.metric != Metric::Cosine {
        keys.par_iter_mut().for_each(|v| *v = prep.score_of_key(*v));
    }
    keys
}
