//! Label spreading (Zhou et al. 2004): `F <- alpha * S F + (1 - alpha) * Y`,
//! `S = D^-1/2 W D^-1/2`.
//!
//! [`operator`] builds `S` (normalised, reordered, partitioned for the parallel tasks);
//! [`iterate`] runs the loop (tolerance, clamped rows); this module checks the inputs and
//! normalises the result.

mod iterate;
mod operator;

#[cfg(test)]
mod tests;

use crate::cancel::check_cancel;
use crate::{CoreError, Csr, Result};
use iterate::Rhs;
use operator::SpreadOp;
use rayon::prelude::*;
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
    /// seconds spent building the operator (S, node order) before the first iteration
    pub setup_seconds: f64,
    /// seconds spent in the iterations themselves
    pub iterate_seconds: f64,
}

/// `labels` row-major `(n, c)`, values in [0, 1], rows summing > 0. `confidence` (n,) scales
/// each node's seed row Y_i (>= 0); `clamped` (n,) nodes keep F_i = Y_i every iteration.
///
/// `S = D^-1/2 W D^-1/2` is built once (f32 CSR; isolated nodes get an empty row); then
/// `F <- alpha S F + (1 - alpha) Y` from `F0 = Y` until `max |dF| < tol` or `max_iter`.
/// Output rows are normalised to sum 1; a row with no mass falls back to its label row.
pub fn smooth_labels(
    w: &Csr,
    labels: &[f32],
    c: usize,
    params: &SmoothParams,
    confidence: Option<&[f32]>,
    clamped: Option<&[bool]>,
    cancel: &AtomicBool,
) -> Result<SmoothResult> {
    check_params(params)?;
    check_labels(w.n, labels, c, confidence, clamped)?;
    check_weights(w)?;
    check_cancel(cancel)?;

    // Y = confidence * labels.
    let mut y = labels.to_vec();
    if let Some(conf) = confidence {
        y.par_chunks_mut(c).zip(conf.par_iter()).for_each(|(r, &s)| r.iter_mut().for_each(|v| *v *= s));
    }
    let t_setup = std::time::Instant::now();
    let op = SpreadOp::new(w);
    check_cancel(cancel)?;
    // Work in the operator's node order: Y, F and the clamped mask are permuted once here and
    // F is permuted back at the end.
    let yp = op.permute_rows(&y, c);
    let clp: Option<Vec<bool>> = clamped.map(|cl| op.order.par_iter().map(|&o| cl[o as usize]).collect());
    let rhs = Rhs { y: &yp, c, alpha: params.alpha, oma: 1.0 - params.alpha, clamped: clp.as_deref() };
    let setup_seconds = t_setup.elapsed().as_secs_f64();
    let t_iter = std::time::Instant::now();
    let out = iterate::iterate(&op, &rhs, params.max_iter, params.tol, cancel)?;
    let iterate_seconds = t_iter.elapsed().as_secs_f64();
    let mut f = op.unpermute_rows(&out.f, c);
    normalise_rows(&mut f, labels, c);
    Ok(SmoothResult { labels: f, iterations: out.iterations, residual: out.residual, converged: out.converged, setup_seconds, iterate_seconds })
}

/// `alpha` as the iteration uses it (`f32`), when it is in [0, 1) both as given and once
/// rounded to `f32` (a value just below 1 that rounds to 1 is refused); else `InvalidAlpha`
/// naming the value as given. Callers holding an `f64` (the Python bindings) check it here
/// before building [`SmoothParams`], so that the error names their value, not its rounding.
pub fn check_alpha(alpha: f64) -> Result<f32> {
    let a = alpha as f32;
    if alpha.is_finite() && (0.0..1.0).contains(&alpha) && (0.0..1.0).contains(&a) {
        Ok(a)
    } else {
        Err(CoreError::InvalidAlpha(alpha))
    }
}

fn check_params(params: &SmoothParams) -> Result<()> {
    check_alpha(params.alpha as f64)?;
    if !(params.tol.is_finite() && params.tol >= 0.0) {
        return Err(CoreError::InvalidParameter(format!("tol={} must be finite and >= 0", params.tol)));
    }
    Ok(())
}

/// Shapes and values of the labels, the confidences and the clamped mask for `n` nodes.
fn check_labels(n: usize, labels: &[f32], c: usize, confidence: Option<&[f32]>, clamped: Option<&[bool]>) -> Result<()> {
    if c == 0 {
        return Err(CoreError::ShapeMismatch("labels need c >= 1 columns".into()));
    }
    if labels.len() != n * c {
        return Err(CoreError::ShapeMismatch(format!("labels has {} values, expected n*c = {}*{} = {}", labels.len(), n, c, n * c)));
    }
    let bad = |v: &f32| !(v.is_finite() && (0.0..=1.0).contains(v));
    if let Some(row) = labels.par_chunks(c).position_first(|r| r.iter().any(bad)) {
        let value = *labels[row * c..(row + 1) * c].iter().find(|v| bad(v)).unwrap_or(&f32::NAN);
        return Err(CoreError::LabelOutOfRange { row, value });
    }
    if let Some(row) = labels.par_chunks(c).position_first(|r| r.iter().sum::<f32>() <= 0.0) {
        return Err(CoreError::ZeroLabelRow { row });
    }
    if let Some(conf) = confidence {
        if conf.len() != n {
            return Err(CoreError::ShapeMismatch(format!("confidence has {} values, expected n={n}", conf.len())));
        }
        if let Some(i) = conf.par_iter().position_first(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(CoreError::InvalidParameter(format!("confidence[{i}]={} must be finite and >= 0", conf[i])));
        }
    }
    if let Some(cl) = clamped {
        if cl.len() != n {
            return Err(CoreError::ShapeMismatch(format!("clamped has {} values, expected n={n}", cl.len())));
        }
    }
    Ok(())
}

/// `W` well formed, with finite non-negative weights.
fn check_weights(w: &Csr) -> Result<()> {
    w.validate()?;
    if let Some(e) = w.data.par_iter().position_first(|v| !(v.is_finite() && *v >= 0.0)) {
        let row = w.indptr.partition_point(|&p| p as usize <= e) - 1;
        return Err(CoreError::InvalidGraph(format!("row {row} has weight {}; weights must be finite and >= 0", w.data[e])));
    }
    Ok(())
}

/// Normalise rows to sum 1; a row without mass falls back to its (normalised) label row.
fn normalise_rows(f: &mut [f32], labels: &[f32], c: usize) {
    f.par_chunks_mut(c).zip(labels.par_chunks(c)).for_each(|(r, l)| {
        let sum: f32 = r.iter().sum();
        if sum > 0.0 && sum.is_finite() {
            r.iter_mut().for_each(|v| *v /= sum);
        } else {
            let ls: f32 = l.iter().sum();
            r.iter_mut().zip(l).for_each(|(v, &x)| *v = x / ls);
        }
    });
}
