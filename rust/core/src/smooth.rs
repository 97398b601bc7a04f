//! Label spreading (Zhou et al. 2004): `F <- alpha * S F + (1 - alpha) * Y`,
//! `S = D^-1/2 W D^-1/2`.

use crate::knn::check_cancel;
use crate::{CoreError, Csr, Result};
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
    let n = w.n;
    let alpha = params.alpha;
    if !(alpha.is_finite() && (0.0..1.0).contains(&alpha)) {
        return Err(CoreError::InvalidAlpha(alpha as f64));
    }
    if !(params.tol.is_finite() && params.tol >= 0.0) {
        return Err(CoreError::InvalidParameter(format!("tol={} must be finite and >= 0", params.tol)));
    }
    if c == 0 {
        return Err(CoreError::ShapeMismatch("labels need c >= 1 columns".into()));
    }
    if labels.len() != n * c {
        return Err(CoreError::ShapeMismatch(format!("labels has {} values, expected n*c = {}*{} = {}", labels.len(), n, c, n * c)));
    }
    if let Some(row) = labels.par_chunks(c).position_first(|r| r.iter().any(|v| !(v.is_finite() && (0.0..=1.0).contains(v)))) {
        let value = *labels[row * c..(row + 1) * c].iter().find(|v| !(v.is_finite() && (0.0..=1.0).contains(*v))).unwrap_or(&f32::NAN);
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
    w.validate()?;
    if let Some(e) = w.data.par_iter().position_first(|v| !(v.is_finite() && *v >= 0.0)) {
        let row = w.indptr.partition_point(|&p| p as usize <= e) - 1;
        return Err(CoreError::InvalidGraph(format!("row {row} has weight {}; weights must be finite and >= 0", w.data[e])));
    }
    check_cancel(cancel)?;

    // Y = confidence * labels.
    let mut y = labels.to_vec();
    if let Some(conf) = confidence {
        y.par_chunks_mut(c).zip(conf.par_iter()).for_each(|(r, &s)| r.iter_mut().for_each(|v| *v *= s));
    }
    let s = normalized_operator(w);
    let oma = 1.0 - alpha;
    let mut f = y.clone();
    let mut g = vec![0.0f32; n * c];
    let (mut iterations, mut residual, mut converged) = (0usize, f32::INFINITY, false);
    while iterations < params.max_iter {
        check_cancel(cancel)?;
        residual = step(&s, &f, &mut g, &y, c, alpha, oma, clamped);
        std::mem::swap(&mut f, &mut g);
        iterations += 1;
        if residual < params.tol || residual == 0.0 {
            converged = true;
            break;
        }
    }
    // Normalise rows; a row without mass falls back to its (normalised) label row.
    f.par_chunks_mut(c).zip(labels.par_chunks(c)).for_each(|(r, l)| {
        let sum: f32 = r.iter().sum();
        if sum > 0.0 && sum.is_finite() {
            r.iter_mut().for_each(|v| *v /= sum);
        } else {
            let ls: f32 = l.iter().sum();
            r.iter_mut().zip(l).for_each(|(v, &x)| *v = x / ls);
        }
    });
    Ok(SmoothResult { labels: f, iterations, residual, converged })
}

/// The spreading operator `S = D^-1/2 W D^-1/2` as f32 CSR (zero rows for isolated nodes).
pub(crate) struct NormOp<'a> {
    indptr: Vec<usize>,
    /// borrowed from `W` (same structure)
    indices: &'a [u32],
    data: Vec<f32>,
}

