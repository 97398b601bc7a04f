//! Sparse weight matrices: the `W` that label spreading runs on.

pub use crate::csr::Csr;

use crate::csr::CsrChunk;
use crate::{CoreError, Metric, Result};
use rayon::prelude::*;

/// Rows per parallel task when building or merging rows.
const ROW_CHUNK: usize = 4096;

/// Build `W` from a kNN graph (`indices`/`scores`, row-major `(n, k)`):
/// entries -1 in `indices` (faiss's "missing") and self-edges are skipped; similarity
/// scores (Cosine, InnerProduct) become weights `max(score, 0)`; squared-L2 distances
/// become a self-tuning Gaussian kernel; zero weights are dropped; the result is
/// symmetrised with `symmetrize_max`.
///
/// Self-tuning kernel (Zelnik-Manor & Perona 2004): `w_ij = exp(-d_ij / (sigma_i * sigma_j))`
/// where `d_ij` is the squared distance and `sigma_i^2` is the squared distance from `i` to its
/// last valid neighbour (the k-th, or fewer when entries are missing), floored at
/// `1e-12 * max(1, mean sigma^2)` so duplicated points do not divide by zero. A node with no valid
/// neighbour gets the mean `sigma^2` of the others.
///
/// Errors: `ShapeMismatch` when the buffers are not `n * k` long; `InvalidGraph` naming the
/// row and value for an index `>= n` or `< -1`, a non-finite score of a kept entry, or a
/// negative squared distance (SquaredL2).
pub fn knn_to_weights(indices: &[i64], scores: &[f32], n: usize, k: usize, metric: Metric) -> Result<Csr> {
    let g = KnnGraphView { indices, scores, n, k, metric };
    g.check()?;
    let sigma = if metric == Metric::SquaredL2 { Some(g.sigmas()) } else { None };
    let weight = |i: usize, t: usize| -> f32 {
        let s = scores[i * k + t];
        match &sigma {
            None => s.max(0.0),
            Some(sg) => {
                let j = indices[i * k + t] as usize;
                (-(s.max(0.0) as f64) / (sg[i] * sg[j])).exp() as f32
            }
        }
    };
    let chunks: Vec<CsrChunk> = (0..n.div_ceil(ROW_CHUNK))
        .into_par_iter()
        .map(|c| {
            let (r0, r1) = (c * ROW_CHUNK, ((c + 1) * ROW_CHUNK).min(n));
            let mut out = CsrChunk::with_rows(r1 - r0);
            for i in r0..r1 {
                let start = out.indices.len();
                for t in (0..k).filter(|&t| g.kept(i, t)) {
                    let w = weight(i, t);
                    if w > 0.0 {
                        out.push(indices[i * k + t] as u32, w);
                    }
                }
                out.end_row(start);
            }
            out
        })
        .collect();
    Ok(symmetrize_max(&Csr::from_chunks(n, &chunks)))
}

/// A kNN graph as the caller gave it: row-major `(n, k)` neighbour indices and scores.
struct KnnGraphView<'a> {
    indices: &'a [i64],
    scores: &'a [f32],
    n: usize,
    k: usize,
    metric: Metric,
}

