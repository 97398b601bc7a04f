//! Validated input with the per-row quantities every search method needs.

use super::types::{KnnParams, Metric};
use crate::{CoreError, MatrixView, Result};
use rayon::prelude::*;

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
    pub(super) fn to_keys(&self, tile: &mut [f32], ld: usize, rows: &dyn Fn(usize) -> usize, nrows: usize, j0: usize, ncols: usize) {
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