pub(crate) fn normalized_operator(w: &Csr) -> NormOp<'_> {
    let n = w.n;
    let inv_sqrt: Vec<f32> = (0..n)
        .into_par_iter()
        .map(|i| {
            let d: f64 = w.data[w.indptr[i] as usize..w.indptr[i + 1] as usize].iter().map(|&v| v as f64).sum();
            if d > 0.0 {
                (1.0 / d.sqrt()) as f32
            } else {
                0.0
            }
        })
        .collect();
    let indptr: Vec<usize> = w.indptr.iter().map(|&p| p as usize).collect();
    let mut data = vec![0.0f32; w.data.len()];
    // Fill row by row in parallel: split `data` at row boundaries chunk by chunk.
    let chunk = 8192;
    let mut rest: &mut [f32] = &mut data;
    let mut parts = Vec::new();
    for r0 in (0..n).step_by(chunk) {
        let r1 = (r0 + chunk).min(n);
        let (a, b) = rest.split_at_mut(indptr[r1] - indptr[r0]);
        parts.push((r0, r1, a));
        rest = b;
    }
    parts.into_par_iter().for_each(|(r0, r1, out)| {
        let base = indptr[r0];
        for i in r0..r1 {
            for e in indptr[i]..indptr[i + 1] {
                let j = w.indices[e] as usize;
                out[e - base] = w.data[e] * inv_sqrt[i] * inv_sqrt[j];
            }
        }
    });
    NormOp { indptr, indices: &w.indices, data }
}

/// Rows per parallel task of one iteration.
const ROW_CHUNK: usize = 4096;

