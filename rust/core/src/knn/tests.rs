use super::*;
use crate::rng::SplitMix64;
use crate::{CoreError, MatrixView};
use proptest::prelude::*;
use std::sync::atomic::AtomicBool;

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
        Method::Auto | Method::ApproxRetry => panic!("{:?} reported", r.method_used),
    }
}

// ---- numerics of the prepared input: denormal norms, offsets, scales, ties ----

fn run(x: &[f32], n: usize, d: usize, k: usize, metric: Metric, method: Method) -> crate::Result<KnnResult> {
    let mut p = params(k, metric, method);
    p.approx.recall_sample = n;
    knn_graph(MatrixView::new(x, n, d).unwrap(), &p, &AtomicBool::new(false))
}

/// Every row of `r` lies within `tol` (in key units) of the f64 brute force's k-th key.
fn assert_up_to_ties(x: &[f32], n: usize, d: usize, k: usize, metric: Metric, r: &KnnResult, tol: f64) {
    let row = |i: usize| &x[i * d..(i + 1) * d];
    let key = |i: usize, j: usize| -> f64 {
        let ip: f64 = row(i).iter().zip(row(j)).map(|(&a, &b)| a as f64 * b as f64).sum();
        let nn = |i: usize| row(i).iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
        match metric {
            Metric::InnerProduct => ip,
            Metric::Cosine => ip / (nn(i) * nn(j)),
            Metric::SquaredL2 => -row(i).iter().zip(row(j)).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum::<f64>(),
        }
    };
    let (_, nv) = naive(x, n, d, k, metric);
    for i in 0..n {
        let kth = nv[i * k + k - 1];
        for t in 0..k {
            let j = r.indices[i * k + t] as usize;
            assert!(j < n && j != i, "row {i}: neighbour {j}");
            assert!(key(i, j) >= kth - tol, "row {i} rank {t}: {} < k-th {kth}", key(i, j));
        }
    }
}

#[test]
fn denormal_norm_row_under_cosine() {
    let (n, d, k) = (500, 16, 8);
    let mut x = clustered(n, d, 10, 0.5, 7);
    x[42 * d..43 * d].fill(1e-40);
    x[43 * d..44 * d].iter_mut().enumerate().for_each(|(p, v)| *v = if p % 2 == 0 { 3e-41 } else { -1e-45 });
    for method in [Method::Exact, Method::Approx] {
        let r = run(&x, n, d, k, Metric::Cosine, method).unwrap();
        assert!(r.indices.iter().all(|&j| (j as usize) < n), "{method:?}: sentinel index");
        assert!(r.scores.iter().all(|v| v.is_finite()), "{method:?}: non-finite score");
        if method == Method::Exact {
            assert_up_to_ties(&x, n, d, k, Metric::Cosine, &r, 1e-5);
        }
    }
}

#[test]
fn offsets_do_not_lose_precision() {
    let (n, d, k) = (400, 16, 8);
    let base = clustered(n, d, 8, 0.5, 5);
    for off in [1e3f32, 1e4, -3e4] {
        let x: Vec<f32> = base.iter().map(|&v| v + off).collect();
        let r = run(&x, n, d, k, Metric::SquaredL2, Method::Exact).unwrap();
        assert_up_to_ties(&x, n, d, k, Metric::SquaredL2, &r, 1e-3);
        let a = run(&x, n, d, k, Metric::SquaredL2, Method::Approx).unwrap();
        assert!(a.estimated_recall.unwrap() >= 0.9, "offset {off}: recall {:?}", a.estimated_recall);
    }
}

#[test]
fn scales_give_the_same_graph_or_an_error() {
    let (n, d, k) = (300, 12, 6);
    let base = clustered(n, d, 6, 0.5, 9);
    let reference = run(&base, n, d, k, Metric::SquaredL2, Method::Exact).unwrap();
    for metric in [Metric::SquaredL2, Metric::InnerProduct] {
        let small: Vec<f32> = base.iter().map(|&v| v * 1e-30).collect();
        let r = run(&small, n, d, k, metric, Method::Exact).unwrap();
        let rb = run(&base, n, d, k, metric, Method::Exact).unwrap();
        assert_up_to_ties(&small, n, d, k, metric, &r, if metric == Metric::SquaredL2 { 1e-64 } else { 1e-63 });
        let same = r.indices.iter().zip(&rb.indices).filter(|(a, b)| a == b).count();
        assert!(same * 100 >= 99 * r.indices.len(), "{metric:?}: 1e-30 graph differs from the unscaled one");
        // the scores (about 1e-60) are below the f32 range: their f32 rounding is 0
        assert!(r.scores.iter().all(|v| v.is_finite() && v.abs() < 1e-40), "{metric:?}: scores at 1e-30");
        let big: Vec<f32> = base.iter().map(|&v| v * 1e30).collect();
        for method in [Method::Exact, Method::Approx] {
            assert!(matches!(run(&big, n, d, k, metric, method), Err(CoreError::ScoreOverflow(_))), "{metric:?} {method:?} at 1e30");
        }
        let mid: Vec<f32> = base.iter().map(|&v| v * 1e15).collect();
        let r = run(&mid, n, d, k, metric, Method::Exact).unwrap();
        assert_up_to_ties(&mid, n, d, k, metric, &r, 1e28);
    }
    assert_eq!(reference.indices, run(&base, n, d, k, Metric::SquaredL2, Method::Exact).unwrap().indices);
}

