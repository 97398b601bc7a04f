//! Label spreading (Zhou et al. 2004): `F <- alpha * S F + (1 - alpha) * Y`,
//! `S = D^-1/2 W D^-1/2`.

use crate::{Csr, Result};
use std::sync::atomic::AtomicBool;

#[derive(Clone, Debug)]
pub struct SmoothParams {
    pub alpha: f32,
    pub max_iter: usize,
    /// stop when max |F_t - F_{t-1}| < tol
    pub tol: f32,
}

#[derive(Clone, Debug)]
pub struct SmoothResult {
    /// row-major `(n, c)`, rows normalised to sum 1
    pub labels: Vec<f32>,
    pub iterations: usize,
    pub residual: f32,
    pub converged: bool,
}

/// `labels` row-major `(n, c)`, values in [0, 1], rows summing > 0. `confidence` (n,) scales
/// each node's seed row Y_i (>= 0); `clamped` (n,) nodes keep F_i = Y_i every iteration.
pub fn smooth_labels(
    w: &Csr,
    labels: &[f32],
    c: usize,
    params: &SmoothParams,
    confidence: Option<&[f32]>,
    clamped: Option<&[bool]>,
    cancel: &AtomicBool,
) -> Result<SmoothResult> {
    let _ = (w, labels, c, params, confidence, clamped, cancel);
    todo!("smooth_labels")
}
