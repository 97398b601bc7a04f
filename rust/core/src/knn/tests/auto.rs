//! `Auto`: exact for small n, else approximate with its recall floor; the fallback to exact
//! search announced before it starts.

use super::*;

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
        Method::Auto => panic!("{:?} reported", r.method_used),
    }
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

/// Data and parameters where `Auto` always falls back: past the exact threshold, with a
/// floor of 1.0 that a sampled recall's lower bound never reaches.
fn falls_back() -> (Vec<f32>, usize, usize, KnnParams) {
    let (n, d) = (AUTO_EXACT_MAX_N + 1, 4);
    let mut p = params(5, Metric::SquaredL2, Method::Auto);
    p.approx.min_recall = 1.0;
    p.approx.recall_sample = 100;
    (data(n, d, 11, false, 0), n, d, p)
}

/// The hook hears of the fallback once, with both passes' recalls, before exact search
/// starts: an error it returns is the call's result; a cancel flag it raises stops the exact
/// search; when it lets the call go on, the result is exact search's, carrying the recalls.
#[test]
fn exact_fallback_is_announced_before_exact_search() {
    let (x, n, d, p) = falls_back();
    let view = MatrixView::new(&x, n, d).unwrap();
    let c = AtomicBool::new(false);
    let heard = std::sync::Mutex::new(Vec::<ExactFallback>::new());
    let hook = |f: &ExactFallback| {
        heard.lock().unwrap().push(f.clone());
        Ok(())
    };
    let r = knn_graph_with_hook(view, &p, &c, &hook).unwrap();
    let notes = heard.lock().unwrap().clone();
    assert_eq!(notes.len(), 1);
    let note = &notes[0];
    assert_eq!((note.n, note.d, note.k, note.min_recall), (n, d, 5, 1.0));
    assert_eq!(note.approx_recalls.len(), 2);
    assert_eq!(r.method_used, Method::Exact);
    assert_eq!(r.approx_recalls, note.approx_recalls);
    assert_eq!(r.indices, knn_graph(view, &params(5, Metric::SquaredL2, Method::Exact), &c).unwrap().indices);
    // the same without a hook
    assert_eq!(knn_graph(view, &p, &c).unwrap().indices, r.indices);

    let refuse = |_: &ExactFallback| Err(CoreError::InvalidParameter("refused".into()));
    assert_eq!(knn_graph_with_hook(view, &p, &c, &refuse).unwrap_err(), CoreError::InvalidParameter("refused".into()));

    let stop = AtomicBool::new(false);
    let raise = |_: &ExactFallback| {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    };
    assert_eq!(knn_graph_with_hook(view, &p, &stop, &raise).unwrap_err(), CoreError::Cancelled);
}

/// Other methods, and `Auto` when it does not fall back, never call the hook.
#[test]
fn no_announcement_without_a_fallback() {
    let (x, n, d, mut p) = falls_back();
    let view = MatrixView::new(&x, n, d).unwrap();
    let c = AtomicBool::new(false);
    let never = |_: &ExactFallback| -> crate::Result<()> { panic!("hook called") };
    for method in [Method::Exact, Method::Approx] {
        p.method = method;
        knn_graph_with_hook(view, &p, &c, &never).unwrap();
    }
    p.method = Method::Auto;
    p.approx.min_recall = 0.0;
    assert_eq!(knn_graph_with_hook(view, &p, &c, &never).unwrap().method_used, Method::Approx);
}

/// The announcement reads as the Python package's warning did (expected strings written by
/// its former f-string).
#[test]
fn exact_fallback_message() {
    let f = ExactFallback { n: 21_000, d: 128, k: 10, approx_recalls: vec![0.951_234_5, 0.96], min_recall: 1.0 };
    assert_eq!(
        f.to_string(),
        "knn_graph(method='auto'): approximate graphs reached estimated recall@10 0.9512 then 0.9600 (first pass, \
         then a stronger one), below min_recall=1.0; falling back to exact search of 21,000 x 128 rows now (about 1 \
         core-seconds at 100 GFLOP/s); pass method='approx' or a lower min_recall to accept the approximate graph"
    );
    let big = ExactFallback { n: 10_000_000, d: 1024, k: 15, approx_recalls: vec![0.03125, 0.96875], min_recall: 0.99 };
    assert_eq!(big.cost_seconds(), 2048000.0);
    let s = big.to_string();
    assert!(s.contains("recall@15 0.0312 then 0.9688 (first"), "{s}");
    assert!(s.contains("below min_recall=0.99;") && s.contains("of 10,000,000 x 1024 rows"), "{s}");
    assert!(s.contains("(about 34,133 core-minutes at 100 GFLOP/s)"), "{s}");
    for (n, d, cost) in [(77_459, 1000, "about 120 core-seconds"), (77_460, 1000, "about 2 core-minutes"), (3, 1, "about 0 core-seconds")] {
        let s = ExactFallback { n, d, k: 1, approx_recalls: vec![0.5, 0.5], min_recall: 1e-5 }.to_string();
        assert!(s.contains(&format!("({cost} at 100 GFLOP/s)")), "{s}");
        assert!(s.contains("min_recall=1e-05;"), "{s}");
    }
}