/// One iteration `g = alpha S f + (1 - alpha) y` (clamped rows: `g = y`); returns max |g - f|.
#[allow(clippy::too_many_arguments)]
fn step(s: &NormOp<'_>, f: &[f32], g: &mut [f32], y: &[f32], c: usize, alpha: f32, oma: f32, clamped: Option<&[bool]>) -> f32 {
    g.par_chunks_mut(ROW_CHUNK * c)
        .enumerate()
        .map(|(ci, gc)| {
            let r0 = ci * ROW_CHUNK;
            let mut res = 0.0f32;
            match c {
                1 => {
                    for (t, out) in gc.iter_mut().enumerate() {
                        let i = r0 + t;
                        let mut acc = 0.0f32;
                        for e in s.indptr[i]..s.indptr[i + 1] {
                            acc += s.data[e] * f[s.indices[e] as usize];
                        }
                        let mut v = alpha * acc + oma * y[i];
                        if clamped.is_some_and(|cl| cl[i]) {
                            v = y[i];
                        }
                        res = res.max((v - f[i]).abs());
                        *out = v;
                    }
                }
                2 => {
                    for (t, out) in gc.chunks_exact_mut(2).enumerate() {
                        let i = r0 + t;
                        let (mut a0, mut a1) = (0.0f32, 0.0f32);
                        let (e0, e1) = (s.indptr[i], s.indptr[i + 1]);
                        for (&j, &w) in s.indices[e0..e1].iter().zip(&s.data[e0..e1]) {
                            let j = j as usize;
                            debug_assert!(2 * j + 1 < f.len());
                            // SAFETY: column indices were validated < n (`Csr::validate`), and
                            // `f` has n * 2 entries.
                            let (x0, x1) = unsafe { (*f.get_unchecked(2 * j), *f.get_unchecked(2 * j + 1)) };
                            a0 += w * x0;
                            a1 += w * x1;
                        }
                        let (mut v0, mut v1) = (alpha * a0 + oma * y[2 * i], alpha * a1 + oma * y[2 * i + 1]);
                        if clamped.is_some_and(|cl| cl[i]) {
                            (v0, v1) = (y[2 * i], y[2 * i + 1]);
                        }
                        res = res.max((v0 - f[2 * i]).abs()).max((v1 - f[2 * i + 1]).abs());
                        out[0] = v0;
                        out[1] = v1;
                    }
                }
                _ => {
                    for (t, out) in gc.chunks_exact_mut(c).enumerate() {
                        let i = r0 + t;
                        out.fill(0.0);
                        for e in s.indptr[i]..s.indptr[i + 1] {
                            let j = s.indices[e] as usize;
                            let w = s.data[e];
                            for (o, &x) in out.iter_mut().zip(&f[j * c..(j + 1) * c]) {
                                *o += w * x;
                            }
                        }
                        let cl = clamped.is_some_and(|cl| cl[i]);
                        for q in 0..c {
                            let v = if cl { y[i * c + q] } else { alpha * out[q] + oma * y[i * c + q] };
                            res = res.max((v - f[i * c + q]).abs());
                            out[q] = v;
                        }
                    }
                }
            }
            res
        })
        .reduce(|| 0.0f32, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{knn_to_weights, Metric};

    fn ring(n: usize) -> Csr {
        // ring with chords, random-ish weights
        let k = 3;
        let mut idx = vec![0i64; n * k];
        let mut sc = vec![0f32; n * k];
        for i in 0..n {
            for t in 0..k {
                idx[i * k + t] = ((i + 1 + t * 3) % n) as i64;
                sc[i * k + t] = 0.2 + ((i * 7 + t * 13) % 10) as f32 / 10.0;
            }
        }
        knn_to_weights(&idx, &sc, n, k, Metric::Cosine).unwrap()
    }

    fn labels(n: usize, c: usize) -> Vec<f32> {
        (0..n * c).map(|e| ((e * 37 % 11) as f32 + 1.0) / 12.0).collect()
    }

    fn norm_rows(y: &[f32], c: usize) -> Vec<f32> {
        y.chunks(c).flat_map(|r| { let s: f32 = r.iter().sum(); r.iter().map(move |v| v / s) }).collect()
    }

    fn run(w: &Csr, y: &[f32], c: usize, alpha: f32, tol: f32, max_iter: usize) -> SmoothResult {
        smooth_labels(w, y, c, &SmoothParams { alpha, max_iter, tol }, None, None, &AtomicBool::new(false)).unwrap()
    }

    #[test]
    fn alpha_zero_gives_normalised_labels() {
        let w = ring(20);
        let y = labels(20, 3);
        let r = run(&w, &y, 3, 0.0, 1e-6, 50);
        assert!(r.converged);
        for (a, b) in r.labels.iter().zip(norm_rows(&y, 3)) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn operator_is_symmetric_for_symmetric_w() {
        let w = ring(25);
        let s = normalized_operator(&w);
        let n = w.n;
        let mut m = vec![0.0f32; n * n];
        for i in 0..n {
            for e in s.indptr[i]..s.indptr[i + 1] {
                m[i * n + s.indices[e] as usize] = s.data[e];
            }
        }
        for i in 0..n {
            for j in 0..n {
                assert!((m[i * n + j] - m[j * n + i]).abs() < 1e-7);
            }
        }
    }

    /// (1 - alpha) (I - alpha S)^-1 Y by dense Gauss elimination.
    fn closed_form(w: &Csr, y: &[f32], c: usize, alpha: f64) -> Vec<f64> {
        let n = w.n;
        let s = normalized_operator(w);
        let mut a = vec![0.0f64; n * n];
        for i in 0..n {
            a[i * n + i] = 1.0;
            for e in s.indptr[i]..s.indptr[i + 1] {
                a[i * n + s.indices[e] as usize] -= alpha * s.data[e] as f64;
            }
        }
        let mut b: Vec<f64> = y.iter().map(|&v| (1.0 - alpha) * v as f64).collect();
        for col in 0..n {
            let p = (col..n).max_by(|&x, &z| a[x * n + col].abs().total_cmp(&a[z * n + col].abs())).unwrap();
            for q in 0..n {
                a.swap(col * n + q, p * n + q);
            }
            for q in 0..c {
                b.swap(col * c + q, p * c + q);
            }
            for r in 0..n {
                if r != col {
                    let f = a[r * n + col] / a[col * n + col];
                    for q in 0..n {
                        a[r * n + q] -= f * a[col * n + q];
                    }
                    for q in 0..c {
                        b[r * c + q] -= f * b[col * c + q];
                    }
                }
            }
        }
        (0..n * c).map(|e| b[e] / a[(e / c) * n + e / c]).collect()
    }

    #[test]
    fn matches_closed_form_and_fixed_point() {
        for c in [1usize, 2, 3] {
            let n = 30;
            let w = ring(n);
            let y = labels(n, c);
            let alpha = 0.8;
            let r = run(&w, &y, c, alpha, 1e-6, 10_000);
            assert!(r.converged, "c={c}");
            assert!(r.residual < 1e-6 && r.iterations > 1);
            let f = closed_form(&w, &y, c, alpha as f64);
            let f32v: Vec<f32> = f.iter().map(|&v| v as f32).collect();
            // fixed point: one more step from the closed form moves nothing
            let mut g = vec![0.0f32; n * c];
            let moved = step(&normalized_operator(&w), &f32v, &mut g, &y, c, alpha, 1.0 - alpha, None);
            assert!(moved < 1e-5, "c={c}: {moved}");
            for (a, b) in r.labels.iter().zip(norm_rows(&f32v, c)) {
                assert!((a - b).abs() < 1e-4, "c={c}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn clamped_and_confidence() {
        let n = 12;
        let w = ring(n);
        let y = labels(n, 2);
        let mut cl = vec![false; n];
        cl[3] = true;
        let conf: Vec<f32> = (0..n).map(|i| if i == 5 { 0.0 } else { 1.0 }).collect();
        let p = SmoothParams { alpha: 0.9, max_iter: 200, tol: 1e-6 };
        let r = smooth_labels(&w, &y, 2, &p, Some(&conf), Some(&cl), &AtomicBool::new(false)).unwrap();
        let yn = norm_rows(&y, 2);
        assert!((r.labels[6] - yn[6]).abs() < 1e-6 && (r.labels[7] - yn[7]).abs() < 1e-6);
        assert!(r.labels.chunks(2).all(|row| (row[0] + row[1] - 1.0).abs() < 1e-5));
        // isolated node (no edges) keeps its normalised label row
        let empty = Csr { n: 2, indptr: vec![0, 0, 0], indices: vec![], data: vec![] };
        let r = run(&empty, &[0.2, 0.6, 1.0, 0.0], 2, 0.5, 1e-6, 10);
        assert!((r.labels[0] - 0.25).abs() < 1e-6 && (r.labels[2] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn validation_and_cancel() {
        let w = ring(4);
        let y = labels(4, 2);
        let c = AtomicBool::new(false);
        let p = SmoothParams { alpha: 0.5, max_iter: 10, tol: 1e-6 };
        let call = |y: &[f32], cc: usize, p: &SmoothParams| smooth_labels(&w, y, cc, p, None, None, &c);
        assert_eq!(call(&y, 2, &SmoothParams { alpha: 1.0, ..p.clone() }).unwrap_err(), CoreError::InvalidAlpha(1.0));
        assert!(matches!(call(&y, 3, &p), Err(CoreError::ShapeMismatch(_))));
        assert!(matches!(call(&y, 0, &p), Err(CoreError::ShapeMismatch(_))));
        let mut bad = y.clone();
        bad[5] = 1.5;
        assert_eq!(call(&bad, 2, &p).unwrap_err(), CoreError::LabelOutOfRange { row: 2, value: 1.5 });
        let mut z = y.clone();
        z[2] = 0.0;
        z[3] = 0.0;
        assert_eq!(call(&z, 2, &p).unwrap_err(), CoreError::ZeroLabelRow { row: 1 });
        assert!(matches!(smooth_labels(&w, &y, 2, &p, Some(&[1.0; 3]), None, &c), Err(CoreError::ShapeMismatch(_))));
        assert!(matches!(smooth_labels(&w, &y, 2, &p, Some(&[1.0, -1.0, 1.0, 1.0]), None, &c), Err(CoreError::InvalidParameter(_))));
        assert!(matches!(smooth_labels(&w, &y, 2, &p, None, Some(&[true; 2]), &c), Err(CoreError::ShapeMismatch(_))));
        let mut bw = w.clone();
        bw.indices[0] = 9;
        assert!(matches!(smooth_labels(&bw, &y, 2, &p, None, None, &c), Err(CoreError::InvalidGraph(_))));
        let mut nw = w.clone();
        nw.data[0] = -1.0;
        assert!(matches!(smooth_labels(&nw, &y, 2, &p, None, None, &c), Err(CoreError::InvalidGraph(_))));
        let set = AtomicBool::new(true);
        assert_eq!(smooth_labels(&w, &y, 2, &p, None, None, &set).unwrap_err(), CoreError::Cancelled);
    }
}
