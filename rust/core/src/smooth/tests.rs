use super::iterate::Rhs;
use super::operator::{inv_sqrt_degrees, s_value, SpreadOp};
use super::*;
use crate::{knn_to_weights, CoreError, Metric};

/// The plain operator `S` (original order, all entries) as f32 CSR: the reference for tests.
struct NormOp<'a> {
    indptr: Vec<usize>,
    indices: &'a [u32],
    data: Vec<f32>,
}

fn normalized_operator(w: &Csr) -> NormOp<'_> {
    let dinv = inv_sqrt_degrees(w);
    let indptr: Vec<usize> = w.indptr.iter().map(|&p| p as usize).collect();
    let mut data = vec![0.0f32; w.data.len()];
    for i in 0..w.n {
        for e in indptr[i]..indptr[i + 1] {
            data[e] = s_value(w.data[e], dinv[i], dinv[w.indices[e] as usize]);
        }
    }
    NormOp { indptr, indices: &w.indices, data }
}

/// One production iteration in the original node order.
#[allow(clippy::too_many_arguments)]
fn step(w: &Csr, f: &[f32], g: &mut [f32], y: &[f32], c: usize, alpha: f32, oma: f32, clamped: Option<&[bool]>) -> f32 {
    let op = SpreadOp::new(w);
    let mut ws = op.workspace(c);
    let (fp, yp) = (op.permute_rows(f, c), op.permute_rows(y, c));
    let clp: Option<Vec<bool>> = clamped.map(|cl| op.order.iter().map(|&o| cl[o as usize]).collect());
    let mut gp = vec![0.0f32; f.len()];
    let rhs = Rhs { y: &yp, c, alpha, oma, clamped: clp.as_deref() };
    let res = op.step(&mut ws, &fp, &mut gp, &rhs);
    g.copy_from_slice(&op.unpermute_rows(&gp, c));
    res
}

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
        let moved = step(&w, &f32v, &mut g, &y, c, alpha, 1.0 - alpha, None);
        assert!(moved < 1e-5, "c={c}: {moved}");
        for (a, b) in r.labels.iter().zip(norm_rows(&f32v, c)) {
            assert!((a - b).abs() < 1e-4, "c={c}: {a} vs {b}");
        }
    }
}

