//! k-nearest-neighbour graphs: exact (blocked GEMM fused with a top-k filter, using the
//! symmetry of the all-pairs problem) and approximate (NN-descent / HNSW), plus `Auto`.

use crate::approx;
use crate::kernel::{gemm_tile, pack_rows, pack_rows_seq, packed_len, round_up, PW};
use crate::rng::SplitMix64;
use crate::{CoreError, MatrixView, Result};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// cosine similarity, higher is better (rows are L2-normalised internally)
    Cosine,
    /// inner product, higher is better
    InnerProduct,
    /// squared Euclidean distance, lower is better
    SquaredL2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Exact,
    Approx,
    /// exact below a size threshold; above it approximate, with recall estimated on a
    /// sample against exact search and a fallback/refinement when it is below 0.95
    Auto,
}

#[derive(Clone, Debug)]
pub struct ApproxParams {
    /// estimated-recall floor for `Auto` (and reported for `Approx`)
    pub min_recall: f64,
    /// number of sampled query points used to estimate recall
    pub recall_sample: usize,
    /// neighbours kept per node while NN-descent runs (0: automatic, `max(2k, 30)` capped at n-1);
    /// a pool larger than `k` is what buys recall
    pub build_k: usize,
    /// random-projection trees seeding NN-descent (0: automatic)
    pub n_trees: usize,
    /// NN-descent iteration cap (0: automatic)
    pub max_iters: usize,
}

impl Default for ApproxParams {
    fn default() -> Self {
        Self { min_recall: 0.95, recall_sample: 1000, build_k: 0, n_trees: 0, max_iters: 0 }
    }
}

#[derive(Clone, Debug)]
pub struct KnnParams {
    pub k: usize,
    pub metric: Metric,
    pub method: Method,
    pub seed: u64,
    pub approx: ApproxParams,
}

#[derive(Clone, Debug)]
pub struct KnnResult {
    pub n: usize,
    pub k: usize,
    /// row-major `(n, k)`; best neighbour first; never the point itself
    pub indices: Vec<u32>,
    /// row-major `(n, k)`; similarity (Cosine, InnerProduct) or squared distance (SquaredL2)
    pub scores: Vec<f32>,
    /// the method that produced the graph (never `Auto`)
    pub method_used: Method,
    /// recall@k estimated on a sample against exact search (None for `Exact`)
    pub estimated_recall: Option<f64>,
}

/// Validate `data` (finite; non-zero rows under cosine; 2 <= n; 1 <= k < n) and build the graph.
/// `Auto` runs exact search when `n` is at most this (measured: below it exact search costs
/// about as much as NN-descent plus its recall check, and is exact).
pub const AUTO_EXACT_MAX_N: usize = 20_000;

/// Rows per block of the exact all-pairs search (one tile is `EXACT_BLOCK x EXACT_BLOCK`).
const EXACT_BLOCK: usize = 256;

/// Validate `data` (finite; non-zero rows under cosine; 2 <= n; 1 <= k < n) and build the graph.
pub fn knn_graph(data: MatrixView<'_>, params: &KnnParams, cancel: &AtomicBool) -> Result<KnnResult> {
    let prep = Prepared::validate(data, params)?;
    check_cancel(cancel)?;
    let (n, k) = (data.n, params.k);
    let ap = &params.approx;
    let run_exact = |prep: &Prepared<'_>| -> Result<KnnResult> {
        let (indices, keys) = exact_all(prep, k, cancel)?;
        Ok(KnnResult { n, k, indices, scores: keys_to_scores(keys, params.metric), method_used: Method::Exact, estimated_recall: None })
    };
    let run_approx = |prep: &Prepared<'_>, build_k: usize, max_iters: usize| -> Result<KnnResult> {
        let (indices, scores) = approx::nn_descent(prep, k, build_k, ap.n_trees, max_iters, params.seed, cancel)?;
        let recall = estimate_recall(prep, &indices, k, ap.recall_sample, params.seed, cancel)?;
        Ok(KnnResult { n, k, indices, scores, method_used: Method::Approx, estimated_recall: Some(recall) })
    };
    match params.method {
        Method::Exact => run_exact(&prep),
        Method::Approx => run_approx(&prep, ap.build_k, ap.max_iters),
        Method::Auto => {
            if n <= AUTO_EXACT_MAX_N {
                return run_exact(&prep);
            }
            let first = run_approx(&prep, ap.build_k, ap.max_iters)?;
            if first.estimated_recall.unwrap_or(0.0) >= ap.min_recall {
                return Ok(first);
            }
            // Refine: a larger candidate pool and more iterations; then give up on approximation.
            let bk = approx::auto_build_k(k, n, ap.build_k);
            let second = run_approx(&prep, (2 * bk).min(n - 1), ap.max_iters.max(approx::auto_iters(n)) * 2)?;
            if second.estimated_recall.unwrap_or(0.0) >= ap.min_recall {
                return Ok(second);
            }
            run_exact(&prep)
        }
    }
}

