use super::*;
use crate::rng::SplitMix64;
use crate::{CoreError, MatrixView};
use proptest::prelude::*;
use std::sync::atomic::AtomicBool;

mod auto;
mod numerics;

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

/// `knn_graph` with every row sampled for the recall estimate.
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

/// Every metric and method is found by its name; the aliases map to their metric; other
/// names (among them the retired internal "approx_retry") are none.
#[test]
fn names_round_trip() {
    for m in Metric::ALL {
        assert_eq!(Metric::from_name(m.name()), Some(m));
    }
    for m in Method::ALL {
        assert_eq!(Method::from_name(m.name()), Some(m));
    }
    assert_eq!(Metric::from_name("inner_product"), Some(Metric::InnerProduct));
    assert_eq!(Metric::from_name("l2"), Some(Metric::SquaredL2));
    assert_eq!(Metric::from_name("squared_l2"), Some(Metric::SquaredL2));
    for bad in ["", "Cosine", "manhattan", "approx"] {
        assert_eq!(Metric::from_name(bad), None);
    }
    for bad in ["", "Exact", "hnsw", "approx_retry"] {
        assert_eq!(Method::from_name(bad), None);
    }
}