#[test]
fn approx_is_deterministic_on_ties() {
    let (n, d, k) = (2000, 8, 10);
    let row: Vec<f32> = (0..d).map(|p| p as f32 * 0.37 - 1.0).collect();
    let x: Vec<f32> = (0..n).flat_map(|_| row.clone()).collect();
    let mut y = clustered(n, d, 3, 0.01, 2);
    y.iter_mut().step_by(3).for_each(|v| *v = (*v * 8.0).round() / 8.0);
    for data in [&x, &y] {
        for metric in [Metric::Cosine, Metric::SquaredL2, Metric::InnerProduct] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
            let first = pool.install(|| run(data, n, d, k, metric, Method::Approx).unwrap());
            for _ in 0..4 {
                let again = pool.install(|| run(data, n, d, k, metric, Method::Approx).unwrap());
                assert_eq!(first.indices, again.indices, "{metric:?}");
                assert_eq!(first.estimated_recall, again.estimated_recall, "{metric:?}");
            }
            let other = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
            let third = other.install(|| run(data, n, d, k, metric, Method::Approx).unwrap());
            assert_eq!(first.indices, third.indices, "{metric:?}: thread count");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// Exact search on shifted and scaled data equals the f64 brute force up to ties
    /// (sqeuclidean, ip), or reports an overflow; tiny-norm rows under cosine get proper
    /// unit vectors.
    #[test]
    fn prepared_numerics_prop(n in 3usize..120, d in 1usize..20, seed in 0u64..1000, e_scale in -35i32..36, e_off in 0i32..6, m in 0usize..3, tiny in 0usize..3) {
        let metric = [Metric::Cosine, Metric::InnerProduct, Metric::SquaredL2][m];
        let k = 1 + (seed as usize % (n - 1)).min(6);
        let scale = 10f64.powi(e_scale);
        let off = if metric == Metric::Cosine { 0.0 } else { 10f64.powi(e_off) - 1.0 };
        let mut x: Vec<f32> = data(n, d, seed, seed % 3 == 0, 4).iter().map(|&v| ((v as f64 + off) * scale) as f32).collect();
        for t in 0..tiny {
            x[t * d..(t + 1) * d].iter_mut().enumerate().for_each(|(p, v)| *v = if p % 2 == 0 { 1e-41 } else { -2e-45 });
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Ok(());
        }
        match run(&x, n, d, k, metric, Method::Exact) {
            Ok(r) => {
                prop_assert!(r.scores.iter().all(|v| v.is_finite()));
                // tolerance: f32 rounding relative to the magnitudes involved
                // (sqeuclidean: f32 cancellation is bounded by the squared distance from the
                // mean, which outliers such as the tiny rows under an offset make large)
                let mx = x.iter().fold(0.0f64, |a, &v| a.max((v as f64).abs()));
                let mean: Vec<f64> = (0..d).map(|p| (0..n).map(|i| x[i * d + p] as f64).sum::<f64>() / n as f64).collect();
                let cn = (0..n).map(|i| (0..d).map(|p| (x[i * d + p] as f64 - mean[p]).powi(2)).sum::<f64>()).fold(0.0, f64::max);
                let tol = match metric {
                    Metric::Cosine => 1e-5,
                    Metric::SquaredL2 => 1e-5 * cn,
                    Metric::InnerProduct => 1e-4 * (d as f64) * mx * mx,
                };
                assert_up_to_ties(&x, n, d, k, metric, &r, tol);
            }
            Err(CoreError::ScoreOverflow(_)) => {
                // only when some true score is beyond the f32 range
                let mx = x.iter().fold(0.0f64, |a, &v| a.max((v as f64).abs()));
                prop_assert!(metric != Metric::Cosine && 4.0 * mx * mx * d as f64 > f32::MAX as f64);
            }
            Err(CoreError::ZeroNorm { .. }) => prop_assert!(metric == Metric::Cosine),
            Err(e) => prop_assert!(false, "{e:?}"),
        }
        if let Ok(r) = run(&x, n, d, k, metric, Method::Approx) {
            prop_assert!(r.indices.iter().all(|&j| (j as usize) < n));
        }
    }
}

/// The bf16 first pass with its fp32 re-rank returns exactly the fp32 path's lists (indices
/// and keys, ties by smaller index): random rows, clustered rows, integer rows (many exact
/// ties) with duplicated rows, and d odd. Skipped where the CPU lacks AVX512_BF16.
#[test]
fn bf16_exact_equals_fp32_exact() {
    if !bf16::cpu_has_bf16() {
        eprintln!("no AVX512_BF16: bf16 path not testable here");
        return;
    }
    let cases: Vec<(Vec<f32>, usize, usize, usize)> = vec![
        (data(700, 33, 1, false, 0), 700, 33, 10),
        (clustered(900, 64, 5, 0.2, 2), 900, 64, 15),
        (data(600, 16, 3, true, 5), 600, 16, 7),
        (data(300, 7, 4, true, 3), 300, 7, 20),
    ];
    let cancel = AtomicBool::new(false);
    for (x, n, d, k) in cases {
        let p = params(k, Metric::Cosine, Method::Exact);
        let prep = prepared::Prepared::validate(MatrixView::new(&x, n, d).unwrap(), &p).unwrap();
        let (i32_, v32) = exact::exact_all(&prep, k, &cancel).unwrap();
        let (i16_, v16) = bf16::exact_all_bf16(&prep, k, &cancel).unwrap();
        assert_eq!(i16_, i32_, "n={n} d={d} k={k}: indices differ");
        assert_eq!(v16.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), v32.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "n={n} d={d}: keys differ");
    }
}