#[inline]
pub(crate) fn check_cancel(cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        Err(CoreError::Cancelled)
    } else {
        Ok(())
    }
}

/// Internal keys are "higher is better" (similarity, or minus the squared distance).
fn keys_to_scores(mut keys: Vec<f32>, metric: Metric) -> Vec<f32> {
    if metric == Metric::SquaredL2 {
        keys.par_iter_mut().for_each(|v| *v = (-*v).max(0.0));
    }
    keys
}

/// Validated input with the per-row quantities every method needs.
pub(crate) struct Prepared<'a> {
    pub data: MatrixView<'a>,
    pub metric: Metric,
    /// Cosine: 1/||x_i||, the scale that normalises row i
    pub inv_norm: Option<Vec<f32>>,
    /// SquaredL2: ||x_i||^2
    pub sqn: Option<Vec<f32>>,
}

impl<'a> Prepared<'a> {
    fn validate(data: MatrixView<'a>, params: &KnnParams) -> Result<Self> {
        let (n, d, k) = (data.n, data.d, params.k);
        if data.data.len() != n * d {
            return Err(CoreError::ShapeMismatch(format!(
                "buffer has {} values, expected n*d = {}*{} = {}",
                data.data.len(),
                n,
                d,
                n * d
            )));
        }
        if n < 2 {
            return Err(CoreError::TooFewPoints { n });
        }
        if k < 1 || k >= n {
            return Err(CoreError::InvalidK { k, n });
        }
        if d == 0 {
            return Err(CoreError::ShapeMismatch("embeddings have d=0 columns".into()));
        }
        if !(0.0..=1.0).contains(&params.approx.min_recall) {
            return Err(CoreError::InvalidParameter(format!("min_recall={} must be in [0, 1]", params.approx.min_recall)));
        }
        if let Some(row) = data.data.par_chunks(d).position_first(|r| r.iter().any(|v| !v.is_finite())) {
            let r = data.row(row);
            let col = r.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(CoreError::NonFinite { row, col, value: r[col] });
        }
        let sq: Vec<f64> = data.data.par_chunks(d).map(|r| r.iter().map(|&v| (v as f64) * (v as f64)).sum()).collect();
        let (mut inv_norm, mut sqn) = (None, None);
        match params.metric {
            Metric::Cosine => {
                if let Some(row) = sq.par_iter().position_first(|&s| s <= 0.0) {
                    return Err(CoreError::ZeroNorm { row });
                }
                inv_norm = Some(sq.par_iter().map(|&s| (1.0 / s.sqrt()) as f32).collect());
            }
            Metric::SquaredL2 => sqn = Some(sq.par_iter().map(|&s| s as f32).collect()),
            Metric::InnerProduct => {}
        }
        Ok(Self { data, metric: params.metric, inv_norm, sqn })
    }

