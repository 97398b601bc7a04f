//! Validated input with the per-row quantities every search method needs.
//!
//! Numerics: every method computes in `f32`, on rows transformed so that `f32` is enough.
//! - Cosine: rows are normalised with norms computed in `f64`. Normally the scale is applied
//!   on the fly (no copy); when some row's `1/||x||` is not a normal `f32` (a norm below about
//!   3e-39, e.g. denormal values, or above 1e38) the normalised rows are copied once, computed
//!   in `f64`, so every row gets a proper unit vector.
//! - SquaredL2 and InnerProduct: rows are centred (column means in `f64`, rounded to a
//!   power-of-two grid at the data's spread) and scaled by a
//!   power of two so that the largest centred value is in [1, 2): `y_i = s (x_i - m)`. The
//!   squared distance is translation-invariant, so centring removes the cancellation of
//!   `|x_i|^2 + |x_j|^2 - 2 x_i.x_j` on data far from the origin; the inner product is
//!   recovered as `s^2 x_i.x_j = y_i.y_j + l_i + l_j + s^2 m.m` with `l_i = s m.y_i`. Scores
//!   are scaled back in `f64`; a score beyond the `f32` range is an error, not an `inf`.
//!   The transformed rows are one O(n d) copy.

use super::types::{KnnParams, Metric};
use crate::{CoreError, MatrixView, Result};
use rayon::prelude::*;
use std::borrow::Cow;

/// Rows per block of the column-mean reduction (fixed, so the sums do not depend on the
/// thread count).
const MEAN_BLOCK: usize = 1024;

/// Validated input with the per-row quantities every method needs.
pub(crate) struct Prepared<'a> {
    /// the caller's matrix (shape; the rows actually searched are [`Prepared::row`])
    pub data: MatrixView<'a>,
    pub metric: Metric,
    /// the rows searched: the caller's (cosine, scaled on the fly) or transformed ones
    rows: Cow<'a, [f32]>,
    /// Cosine with borrowed rows: 1/||x_i||, the scale that normalises row i
    inv_norm: Option<Vec<f32>>,
    /// SquaredL2: ||y_i||^2 of the transformed rows
    pub sqn: Option<Vec<f32>>,
    /// InnerProduct: l_i = s m.y_i
    pub lin: Option<Vec<f32>>,
    /// score = key / s^2 (+ s^2 m.m / s^2 for InnerProduct)
    inv_s2: f64,
    /// InnerProduct: s^2 m.m
    mm: f64,
}

/// Column sums in `f64` over fixed blocks of rows, summed in block order.
fn column_means(data: &MatrixView<'_>) -> Vec<f64> {
    let d = data.d;
    let parts: Vec<Vec<f64>> = data
        .data
        .par_chunks(MEAN_BLOCK * d)
        .map(|blk| {
            let mut s = vec![0.0f64; d];
            for r in blk.chunks(d) {
                for (a, &v) in s.iter_mut().zip(r) {
                    *a += v as f64;
                }
            }
            s
        })
        .collect();
    let mut m = vec![0.0f64; d];
    for p in &parts {
        for (a, b) in m.iter_mut().zip(p) {
            *a += b;
        }
    }
    m.iter_mut().for_each(|v| *v /= data.n as f64);
    m
}

/// The largest power of two every nonzero value is an integer multiple of (`inf` when all
/// values are zero).
fn data_grid(x: &[f32]) -> f64 {
    let low = |v: f32| -> i32 {
        let b = v.to_bits() & 0x7fff_ffff;
        let (e, m) = ((b >> 23) as i32, b & 0x7f_ffff);
        // value = m' * 2^(e' - 150) with m' the full mantissa
        let (mm, ee) = if e == 0 { (m, -149) } else { (m | 0x80_0000, e - 150) };
        ee + mm.trailing_zeros() as i32
    };
    let lo = x.par_iter().filter(|v| **v != 0.0).map(|&v| low(v)).min();
    lo.map_or(f64::INFINITY, |e| 2f64.powi(e))
}

/// The power of two `s` with `s * max_abs` in [1, 2) (1 when `max_abs` is 0).
pub(crate) fn pow2_scale(max_abs: f64) -> f64 {
    if max_abs <= 0.0 || !max_abs.is_finite() {
        return 1.0;
    }
    let e = max_abs.log2().floor() as i32;
    let mut s = 2f64.powi(-e);
    // log2 may round across a power of two
    while s * max_abs >= 2.0 {
        s *= 0.5;
    }
    while s * max_abs < 1.0 {
        s *= 2.0;
    }
    s
}