/// One production step equals the plain CSR product, for symmetric and asymmetric W (with
/// duplicates and self-loops) and label widths taking every kernel path.
#[test]
fn step_matches_plain_operator() {
    let sym = ring(40);
    let mut asym = sym.clone();
    asym.data[3] *= 2.0; // W no longer symmetric
    let dup = Csr { n: 4, indptr: vec![0, 3, 5, 6, 8], indices: vec![1, 1, 0, 2, 0, 3, 1, 2], data: vec![0.5, 0.25, 2.0, 1.0, 0.5, 1.0, 0.75, 0.3] };
    for w in [&sym, &asym, &dup] {
        for c in [1usize, 2, 3, 10] {
            let n = w.n;
            let y = labels(n, c);
            let f: Vec<f32> = (0..n * c).map(|e| ((e * 13 % 7) as f32 + 0.5) / 8.0).collect();
            let mut cl = vec![false; n];
            cl[1] = true;
            let mut g = vec![0.0f32; n * c];
            let res = step(w, &f, &mut g, &y, c, 0.7, 0.3, Some(&cl));
            let s = normalized_operator(w);
            let mut want = vec![0.0f32; n * c];
            let mut wres = 0.0f32;
            for i in 0..n {
                for q in 0..c {
                    let sf: f32 = (s.indptr[i]..s.indptr[i + 1]).map(|e| s.data[e] * f[s.indices[e] as usize * c + q]).sum();
                    want[i * c + q] = if cl[i] { y[i * c + q] } else { 0.7 * sf + 0.3 * y[i * c + q] };
                    wres = wres.max((want[i * c + q] - f[i * c + q]).abs());
                }
            }
            for (a, b) in g.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "n={n} c={c}: {a} vs {b}");
            }
            assert!((res - wres).abs() < 1e-5);
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

/// A `W` shaped like a kNN graph's (`k` out-edges near in index, `far` of them to hash-chosen
/// nodes), symmetrised by `knn_to_weights`.
fn knn_like(n: usize, k: usize, far: usize) -> Csr {
    let mut idx = vec![0i64; n * k];
    let mut sc = vec![0f32; n * k];
    for i in 0..n {
        for t in 0..k {
            let h = crate::rng::hash3(7, i as u64, t as u64);
            let j = if t < far { (h % n as u64) as usize } else { (i + 1 + (h % 60) as usize) % n };
            idx[i * k + t] = if j == i { ((i + 1) % n) as i64 } else { j as i64 };
            sc[i * k + t] = 0.1 + (h >> 40) as f32 / (1u64 << 24) as f32;
        }
    }
    knn_to_weights(&idx, &sc, n, k, Metric::Cosine).unwrap()
}

/// Larger such `W`, with and without long edges, so that the operator is cut into several
/// tasks whose rows reach beyond their range (spill, prefetch) and the node order matters:
/// one step equals the plain CSR product in the original order. The order only changes the
/// summation order of a row's at most ~2k terms, each `|S_ij F_j| <= |S_ij|` (F in [0, 1]), so
/// the difference is bounded by a few units of f32 rounding of the row's absolute sum:
/// 1e-5 * (1 + sum |S_ij|) leaves a wide margin.
#[test]
fn step_matches_plain_operator_on_knn_like_graphs() {
    for (n, far) in [(5000usize, 0usize), (5000, 2), (3001, 10)] {
        let w = knn_like(n, 10, far);
        let c = 2;
        let y = labels(n, c);
        let f: Vec<f32> = (0..n * c).map(|e| ((e * 13 % 7) as f32 + 0.5) / 8.0).collect();
        let mut g = vec![0.0f32; n * c];
        step(&w, &f, &mut g, &y, c, 0.7, 0.3, None);
        let s = normalized_operator(&w);
        for i in 0..n {
            let abs: f32 = (s.indptr[i]..s.indptr[i + 1]).map(|e| s.data[e].abs()).sum();
            for q in 0..c {
                let sf: f32 = (s.indptr[i]..s.indptr[i + 1]).map(|e| s.data[e] * f[s.indices[e] as usize * c + q]).sum();
                let want = 0.7 * sf + 0.3 * y[i * c + q];
                let got = g[i * c + q];
                assert!((got - want).abs() <= 1e-5 * (1.0 + abs), "n={n} far={far} row {i}: {got} vs {want}");
            }
        }
    }
}

/// The node order is a permutation, also with isolated nodes and several components.
#[test]
fn node_order_is_a_permutation() {
    let w = Csr { n: 7, indptr: vec![0, 1, 2, 2, 4, 5, 6, 6], indices: vec![1, 0, 4, 5, 3, 3], data: vec![1.0; 6] };
    let op = SpreadOp::new(&w);
    let mut seen = op.order.clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..7).collect::<Vec<u32>>());
    let w = knn_like(2000, 6, 2);
    let op = SpreadOp::new(&w);
    let mut seen = op.order.clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..2000).collect::<Vec<u32>>());
}

/// `check_alpha` takes [0, 1) as given and as `f32`; its error names the value as given,
/// written as Python writes it.
#[test]
fn alpha_checked_as_given() {
    assert_eq!(check_alpha(0.0), Ok(0.0));
    assert_eq!(check_alpha(0.3), Ok(0.3f32));
    for bad in [1.0, -0.5, 2.0, f64::NAN, f64::INFINITY, 1.0 - 1e-12] {
        assert!(matches!(check_alpha(bad), Err(CoreError::InvalidAlpha(v)) if v.to_bits() == bad.to_bits()), "{bad}");
    }
    assert_eq!(CoreError::InvalidAlpha(1.0).to_string(), "alpha=1.0 must be in [0, 1)");
    assert_eq!(CoreError::InvalidAlpha(-0.5).to_string(), "alpha=-0.5 must be in [0, 1)");
    assert_eq!(CoreError::InvalidAlpha(1e20).to_string(), "alpha=1e+20 must be in [0, 1)");
}
