//! Sparse weight matrices: the `W` that label spreading runs on.

use crate::{Metric, Result};

/// Square CSR matrix, `n x n`, `f32` values, `u32` column indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Csr {
    pub n: usize,
    /// length n + 1
    pub indptr: Vec<u64>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

/// Build `W` from a kNN graph (`indices`/`scores`, row-major `(n, k)`):
/// entries < 0 in `indices` (faiss's "missing") and self-edges are skipped; similarity
/// scores (Cosine, InnerProduct) become weights `max(score, 0)`; squared-L2 distances
/// become a self-tuning Gaussian kernel; zero weights are dropped; the result is
/// symmetrised with `symmetrize_max`.
pub fn knn_to_weights(indices: &[i64], scores: &[f32], n: usize, k: usize, metric: Metric) -> Result<Csr> {
    let _ = (indices, scores, n, k, metric);
    todo!("knn_to_weights")
}

/// `max(W, W^T)` elementwise; sorted column indices per row; no explicit zeros.
pub fn symmetrize_max(w: &Csr) -> Csr {
    let _ = w;
    todo!("symmetrize_max")
}