    #[inline]
    pub(crate) fn scale(&self, i: usize) -> f32 {
        self.inv_norm.as_ref().map_or(1.0, |v| v[i])
    }

    /// Turn a tile of dot products into keys (higher is better).
    #[inline]
    fn to_keys(&self, tile: &mut [f32], ld: usize, rows: &dyn Fn(usize) -> usize, nrows: usize, j0: usize, ncols: usize) {
        if let Some(sqn) = &self.sqn {
            for r in 0..nrows {
                let si = sqn[rows(r)];
                for (c, v) in tile[r * ld..r * ld + ncols].iter_mut().enumerate() {
                    *v = 2.0 * *v - si - sqn[j0 + c];
                }
            }
        }
    }
}

/// Per-row best-k lists, best first, ordered by (key desc, index asc); unfilled slots hold
/// (-inf, u32::MAX). The kept set is the top-k of everything offered, whatever the order.
pub(crate) struct TopK {
    k: usize,
    pub vals: Vec<f32>,
    pub idx: Vec<u32>,
}

#[inline]
fn beats(s: f32, j: u32, t: f32, tj: u32) -> bool {
    s > t || (s == t && j < tj)
}

impl TopK {
    pub(crate) fn new(rows: usize, k: usize) -> Self {
        Self { k, vals: vec![f32::NEG_INFINITY; rows * k], idx: vec![u32::MAX; rows * k] }
    }

    #[inline]
    fn worst(&self, r: usize) -> (f32, u32) {
        let p = r * self.k + self.k - 1;
        (self.vals[p], self.idx[p])
    }

    /// Insert (s, j) into row r; the caller has checked that it beats the worst entry.
    #[inline]
    fn insert(&mut self, r: usize, s: f32, j: u32) {
        let base = r * self.k;
        let mut pos = self.k - 1;
        while pos > 0 {
            let (v, i) = (self.vals[base + pos - 1], self.idx[base + pos - 1]);
            if beats(s, j, v, i) {
                self.vals[base + pos] = v;
                self.idx[base + pos] = i;
                pos -= 1;
            } else {
                break;
            }
        }
        self.vals[base + pos] = s;
        self.idx[base + pos] = j;
    }

    fn merge(mut self, other: TopK) -> TopK {
        let rows = self.vals.len() / self.k;
        for r in 0..rows {
            for e in r * self.k..(r + 1) * self.k {
                let (s, j) = (other.vals[e], other.idx[e]);
                if j == u32::MAX {
                    break;
                }
                let (t, tj) = self.worst(r);
                if beats(s, j, t, tj) {
                    self.insert(r, s, j);
                }
            }
        }
        self
    }

    /// Offer tile row `r` (keys of candidates `j0..j0+cols`) to list `row`, skipping `skip`.
    /// Chunks of 16 are first tested branch-free (vectorised) against the threshold; only
    /// chunks holding a possible winner take the scalar path.
    #[inline]
    fn scan_row(&mut self, row: usize, keys: &[f32], j0: usize, skip: usize) {
        let (mut t, mut tj) = self.worst(row);
        for (q, ch) in keys.chunks(SCAN_CHUNK).enumerate() {
            if !ch.iter().fold(false, |any, &s| any | (s >= t)) {
                continue;
            }
            for (c, &s) in ch.iter().enumerate() {
                if s >= t {
                    let j = j0 + q * SCAN_CHUNK + c;
                    if j != skip && beats(s, j as u32, t, tj) {
                        self.insert(row, s, j as u32);
                        (t, tj) = self.worst(row);
                    }
                }
            }
        }
    }