impl<'a> Prepared<'a> {
    pub(super) fn validate(data: MatrixView<'a>, params: &KnnParams) -> Result<Self> {
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
        if u32::try_from(n).is_err() {
            return Err(CoreError::ShapeMismatch(format!("n={n} exceeds the u32 index range")));
        }
        if !(0.0..=1.0).contains(&params.approx.min_recall) {
            return Err(CoreError::InvalidParameter(format!("min_recall={} must be in [0, 1]", params.approx.min_recall)));
        }
        if let Some(row) = data.data.par_chunks(d).position_first(|r| r.iter().any(|v| !v.is_finite())) {
            let r = data.row(row);
            let col = r.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(CoreError::NonFinite { row, col, value: r[col] });
        }
        let mut p = Self { data, metric: params.metric, rows: Cow::Borrowed(data.data), inv_norm: None, sqn: None, lin: None, inv_s2: 1.0, mm: 0.0 };
        match params.metric {
            Metric::Cosine => {
                let sq: Vec<f64> = data.data.par_chunks(d).map(|r| r.iter().map(|&v| (v as f64) * (v as f64)).sum()).collect();
                if let Some(row) = sq.par_iter().position_first(|&s| s <= 0.0) {
                    return Err(CoreError::ZeroNorm { row });
                }
                let inv: Vec<f64> = sq.par_iter().map(|&s| 1.0 / s.sqrt()).collect();
                if inv.par_iter().all(|&s| (s as f32).is_normal()) {
                    p.inv_norm = Some(inv.par_iter().map(|&s| s as f32).collect());
                } else {
                    let mut y = vec![0.0f32; n * d];
                    y.par_chunks_mut(d).zip(data.data.par_chunks(d)).zip(inv.par_iter()).for_each(|((dst, src), &s)| {
                        for (a, &b) in dst.iter_mut().zip(src) {
                            *a = ((b as f64) * s) as f32;
                        }
                    });
                    p.rows = Cow::Owned(y);
                }
            }
            Metric::SquaredL2 | Metric::InnerProduct => {
                let spread = |m: &[f64]| {
                    data.data
                        .par_chunks(d)
                        .map(|r| r.iter().zip(m).fold(0.0f64, |a, (&v, &c)| a.max((v as f64 - c).abs())))
                        .reduce(|| 0.0, f64::max)
                };
                // The centre: the column means rounded to a multiple of g, the data's own grid
                // (the largest power of two every value is a multiple of) clamped to
                // [2^-24, 1] times the spread's power of two. Data on a coarse grid (integers)
                // stays on it (exact arithmetic, exact ties); other data is centred to 2^-24
                // of its spread.
                let mut m = column_means(&data);
                let top = 1.0 / pow2_scale(spread(&m));
                let g = data_grid(data.data).clamp(top * 2f64.powi(-24), top);
                m.iter_mut().for_each(|c| *c = (*c / g).round() * g);
                let s = pow2_scale(spread(&m));
                let mut y = vec![0.0f32; n * d];
                y.par_chunks_mut(d).zip(data.data.par_chunks(d)).for_each(|(dst, src)| {
                    for ((a, &b), &c) in dst.iter_mut().zip(src).zip(&m) {
                        *a = ((b as f64 - c) * s) as f32;
                    }
                });
                p.inv_s2 = 1.0 / (s * s);
                if params.metric == Metric::SquaredL2 {
                    p.sqn = Some(y.par_chunks(d).map(|r| r.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() as f32).collect());
                } else {
                    p.lin = Some(y.par_chunks(d).map(|r| (s * r.iter().zip(&m).map(|(&v, &c)| v as f64 * c).sum::<f64>()) as f32).collect());
                    p.mm = s * s * m.iter().map(|c| c * c).sum::<f64>();
                }
                p.rows = Cow::Owned(y);
            }
        }
        Ok(p)
    }

    /// Row `i` as searched (before [`Prepared::scale`]).
    #[inline]
    pub(crate) fn row(&self, i: usize) -> &[f32] {
        let d = self.data.d;
        &self.rows[i * d..(i + 1) * d]
    }

    #[inline]
    pub(crate) fn scale(&self, i: usize) -> f32 {
        self.inv_norm.as_ref().map_or(1.0, |v| v[i])
    }

    /// Turn a tile of dot products into keys (higher is better). Symmetric in the pair, so
    /// a pair's key does not depend on which side of the tile it is on.
    #[inline]
    pub(super) fn to_keys(&self, tile: &mut [f32], ld: usize, rows: &dyn Fn(usize) -> usize, nrows: usize, j0: usize, ncols: usize) {
        if let Some(sqn) = &self.sqn {
            for r in 0..nrows {
                let si = sqn[rows(r)];
                for (c, v) in tile[r * ld..r * ld + ncols].iter_mut().enumerate() {
                    *v = 2.0 * *v - (si + sqn[j0 + c]);
                }
            }
        } else if let Some(lin) = &self.lin {
            for r in 0..nrows {
                let li = lin[rows(r)];
                for (c, v) in tile[r * ld..r * ld + ncols].iter_mut().enumerate() {
                    *v += li + lin[j0 + c];
                }
            }
        }
    }

    /// The score (as `KnnResult` defines it) of a key; may be non-finite when the true
    /// score is beyond the `f32` range (see [`Prepared::check_scores`]).
    #[inline]
    pub(crate) fn score_of_key(&self, key: f32) -> f32 {
        match self.metric {
            Metric::Cosine => key,
            Metric::SquaredL2 => ((-key).max(0.0) as f64 * self.inv_s2) as f32,
            Metric::InnerProduct => ((key as f64 + self.mm) * self.inv_s2) as f32,
        }
    }

    /// An error when a score overflowed the `f32` range.
    pub(crate) fn check_scores(&self, scores: &[f32], k: usize) -> Result<()> {
        if let Some(pos) = scores.par_iter().position_first(|v| !v.is_finite()) {
            let what = match self.metric {
                Metric::SquaredL2 => "squared distances",
                _ => "inner products",
            };
            return Err(CoreError::ScoreOverflow(format!(
                "{what} exceed the float32 range (row {}); divide the embeddings by a constant",
                pos / k.max(1)
            )));
        }
        Ok(())
    }
}