impl KnnGraphView<'_> {
    /// Whether entry `t` of row `i` becomes an edge (present, not a self-edge).
    #[inline]
    fn kept(&self, i: usize, t: usize) -> bool {
        let j = self.indices[i * self.k + t];
        j >= 0 && j as usize != i
    }

    /// Shapes, the index range and finite scores; errors name the first bad row.
    fn check(&self) -> Result<()> {
        let (indices, scores, n, k) = (self.indices, self.scores, self.n, self.k);
        if indices.len() != n * k || scores.len() != n * k {
            return Err(CoreError::ShapeMismatch(format!(
                "indices has {} and scores {} entries, expected n*k = {}*{} = {}",
                indices.len(),
                scores.len(),
                n,
                k,
                n * k
            )));
        }
        if u32::try_from(n).is_err() {
            return Err(CoreError::InvalidGraph(format!("n={n} exceeds the u32 index range")));
        }
        let out_of_range = |j: i64| j < -1 || (j >= 0 && j as u64 >= n as u64);
        let bad_score = |i: usize, t: usize| self.kept(i, t) && !scores[i * k + t].is_finite();
        let negative = |i: usize, t: usize| self.metric == Metric::SquaredL2 && self.kept(i, t) && scores[i * k + t] < 0.0;
        // Validate in parallel; report the first bad row.
        let Some(i) = (0..n).into_par_iter().find_first(|&i| (0..k).any(|t| out_of_range(indices[i * k + t]) || bad_score(i, t) || negative(i, t))) else {
            return Ok(());
        };
        for t in 0..k {
            let j = indices[i * k + t];
            if out_of_range(j) {
                return Err(CoreError::InvalidGraph(format!(
                    "row {i} has neighbour index {j}, but n={n} (indices must be in [0, n), or -1 for a missing neighbour)"
                )));
            }
            if bad_score(i, t) {
                return Err(CoreError::InvalidGraph(format!("row {i} has non-finite score {} for neighbour {j}", scores[i * k + t])));
            }
            if negative(i, t) {
                return Err(CoreError::InvalidGraph(format!(
                    "row {i} has negative squared distance {} for neighbour {j}; sqeuclidean scores must be >= 0",
                    scores[i * k + t]
                )));
            }
        }
        Ok(())
    }

    /// The self-tuning kernel's `sigma_i` (scores are squared distances).
    fn sigmas(&self) -> Vec<f64> {
        let (scores, k) = (self.scores, self.k);
        let last: Vec<Option<f64>> = (0..self.n)
            .into_par_iter()
            .map(|i| (0..k).rev().find(|&t| self.kept(i, t)).map(|t| (scores[i * k + t] as f64).max(0.0)))
            .collect();
        let (sum, cnt) = last.iter().flatten().fold((0.0, 0usize), |(s, c), &v| (s + v, c + 1));
        let mean = if cnt > 0 { sum / cnt as f64 } else { 1.0 };
        let floor = 1e-12 * mean.max(1.0);
        last.into_iter().map(|v| v.unwrap_or(mean).max(floor).sqrt()).collect()
    }
}

/// `max(W, W^T)` elementwise; sorted column indices per row; no explicit zeros.
///
/// Missing entries count as 0 (so a negative weight present on one side only becomes 0 and is
/// dropped); duplicated entries within a row are merged with max. `w` must be well formed
/// (`indptr` of length n+1, non-decreasing, column indices < n).
pub fn symmetrize_max(w: &Csr) -> Csr {
    let n = w.n;
    let wt = transpose(w);
    let chunks: Vec<CsrChunk> = (0..n.div_ceil(ROW_CHUNK))
        .into_par_iter()
        .map(|c| {
            let (r0, r1) = (c * ROW_CHUNK, ((c + 1) * ROW_CHUNK).min(n));
            let mut out = CsrChunk::with_rows(r1 - r0);
            let mut row: Vec<(u32, f32)> = Vec::new();
            for i in r0..r1 {
                row.clear();
                row.extend((w.indptr[i] as usize..w.indptr[i + 1] as usize).map(|e| (w.indices[e], w.data[e])));
                row.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
                let tr = wt.indptr[i] as usize..wt.indptr[i + 1] as usize;
                let start = out.indices.len();
                merge_max(&row, &wt.indices[tr.clone()], &wt.data[tr], &mut out);
                out.end_row(start);
            }
            out
        })
        .collect();
    Csr::from_chunks(n, &chunks)
}

