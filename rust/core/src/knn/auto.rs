//! `Auto`: exact search for small inputs; otherwise approximate passes held to a recall floor,
//! and exact search when they fall short, announced (through the caller's hook) before it
//! starts, since at a million rows it takes about an hour on two cores.

use super::recall::recall_lower_bound;
use super::search::Search;
use super::types::KnnResult;
use crate::fmt::{float_repr, thousands};
use crate::Result;

/// `Auto` runs exact search when `n` is at most this (measured: below it exact search costs
/// about as much as NN-descent plus its recall check, and is exact).
pub const AUTO_EXACT_MAX_N: usize = 20_000;

/// Exact search's assumed speed for the cost in [`ExactFallback`]'s message: 100 GFLOP/s per core.
const FLOPS_PER_CORE_SECOND: f64 = 100e9;

/// What `Auto` announces before falling back to exact search: its approximate passes'
/// estimated recalls fell short of `min_recall`. Its `Display` is the warning the Python
/// package shows (`ExactFallbackWarning`).
#[derive(Clone, Debug, PartialEq)]
pub struct ExactFallback {
    pub n: usize,
    pub d: usize,
    pub k: usize,
    /// the estimated recall of each approximate pass (the first, then the stronger one)
    pub approx_recalls: Vec<f64>,
    pub min_recall: f64,
}

impl ExactFallback {
    /// Core-seconds exact search will take, roughly: its `2 n^2 d` flops at 100 GFLOP/s.
    pub fn cost_seconds(&self) -> f64 {
        2.0 * self.n as f64 * self.n as f64 * self.d as f64 / FLOPS_PER_CORE_SECOND
    }
}

impl std::fmt::Display for ExactFallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.cost_seconds();
        let cost = if secs < 120.0 {
            format!("about {} core-seconds", thousands(&format!("{secs:.0}")))
        } else {
            format!("about {} core-minutes", thousands(&format!("{:.0}", secs / 60.0)))
        };
        let recalls: Vec<String> = self.approx_recalls.iter().map(|r| format!("{r:.4}")).collect();
        write!(
            f,
            "knn_graph(method='auto'): approximate graphs reached estimated recall@{} {} (first pass, then a \
             stronger one), below min_recall={}; falling back to exact search of {} x {} rows now ({cost} at \
             100 GFLOP/s); pass method='approx' or a lower min_recall to accept the approximate graph",
            self.k,
            recalls.join(" then "),
            float_repr(self.min_recall),
            thousands(&self.n.to_string()),
            self.d,
        )
    }
}

/// `Auto` on a validated input. A pass is accepted when the lower end of the Wilson 95%
/// interval of its sampled recall reaches `min_recall` (a floor for the graph, not only for
/// the sample). `on_exact_fallback` is called after both approximate passes fell short and
/// before exact search starts; an error it returns ends the call with that error.
pub(super) fn auto(search: &Search<'_>, on_exact_fallback: &dyn Fn(&ExactFallback) -> Result<()>) -> Result<KnnResult> {
    let (n, d, k, ap) = (search.prep.data.n, search.prep.data.d, search.params.k, &search.params.approx);
    if n <= AUTO_EXACT_MAX_N {
        return search.exact();
    }
    let passes = |r: f64| recall_lower_bound(r, ap.recall_sample, n, k) >= ap.min_recall;
    let first = search.approx()?;
    let r1 = first.estimated_recall.unwrap_or(0.0);
    if passes(r1) {
        return Ok(first);
    }
    drop(first);
    // A stronger pass; then give up on approximation.
    let mut second = search.approx_stronger()?;
    let r2 = second.estimated_recall.unwrap_or(0.0);
    if passes(r2) {
        second.approx_recalls = vec![r1, r2];
        return Ok(second);
    }
    drop(second);
    on_exact_fallback(&ExactFallback { n, d, k, approx_recalls: vec![r1, r2], min_recall: ap.min_recall })?;
    let mut exact = search.exact()?;
    exact.approx_recalls = vec![r1, r2];
    Ok(exact)
}
