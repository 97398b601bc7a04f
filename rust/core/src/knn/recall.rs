//! recall@k of an approximate graph, estimated on a seeded sample of rows against exact search.

use super::exact::exact_queries;
use super::prepared::Prepared;
use crate::rng::SplitMix64;
use crate::Result;
use rayon::prelude::*;
use std::sync::atomic::AtomicBool;

/// z of the two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The lower end of the Wilson 95% interval of a recall@k estimated on `sample` of `n` rows
/// (`sample * k` neighbour checks): what `Auto` compares with `min_recall`, so that a
/// user's floor holds for the graph, not only for the sample. With every row sampled the
/// estimate is the true recall and is returned as is.
pub fn recall_lower_bound(recall: f64, sample: usize, n: usize, k: usize) -> f64 {
    let m = sample.clamp(1, n.max(1));
    if m >= n {
        return recall;
    }
    let t = (m * k) as f64;
    let z2 = Z95 * Z95;
    let centre = recall + z2 / (2.0 * t);
    let half = Z95 * (recall * (1.0 - recall) / t + z2 / (4.0 * t * t)).sqrt();
    ((centre - half) / (1.0 + z2 / t)).clamp(0.0, recall.clamp(0.0, 1.0))
}


/// recall@k of `indices` (n, k) on a seeded sample of query rows, against exact search.
pub(super) fn estimate_recall(prep: &Prepared<'_>, indices: &[u32], k: usize, sample: usize, seed: u64, cancel: &AtomicBool) -> Result<f64> {
    let n = prep.data.n;
    let m = sample.clamp(1, n);
    let queries: Vec<usize> = if m == n {
        (0..n).collect()
    } else {
        // Partial Fisher-Yates on a seeded generator: m distinct rows.
        let mut rng = SplitMix64::new(seed ^ 0x7265_6361_6c6c);
        let mut chosen = std::collections::HashMap::with_capacity(2 * m);
        let mut out = Vec::with_capacity(m);
        for t in 0..m {
            let r = t + rng.below(n - t);
            let vr = *chosen.get(&r).unwrap_or(&r);
            let vt = *chosen.get(&t).unwrap_or(&t);
            chosen.insert(r, vt);
            out.push(vr);
        }
        out
    };
    let (exact, _) = exact_queries(prep, &queries, k, cancel)?;
    let hits: usize = queries
        .par_iter()
        .enumerate()
        .map(|(qi, &q)| {
            let truth = &exact[qi * k..(qi + 1) * k];
            indices[q * k..(q + 1) * k].iter().filter(|j| truth.contains(j)).count()
        })
        .sum();
    Ok(hits as f64 / (m * k) as f64)
}