/// `W^T` by counting sort: its rows come out with ascending column indices.
fn transpose(w: &Csr) -> Csr {
    let n = w.n;
    let nnz = w.indices.len();
    let mut tptr = vec![0u64; n + 1];
    for &j in &w.indices {
        tptr[j as usize + 1] += 1;
    }
    for i in 0..n {
        tptr[i + 1] += tptr[i];
    }
    let mut fill: Vec<u64> = tptr[..n].to_vec();
    let mut tind = vec![0u32; nnz];
    let mut tdat = vec![0f32; nnz];
    for i in 0..n {
        for e in w.indptr[i] as usize..w.indptr[i + 1] as usize {
            let j = w.indices[e] as usize;
            let p = fill[j] as usize;
            tind[p] = i as u32;
            tdat[p] = w.data[e];
            fill[j] += 1;
        }
    }
    Csr { n, indptr: tptr, indices: tind, data: tdat }
}

/// Merge one row of `W` (`row`, sorted by column) with the same row of `W^T` (`ti`, `td`,
/// sorted) into `out`: per column the max, 0 standing for a side without the entry; zeros
/// dropped.
fn merge_max(row: &[(u32, f32)], ti: &[u32], td: &[f32], out: &mut CsrChunk) {
    let (mut a, mut b) = (0usize, 0usize);
    while a < row.len() || b < ti.len() {
        let col = match (row.get(a), ti.get(b)) {
            (Some(x), Some(&y)) => x.0.min(y),
            (Some(x), None) => x.0,
            (None, Some(&y)) => y,
            (None, None) => unreachable!(),
        };
        let (mut m, mut in_w, mut in_t) = (f32::NEG_INFINITY, false, false);
        while a < row.len() && row[a].0 == col {
            m = m.max(row[a].1);
            in_w = true;
            a += 1;
        }
        while b < ti.len() && ti[b] == col {
            m = m.max(td[b]);
            in_t = true;
            b += 1;
        }
        if !(in_w && in_t) {
            m = m.max(0.0);
        }
        if m != 0.0 {
            out.push(col, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dense(w: &Csr) -> Vec<f32> {
        let mut m = vec![0.0; w.n * w.n];
        for i in 0..w.n {
            for e in w.indptr[i] as usize..w.indptr[i + 1] as usize {
                m[i * w.n + w.indices[e] as usize] = w.data[e];
            }
        }
        m
    }

    fn well_formed(w: &Csr) {
        w.validate().unwrap();
        for i in 0..w.n {
            let r = &w.indices[w.indptr[i] as usize..w.indptr[i + 1] as usize];
            assert!(r.windows(2).all(|p| p[0] < p[1]), "row {i} not sorted/unique");
        }
        assert!(w.data.iter().all(|&v| v != 0.0));
    }

    fn arb_csr() -> impl Strategy<Value = Csr> {
        (1usize..30).prop_flat_map(|n| {
            proptest::collection::vec((0..n, 0..n, -1.0f32..2.0), 0..(n * 4)).prop_map(move |mut e| {
                e.sort_by_key(|t| t.0);
                let mut indptr = vec![0u64; n + 1];
                for t in &e {
                    indptr[t.0 + 1] += 1;
                }
                for i in 0..n {
                    indptr[i + 1] += indptr[i];
                }
                Csr { n, indptr, indices: e.iter().map(|t| t.1 as u32).collect(), data: e.iter().map(|t| t.2).collect() }
            })
        })
    }

    proptest! {
        #[test]
        fn symmetrize_is_symmetric_max_and_idempotent(w in arb_csr()) {
            let s = symmetrize_max(&w);
            well_formed(&s);
            let (a, b) = (dense(&w), dense(&s));
            let n = w.n;
            // expected: max over duplicates (missing = 0), then max with the transpose
            let mut m = vec![f32::NEG_INFINITY; n * n];
            let mut present = vec![false; n * n];
            for i in 0..n {
                for e in w.indptr[i] as usize..w.indptr[i + 1] as usize {
                    let j = w.indices[e] as usize;
                    m[i * n + j] = m[i * n + j].max(w.data[e]);
                    present[i * n + j] = true;
                }
            }
            let _ = a;
            for i in 0..n {
                for j in 0..n {
                    let x = if present[i * n + j] { m[i * n + j] } else { 0.0 };
                    let y = if present[j * n + i] { m[j * n + i] } else { 0.0 };
                    let want = if present[i * n + j] && present[j * n + i] { x.max(y) } else { x.max(y).max(0.0) };
                    prop_assert_eq!(b[i * n + j], want);
                    prop_assert_eq!(b[i * n + j], b[j * n + i]);
                }
            }
            prop_assert_eq!(symmetrize_max(&s), s);
        }
    }

    #[test]
    fn weights_skip_missing_and_self() {
        // n=4, k=3; -1 = missing, self edges present
        let idx = [1i64, 0, -1, 0, 2, 1, -1, -1, -1, 3, 0, 2];
        let sc = [0.9f32, 5.0, 1.0, 0.8, -0.5, 7.0, f32::NAN, 0.0, 0.0, 3.0, 0.3, 0.2];
        let w = knn_to_weights(&idx, &sc, 4, 3, Metric::Cosine).unwrap();
        well_formed(&w);
        let m = dense(&w);
        assert_eq!(m[1], 0.9); // max(0.9, 0.8)
        assert_eq!(m[4], 0.9);
        assert_eq!(m[4 + 2], 0.0); // W[1][2]: negative similarity dropped
        assert_eq!(m[3 * 4], 0.3);
        assert_eq!(m[2 * 4 + 3], 0.2);
        assert_eq!((0..4).map(|i| m[i * 4 + i]).sum::<f32>(), 0.0);
    }

    #[test]
    fn gaussian_kernel_for_l2() {
        let idx = [1i64, 2, 0, 2, 0, 1];
        let sc = [1.0f32, 4.0, 1.0, 2.0, 4.0, 2.0];
        let w = knn_to_weights(&idx, &sc, 3, 2, Metric::SquaredL2).unwrap();
        let m = dense(&w);
        let s = [2.0f64, 2.0f64.sqrt(), 2.0f64.sqrt()];
        assert!((m[1] as f64 - (-1.0 / (s[0] * s[1])).exp()).abs() < 1e-6);
        assert!((m[2] as f64 - (-4.0 / (s[0] * s[2])).exp()).abs() < 1e-6);
        assert_eq!(m, dense(&symmetrize_max(&w)));
        // duplicated points (distance 0 everywhere) do not produce NaN
        let w = knn_to_weights(&idx, &[0.0; 6], 3, 2, Metric::SquaredL2).unwrap();
        assert!(w.data.iter().all(|&v| v == 1.0));
    }

    #[test]
    fn weights_errors() {
        assert!(matches!(knn_to_weights(&[1, 5], &[1.0, 1.0], 2, 1, Metric::Cosine), Err(CoreError::InvalidGraph(m)) if m.contains("row 1") && m.contains('5')));
        assert!(matches!(knn_to_weights(&[1, 0], &[1.0, f32::INFINITY], 2, 1, Metric::Cosine), Err(CoreError::InvalidGraph(m)) if m.contains("row 1")));
        assert!(matches!(knn_to_weights(&[1], &[1.0, 1.0], 2, 1, Metric::Cosine), Err(CoreError::ShapeMismatch(_))));
        // -1 is "missing"; other negative indices are errors
        assert!(knn_to_weights(&[1, -1], &[1.0, 1.0], 2, 1, Metric::Cosine).is_ok());
        assert!(matches!(knn_to_weights(&[1, -2], &[1.0, 1.0], 2, 1, Metric::Cosine), Err(CoreError::InvalidGraph(m)) if m.contains("row 1") && m.contains("-2")));
        // negative squared distances are errors (a similarity passed as a distance?)
        assert!(matches!(knn_to_weights(&[1, 0], &[0.5, -0.5], 2, 1, Metric::SquaredL2), Err(CoreError::InvalidGraph(m)) if m.contains("row 1") && m.contains("negative")));
        assert!(knn_to_weights(&[1, 0], &[0.5, -0.5], 2, 1, Metric::InnerProduct).is_ok());
    }
}