    /// Offer tile row `keys` (the candidate `gi` scored against rows `0..cols` of this list)
    /// to every list; `tv`/`ti` cache the lists' thresholds.
    #[inline]
    fn scan_col(&mut self, keys: &[f32], gi: u32, tv: &mut [f32], ti: &mut [u32]) {
        for q0 in (0..keys.len()).step_by(SCAN_CHUNK) {
            let q1 = (q0 + SCAN_CHUNK).min(keys.len());
            if !keys[q0..q1].iter().zip(&tv[q0..q1]).fold(false, |any, (&s, &t)| any | (s >= t)) {
                continue;
            }
            for c in q0..q1 {
                let s = keys[c];
                if s >= tv[c] && beats(s, gi, tv[c], ti[c]) {
                    self.insert(c, s, gi);
                    (tv[c], ti[c]) = self.worst(c);
                }
            }
        }
    }
}

/// Width of the branch-free pre-test in the top-k scans.
const SCAN_CHUNK: usize = 16;

/// Exact all-pairs search over the upper triangle of block pairs; each tile feeds both its
/// row block's and its column block's lists.
fn exact_all(prep: &Prepared<'_>, k: usize, cancel: &AtomicBool) -> Result<(Vec<u32>, Vec<f32>)> {
    let MatrixView { n, d, .. } = prep.data;
    let mut packed = vec![0.0f32; packed_len(n, d)];
    pack_rows(n, d, |i| prep.data.row(i), |i| prep.scale(i), &mut packed);
    check_cancel(cancel)?;
    let bs = EXACT_BLOCK;
    let nblk = n.div_ceil(bs);
    let rows_of = |b: usize| (b * bs, ((b + 1) * bs).min(n));
    let lists: Vec<Mutex<TopK>> = (0..nblk).map(|b| Mutex::new(TopK::new(rows_of(b).1 - rows_of(b).0, k))).collect();
    let pairs: Vec<(u32, u32)> = (0..nblk).flat_map(|i| (i..nblk).map(move |j| (i as u32, j as u32))).collect();
    pairs.par_iter().for_each_init(
        || (vec![0.0f32; bs * bs], Vec::<f32>::new(), Vec::<u32>::new()),
        |(tile, tv, ti), &(bi, bj)| {
            if cancel.load(Ordering::Relaxed) {
                return;
            }
            let (bi, bj) = (bi as usize, bj as usize);
            let ((i0, i1), (j0, j1)) = (rows_of(bi), rows_of(bj));
            let (mr, nc) = (i1 - i0, j1 - j0);
            let (mb, nb) = (round_up(mr, PW), round_up(nc, PW));
            gemm_tile(&packed[i0 * d..], &packed[j0 * d..], d, mb, nb, tile);
            prep.to_keys(tile, nb, &|r| i0 + r, mr, j0, nc);
            {
                let mut li = lists[bi].lock().unwrap_or_else(|e| e.into_inner());
                for r in 0..mr {
                    li.scan_row(r, &tile[r * nb..r * nb + nc], j0, i0 + r);
                }
            }
            if bi != bj {
                let mut lj = lists[bj].lock().unwrap_or_else(|e| e.into_inner());
                tv.clear();
                ti.clear();
                for c in 0..nc {
                    let (t, tj) = lj.worst(c);
                    tv.push(t);
                    ti.push(tj);
                }
                for r in 0..mr {
                    lj.scan_col(&tile[r * nb..r * nb + nc], (i0 + r) as u32, tv, ti);
                }
            }
        },
    );
    check_cancel(cancel)?;
    let mut idx = Vec::with_capacity(n * k);
    let mut vals = Vec::with_capacity(n * k);
    for m in lists {
        let t = m.into_inner().unwrap_or_else(|e| e.into_inner());
        idx.extend_from_slice(&t.idx);
        vals.extend_from_slice(&t.vals);
    }
    Ok((idx, vals))
}