/// The bound covers the measured gap between bf16 and fp32 dot products of unit rows.
#[test]
fn bf16_error_bound_holds() {
    let (n, d) = (200, 384);
    let mut x = data(n, d, 9, false, 0);
    for r in x.chunks_mut(d) {
        let s = r.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt() as f32;
        r.iter_mut().for_each(|v| *v /= s);
    }
    let e = bf16::error_bound(d, 1.0 + 1e-6) as f64;
    let bf = |v: f32| f32::from_bits(v.to_bits().wrapping_add(0x7fff + ((v.to_bits() >> 16) & 1)) & 0xffff_0000) as f64;
    for i in 0..n {
        for j in 0..n {
            let (a, b) = (&x[i * d..(i + 1) * d], &x[j * d..(j + 1) * d]);
            let exact: f64 = a.iter().zip(b).map(|(&p, &q)| p as f64 * q as f64).sum();
            let low: f64 = a.iter().zip(b).map(|(&p, &q)| bf(p) * bf(q)).sum();
            assert!((exact - low).abs() <= e, "pair ({i}, {j}): {} > {e}", (exact - low).abs());
        }
    }
}

/// A flag raised while approximate search runs (large k: long join blocks) stops it with
/// `Cancelled`, not a finished graph.
#[test]
fn cancel_during_approx() {
    let (n, d, k) = (6000, 16, 300);
    let x = clustered(n, d, 20, 0.3, 5);
    let c = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(30));
            c.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let r = knn_graph(MatrixView::new(&x, n, d).unwrap(), &params(k, Metric::Cosine, Method::Approx), &c);
        assert_eq!(r.unwrap_err(), CoreError::Cancelled);
    });
}

/// The Wilson lower bound is below the estimate, tightens with the sample, and is the
/// estimate itself when every row was checked.
#[test]
fn recall_lower_bound_properties() {
    for &r in &[0.0, 0.5, 0.9, 0.949, 0.95, 0.99, 1.0] {
        let small = recall::recall_lower_bound(r, 100, 100_000, 10);
        let large = recall::recall_lower_bound(r, 10_000, 100_000, 10);
        assert!((0.0..=r).contains(&small) && small <= large && large <= r, "r={r}: {small} {large}");
        assert_eq!(recall::recall_lower_bound(r, 5000, 5000, 10), r);
    }
    // an estimate just above the floor on 1000 x 10 checks is not evidence of the floor
    assert!(recall::recall_lower_bound(0.952, 1000, 400_000, 10) < 0.95);
    assert!(recall::recall_lower_bound(0.96, 1000, 400_000, 10) >= 0.95);
}
