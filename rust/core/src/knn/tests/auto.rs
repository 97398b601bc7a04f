//! `Auto`: exact for small n, else approximate with its recall floor.

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
        Method::Auto | Method::ApproxRetry => panic!("{:?} reported", r.method_used),
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
