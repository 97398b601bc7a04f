//! Regression tool: fingerprints of the core's outputs on fixed, seeded inputs, for checking
//! that a refactoring changes nothing bit for bit.
//!
//! `cargo run --release -p sw2s-core --example hash_outputs [-- quick]`
//!
//! Prints one line per call and thread count: a 64-bit FNV-1a hash of the output bits
//! (indices, scores, CSR arrays, smoothed labels, iteration counts). Run it before and after
//! a change and diff the two outputs; lines for 1 and 2 threads must agree with each other
//! wherever the result is documented as independent of the thread count.
use std::sync::atomic::AtomicBool;
use sw2s_core::*;

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn u32(&mut self, v: u32) {
        for b in v.to_le_bytes() {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn u64(&mut self, v: u64) {
        self.u32(v as u32);
        self.u32((v >> 32) as u32);
    }
    fn f32s(&mut self, v: &[f32]) {
        self.u64(v.len() as u64);
        v.iter().for_each(|x| self.u32(x.to_bits()));
    }
    fn u32s(&mut self, v: &[u32]) {
        self.u64(v.len() as u64);
        v.iter().for_each(|&x| self.u32(x));
    }
}

fn uniform(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

fn gauss(state: &mut u64) -> f32 {
    let (a, b) = (uniform(state).max(1e-300), uniform(state));
    ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32
}

/// As `benches/bench_graph.py`'s `clustered` (Gaussian mixture, noise 0.35 x centre scale),
/// rows left unnormalised so that the three metrics differ.
fn clustered(n: usize, d: usize, centres: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let c: Vec<f32> = (0..centres * d).map(|_| gauss(&mut s)).collect();
    let mut x = vec![0.0; n * d];
    for i in 0..n {
        let ci = (uniform(&mut s) * centres as f64) as usize % centres;
        for p in 0..d {
            x[i * d + p] = c[ci * d + p] + 0.35 * gauss(&mut s);
        }
    }
    x
}

fn hash_knn(r: &KnnResult) -> String {
    let mut h = Fnv::new();
    h.u32s(&r.indices);
    h.f32s(&r.scores);
    format!("{:016x} used={:?} recall={:?}", h.0, r.method_used, r.estimated_recall.map(f64::to_bits))
}

fn hash_csr(w: &Csr) -> String {
    let mut h = Fnv::new();
    w.indptr.iter().for_each(|&v| h.u64(v));
    h.u32s(&w.indices);
    h.f32s(&w.data);
    format!("{:016x} nnz={}", h.0, w.indices.len())
}

fn hash_smooth(r: &SmoothResult) -> String {
    let mut h = Fnv::new();
    h.f32s(&r.labels);
    format!("{:016x} iters={} residual={:08x} converged={}", h.0, r.iterations, r.residual.to_bits(), r.converged)
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
}

fn knn_cases(quick: bool) {
    let cancel = AtomicBool::new(false);
    let d = 384;
    let sizes: &[usize] = if quick { &[3000] } else { &[3000, 25_000] };
    for &n in sizes {
        let x = clustered(n, d, 100, 1 + n as u64);
        let view = MatrixView::new(&x, n, d).unwrap();
        for metric in [Metric::Cosine, Metric::InnerProduct, Metric::SquaredL2] {
            for method in [Method::Exact, Method::Approx, Method::Auto] {
                let p = KnnParams { k: 10, metric, method, seed: 3, approx: ApproxParams::default() };
                for threads in [1, 2] {
                    let r = pool(threads).install(|| knn_graph(view, &p, &cancel).unwrap());
                    println!("knn n={n} {metric:?} {method:?} t={threads}: {}", hash_knn(&r));
                }
            }
        }
    }
    // An odd dimension (tails of every kernel) and a small build_k / tree count.
    let (n, d) = (2000, 37);
    let x = clustered(n, d, 20, 9);
    let view = MatrixView::new(&x, n, d).unwrap();
    for metric in [Metric::Cosine, Metric::SquaredL2] {
        for method in [Method::Exact, Method::Approx] {
            let approx = ApproxParams { build_k: 12, n_trees: 2, max_iters: 3, ..ApproxParams::default() };
            let p = KnnParams { k: 7, metric, method, seed: 11, approx };
            for threads in [1, 2] {
                let r = pool(threads).install(|| knn_graph(view, &p, &cancel).unwrap());
                println!("knn n={n} d={d} {metric:?} {method:?} t={threads}: {}", hash_knn(&r));
            }
        }
    }
}

fn smooth_cases(quick: bool) {
    let cancel = AtomicBool::new(false);
    let (n, k) = (if quick { 20_000 } else { 200_000 }, 10);
    let mut s = 2u64;
    let idx: Vec<i64> = (0..n * k).map(|e| ((e / k + 1 + (uniform(&mut s) * 300.0) as usize) % n) as i64).collect();
    let sc: Vec<f32> = (0..n * k).map(|_| 0.3 + 0.7 * uniform(&mut s) as f32).collect();
    for metric in [Metric::Cosine, Metric::SquaredL2] {
        for threads in [1, 2] {
            let w = pool(threads).install(|| knn_to_weights(&idx, &sc, n, k, metric).unwrap());
            println!("weights n={n} {metric:?} t={threads}: {}", hash_csr(&w));
        }
    }
    let w = knn_to_weights(&idx, &sc, n, k, Metric::Cosine).unwrap();
    // An asymmetric W with duplicates and self-loops (the non-symmetric operator path).
    let mut asym = w.clone();
    for e in (0..asym.data.len()).step_by(7) {
        asym.data[e] *= 1.5;
    }
    for e in (0..asym.indices.len()).step_by(101) {
        let row = asym.indptr.partition_point(|&p| p as usize <= e) - 1;
        asym.indices[e] = row as u32;
    }
    for threads in [1, 2] {
        let sym = pool(threads).install(|| symmetrize_max(&asym));
        println!("symmetrize n={n} t={threads}: {}", hash_csr(&sym));
    }
    let conf: Vec<f32> = (0..n).map(|i| ((i * 37) % 11) as f32 / 10.0).collect();
    let clamped: Vec<bool> = (0..n).map(|i| i % 13 == 0).collect();
    for c in [1usize, 2, 5, 10] {
        let labels: Vec<f32> = (0..n * c).map(|e| (((e * 7919) % 97) as f32 + 1.0) / 98.0).collect();
        for (wname, wm) in [("sym", &w), ("asym", &asym)] {
            for (opts, cf, cl) in [("plain", None, None), ("conf+clamp", Some(&conf[..]), Some(&clamped[..]))] {
                let p = SmoothParams { alpha: 0.9, max_iter: 40, tol: 1e-5 };
                for threads in [1, 2] {
                    let r = pool(threads).install(|| smooth_labels(wm, &labels, c, &p, cf, cl, &cancel).unwrap());
                    println!("smooth n={n} c={c} {wname} {opts} t={threads}: {}", hash_smooth(&r));
                }
            }
        }
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    knn_cases(quick);
    smooth_cases(quick);
}
