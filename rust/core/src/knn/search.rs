//! The searches one call may run on its validated input: exact, approximate, and `Auto`'s
//! stronger approximate pass, each returning a finished [`KnnResult`].

use super::prepared::Prepared;
use super::types::{KnnParams, KnnResult, Method, Metric};
use super::{approx, bf16, exact, recall};
use crate::Result;
use rayon::prelude::*;
use std::sync::atomic::AtomicBool;

/// `Auto`'s second approximate pass uses this many times the automatic number of trees.
pub const AUTO_RETRY_TREES: usize = 3;

/// One call's validated input and parameters.
pub(super) struct Search<'a> {
    pub(super) prep: &'a Prepared<'a>,
    pub(super) params: &'a KnnParams,
    pub(super) cancel: &'a AtomicBool,
}

impl Search<'_> {
    pub(super) fn exact(&self) -> Result<KnnResult> {
        let (n, k) = (self.prep.data.n, self.params.k);
        let (indices, keys) = if bf16::usable(self.prep)? { bf16::exact_all_bf16(self.prep, k, self.cancel)? } else { exact::exact_all(self.prep, k, self.cancel)? };
        let scores = keys_to_scores(keys, self.prep);
        self.prep.check_scores(&scores, k)?;
        Ok(KnnResult { n, k, indices, scores, method_used: Method::Exact, estimated_recall: None, approx_recalls: Vec::new() })
    }

    /// NN-descent with the caller's parameters (`Approx`, and `Auto`'s first pass).
    pub(super) fn approx(&self) -> Result<KnnResult> {
        let ap = &self.params.approx;
        self.approx_with(ap.build_k, ap.max_iters, 1)
    }

    /// `Auto`'s stronger approximate pass: AUTO_RETRY_TREES times the seeding trees, twice the
    /// candidate pool and iteration cap.
    pub(super) fn approx_stronger(&self) -> Result<KnnResult> {
        let (n, ap) = (self.prep.data.n, &self.params.approx);
        let bk = approx::auto_build_k(self.params.k, n, ap.build_k);
        self.approx_with((2 * bk).min(n - 1), ap.max_iters.max(approx::auto_iters(n)) * 2, AUTO_RETRY_TREES)
    }

    fn approx_with(&self, build_k: usize, max_iters: usize, tree_factor: usize) -> Result<KnnResult> {
        let (n, k, p) = (self.prep.data.n, self.params.k, self.params);
        let nd = approx::NnDescentParams { k, build_k, n_trees: p.approx.n_trees, tree_factor, max_iters, seed: p.seed };
        let (indices, scores) = approx::nn_descent(self.prep, &nd, self.cancel)?;
        self.prep.check_scores(&scores, k)?;
        let recall = recall::estimate_recall(self.prep, &indices, k, p.approx.recall_sample, p.seed, self.cancel)?;
        Ok(KnnResult { n, k, indices, scores, method_used: Method::Approx, estimated_recall: Some(recall), approx_recalls: Vec::new() })
    }
}

/// Internal keys are "higher is better" (similarity, or minus the squared distance, of the
/// transformed rows); scores are in the caller's units (see [`super::prepared`]).
fn keys_to_scores(mut keys: Vec<f32>, prep: &Prepared<'_>) -> Vec<f32> {
    if prep.metric != Metric::Cosine {
        keys.par_iter_mut().for_each(|v| *v = prep.score_of_key(*v));
    }
    keys
}
