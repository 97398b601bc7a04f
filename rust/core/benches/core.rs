//! `cargo bench -p sw2s-core`. Sizes: SW2S_BENCH_N (kNN points, default 20,000; d = 384, k = 10)
//! and SW2S_BENCH_SMOOTH_N (smoothing nodes, default 1,000,000; k = 10, c = 2).
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use sw2s_core::*;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f32 {
        let (a, b) = (self.next().max(1e-300), self.next());
        ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32
    }
}

/// Gaussian mixture with 100 centres and noise 0.5: clustered data, as embeddings of a few
/// topics look.
fn clustered(n: usize, d: usize) -> Vec<f32> {
    let mut r = Rng(1);
    let c: Vec<f32> = (0..100 * d).map(|_| r.gauss()).collect();
    (0..n * d).map(|e| c[((e / d) % 100) * d + e % d] + 0.5 * r.gauss()).collect()
}

fn bench_knn(cr: &mut Criterion) {
    let (n, d) = (env("SW2S_BENCH_N", 20_000), 384);
    let x = clustered(n, d);
    let cancel = AtomicBool::new(false);
    let mut g = cr.benchmark_group("knn");
    g.sample_size(10).measurement_time(Duration::from_secs(10)).warm_up_time(Duration::from_secs(1));
    for (name, method) in [("exact", Method::Exact), ("approx", Method::Approx)] {
        let p = KnnParams { k: 10, metric: Metric::Cosine, method, seed: 0, approx: ApproxParams::default() };
        g.bench_function(format!("{name}_n{n}_d{d}_k10"), |b| {
            b.iter(|| knn_graph(black_box(MatrixView::new(&x, n, d).unwrap()), &p, &cancel).unwrap())
        });
    }
    g.finish();
}

fn bench_smooth(cr: &mut Criterion) {
    let (n, k, c) = (env("SW2S_BENCH_SMOOTH_N", 1_000_000), 10, 2);
    let mut r = Rng(2);
    let idx: Vec<i64> = (0..n * k).map(|e| ((e / k + 1 + (r.next() * 300.0) as usize) % n) as i64).collect();
    let sc: Vec<f32> = (0..n * k).map(|_| 0.3 + 0.7 * r.next() as f32).collect();
    let w = knn_to_weights(&idx, &sc, n, k, Metric::Cosine).unwrap();
    let labels: Vec<f32> = (0..n).flat_map(|i| { let a = (i % 9) as f32 / 9.0; [0.05 + 0.9 * a, 0.95 - 0.9 * a] }).collect();
    let cancel = AtomicBool::new(false);
    let mut g = cr.benchmark_group("smooth");
    g.sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    // Setup (validation, S) plus 1 and plus 11 iterations: the difference / 10 is the cost of one.
    for iters in [1usize, 11] {
        let p = SmoothParams { alpha: 0.9, max_iter: iters, tol: 0.0 };
        g.bench_function(format!("n{n}_k{k}_c{c}_iters{iters}"), |b| {
            b.iter(|| smooth_labels(black_box(&w), &labels, c, &p, None, None, &cancel).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench_knn, bench_smooth);
criterion_main!(benches);
