//! Numerics of the prepared input (denormal norms, offsets, scales), and the bf16 exact
//! path against the fp32 one.

use super::*;

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