/// Exact top-k (keys, higher is better) for the given query rows against all rows, self
/// excluded. Data blocks are packed on the fly, so no extra copy of the input is made.
pub(crate) fn exact_queries(prep: &Prepared<'_>, queries: &[usize], k: usize, cancel: &AtomicBool) -> Result<(Vec<u32>, Vec<f32>)> {
    let MatrixView { n, d, .. } = prep.data;
    let bs = EXACT_BLOCK;
    let qb = 1024;
    let mut out_idx = Vec::with_capacity(queries.len() * k);
    let mut out_val = Vec::with_capacity(queries.len() * k);
    for qs in queries.chunks(qb) {
        check_cancel(cancel)?;
        let q = qs.len();
        let mb = round_up(q, PW);
        let mut qa = vec![0.0f32; packed_len(q, d)];
        pack_rows(q, d, |i| prep.data.row(qs[i]), |i| prep.scale(qs[i]), &mut qa);
        let nblk = n.div_ceil(bs);
        let top = (0..nblk)
            .into_par_iter()
            .fold(
                || (TopK::new(q, k), vec![0.0f32; mb * bs], vec![0.0f32; packed_len(bs, d)]),
                |(mut tk, mut tile, mut bp), b| {
                    if cancel.load(Ordering::Relaxed) {
                        return (tk, tile, bp);
                    }
                    let (j0, j1) = (b * bs, ((b + 1) * bs).min(n));
                    let nc = j1 - j0;
                    let nb = round_up(nc, PW);
                    pack_rows_seq(nc, d, |i| prep.data.row(j0 + i), |i| prep.scale(j0 + i), &mut bp);
                    gemm_tile(&qa, &bp, d, mb, nb, &mut tile);
                    prep.to_keys(&mut tile, nb, &|r| qs[r], q, j0, nc);
                    for (r, &qi) in qs.iter().enumerate() {
                        tk.scan_row(r, &tile[r * nb..r * nb + nc], j0, qi);
                    }
                    (tk, tile, bp)
                },
            )
            .map(|(tk, _, _)| tk)
            .reduce_with(TopK::merge)
            .expect("n >= 2 gives at least one block");
        out_idx.extend_from_slice(&top.idx);
        out_val.extend_from_slice(&top.vals);
    }
    check_cancel(cancel)?;
    Ok((out_idx, out_val))
}

/// recall@k of `indices` (n, k) on a seeded sample of query rows, against exact search.
fn estimate_recall(prep: &Prepared<'_>, indices: &[u32], k: usize, sample: usize, seed: u64, cancel: &AtomicBool) -> Result<f64> {
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


#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params(k: usize, metric: Metric, method: Method) -> KnnParams {
        KnnParams { k, metric, method, seed: 7, approx: ApproxParams::default() }
    }

    /// Naive brute force in f64: keys (higher is better), ties by smaller index.
    fn naive(x: &[f32], n: usize, d: usize, k: usize, metric: Metric) -> (Vec<u32>, Vec<f64>) {
        let row = |i: usize| &x[i * d..(i + 1) * d];
        let norm = |i: usize| row(i).iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
        let mut idx = Vec::new();
        let mut val = Vec::new();
        for i in 0..n {
            let mut c: Vec<(f64, u32)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let ip: f64 = row(i).iter().zip(row(j)).map(|(&a, &b)| a as f64 * b as f64).sum();
                    let key = match metric {
                        Metric::InnerProduct => ip,
                        Metric::Cosine => ip / (norm(i) * norm(j)),
                        Metric::SquaredL2 => -row(i).iter().zip(row(j)).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum::<f64>(),
                    };
                    (key, j as u32)
                })
                .collect();
            // partial_cmp: -0.0 and 0.0 tie, as in the implementation
            c.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
            for &(v, j) in &c[..k] {
                idx.push(j);
                val.push(v);
            }
        }
        (idx, val)
    }

    fn data(n: usize, d: usize, seed: u64, ints: bool, dup_every: usize) -> Vec<f32> {
        let mut r = SplitMix64::new(seed);
        let mut x: Vec<f32> = (0..n * d)
            .map(|_| if ints { r.below(5) as f32 - 2.0 } else { (r.below(1 << 20) as f32 / (1 << 19) as f32) - 1.0 })
            .collect();
        for i in 0..n {
            if ints && x[i * d..(i + 1) * d].iter().all(|&v| v == 0.0) {
                x[i * d] = 1.0; // no zero rows (cosine)
            }
            if dup_every > 0 && i % dup_every == 1 {
                let (a, b) = x.split_at_mut(i * d);
                b[..d].copy_from_slice(&a[(i - 1) * d..i * d]);
            }
        }
        x
    }

    fn check_exact(n: usize, d: usize, k: usize, metric: Metric, seed: u64, ints: bool, dup: usize) {
        let x = data(n, d, seed, ints, dup);
        let r = knn_graph(MatrixView::new(&x, n, d).unwrap(), &params(k, metric, Method::Exact), &AtomicBool::new(false)).unwrap();
        assert_eq!(r.method_used, Method::Exact);
        assert_eq!(r.estimated_recall, None);
        let (ni, nv) = naive(&x, n, d, k, metric);
        for i in 0..n {
            let row = &r.indices[i * k..(i + 1) * k];
            assert!(!row.contains(&(i as u32)), "self in row {i}");
            let mut s = row.to_vec();
            s.sort();
            s.dedup();
            assert_eq!(s.len(), k, "duplicates in row {i}");
            for t in 0..k {
                let got = r.scores[i * k + t] as f64;
                let want = if metric == Metric::SquaredL2 { -nv[i * k + t] } else { nv[i * k + t] };
                assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "row {i} rank {t}: {got} vs {want}");
            }
            if ints && metric != Metric::Cosine {
                // exact arithmetic: identical lists, ties broken by smaller index
                assert_eq!(row, &ni[i * k..(i + 1) * k], "row {i}");
            }
        }
    }

    #[test]
    fn exact_matches_brute_force_with_ties() {
        for metric in [Metric::InnerProduct, Metric::SquaredL2, Metric::Cosine] {
            check_exact(300, 5, 7, metric, 1, true, 3);
            check_exact(531, 17, 12, metric, 2, false, 4);
            check_exact(40, 3, 39, metric, 3, true, 0);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn exact_prop(n in 2usize..300, d in 1usize..40, kf in 0.0f64..1.0, m in 0usize..3, seed in 0u64..1000, ints in any::<bool>()) {
            let k = 1 + ((n - 2) as f64 * kf) as usize;
            let metric = [Metric::Cosine, Metric::InnerProduct, Metric::SquaredL2][m];
            check_exact(n, d, k, metric, seed, ints, if seed % 2 == 0 { 5 } else { 0 });
        }
    }

    #[test]
    fn validation_errors() {
        let c = AtomicBool::new(false);
        let p = params(2, Metric::Cosine, Method::Exact);
        let x = vec![1.0f32; 6];
        let e = |x: &[f32], n, d, p: &KnnParams| knn_graph(MatrixView { data: x, n, d }, p, &c).unwrap_err();
        assert_eq!(e(&x[..3], 1, 3, &p), CoreError::TooFewPoints { n: 1 });
        assert_eq!(e(&x, 2, 3, &p), CoreError::InvalidK { k: 2, n: 2 });
        assert_eq!(e(&x, 2, 3, &params(0, Metric::Cosine, Method::Exact)), CoreError::InvalidK { k: 0, n: 2 });
        assert!(matches!(e(&x, 3, 3, &p), CoreError::ShapeMismatch(_)));
        let mut y = vec![1.0f32; 12];
        y[7] = f32::NAN;
        y[10] = f32::INFINITY;
        match e(&y, 4, 3, &p) {
            CoreError::NonFinite { row: 2, col: 1, value } => assert!(value.is_nan()),
            other => panic!("{other:?}"),
        }
        let mut z = vec![1.0f32; 12];
        z[6..9].fill(0.0);
        assert_eq!(e(&z, 4, 3, &p), CoreError::ZeroNorm { row: 2 });
        // zero rows are fine for the other metrics
        for m in [Metric::InnerProduct, Metric::SquaredL2] {
            assert!(knn_graph(MatrixView::new(&z, 4, 3).unwrap(), &params(2, m, Method::Exact), &c).is_ok());
        }
    }

    #[test]
    fn cancel_before_call() {
        let x = data(100, 4, 1, false, 0);
        let c = AtomicBool::new(true);
        for m in [Method::Exact, Method::Approx, Method::Auto] {
            assert_eq!(knn_graph(MatrixView::new(&x, 100, 4).unwrap(), &params(3, Metric::Cosine, m), &c).unwrap_err(), CoreError::Cancelled);
        }
    }

    /// Gaussian mixture with `centres` centres.
    pub(crate) fn clustered(n: usize, d: usize, centres: usize, sigma: f32, seed: u64) -> Vec<f32> {
        let mut r = SplitMix64::new(seed);
        let mut g = || {
            let (a, b) = ((r.next_u64() >> 11) as f64 / (1u64 << 53) as f64, (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64);
            ((-2.0 * a.max(1e-300).ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32
        };
        let cs: Vec<f32> = (0..centres * d).map(|_| g()).collect();
        let mut x = vec![0.0; n * d];
        for i in 0..n {
            let ci = i % centres;
            for p in 0..d {
                x[i * d + p] = cs[ci * d + p] + sigma * g();
            }
        }
        x
    }

    #[test]
    fn approx_recall_and_determinism() {
        let (n, d, k) = (6000, 32, 10);
        let x = clustered(n, d, 30, 0.6, 11);
        let c = AtomicBool::new(false);
        for metric in [Metric::Cosine, Metric::SquaredL2, Metric::InnerProduct] {
            let mut p = params(k, metric, Method::Approx);
            p.approx.recall_sample = n; // every point: the estimate is the true recall
            let a = knn_graph(MatrixView::new(&x, n, d).unwrap(), &p, &c).unwrap();
            let rec = a.estimated_recall.unwrap();
            assert_eq!(a.method_used, Method::Approx);
            let floor = if metric == Metric::InnerProduct { 0.8 } else { 0.97 };
            assert!(rec >= floor, "{metric:?} recall {rec}");
            for i in 0..n {
                assert!(!a.indices[i * k..(i + 1) * k].contains(&(i as u32)));
            }
            // same seed, other thread count: identical graph
            let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
            let b = pool.install(|| knn_graph(MatrixView::new(&x, n, d).unwrap(), &p, &c).unwrap());
            assert_eq!(a.indices, b.indices);
            assert_eq!(a.scores, b.scores);
        }
    }

    #[test]
    fn approx_on_tiny_inputs_is_complete() {
        let c = AtomicBool::new(false);
        for n in [2usize, 3, 10, 40] {
            let x = data(n, 6, n as u64, false, 0);
            for metric in [Metric::Cosine, Metric::SquaredL2] {
                let mut p = params(n - 1, metric, Method::Approx);
                p.approx.recall_sample = n;
                let r = knn_graph(MatrixView::new(&x, n, 6).unwrap(), &p, &c).unwrap();
                assert_eq!(r.estimated_recall, Some(1.0), "n={n} {metric:?}");
            }
        }
    }

    #[test]
    fn auto_small_is_exact_and_large_reports_recall() {
        let c = AtomicBool::new(false);
        let x = clustered(500, 8, 5, 0.5, 3);
        let r = knn_graph(MatrixView::new(&x, 500, 8).unwrap(), &params(5, Metric::Cosine, Method::Auto), &c).unwrap();
        assert_eq!(r.method_used, Method::Exact);
        let n = AUTO_EXACT_MAX_N + 100;
        let x = clustered(n, 8, 40, 0.3, 4);
        let r = knn_graph(MatrixView::new(&x, n, 8).unwrap(), &params(5, Metric::SquaredL2, Method::Auto), &c).unwrap();
        match r.method_used {
            Method::Approx => assert!(r.estimated_recall.unwrap() >= 0.95),
            Method::Exact => {}
            Method::Auto => panic!("Auto reported"),
        }
    }
}
