//! Quick timings: `cargo run --release -p sw2s-core --example timing -- exact|approx|smooth N`
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use sw2s_core::*;

fn gauss(state: &mut u64) -> f32 {
    let mut u = || {
        *state = state.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let (a, b) = (u().max(1e-300), u());
    ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32
}

/// Gaussian mixture: `centres` unit-ish centres, per-point noise `sigma`.
pub fn clustered(n: usize, d: usize, centres: usize, sigma: f32, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let c: Vec<f32> = (0..centres * d).map(|_| gauss(&mut s) / (d as f32).sqrt()).collect();
    let mut x = vec![0.0; n * d];
    for i in 0..n {
        let ci = (i * 7919) % centres;
        for p in 0..d {
            x[i * d + p] = c[ci * d + p] + sigma * gauss(&mut s) / (d as f32).sqrt();
        }
    }
    x
}

/// user+sys CPU seconds of this process (Linux /proc; 0 elsewhere).
fn cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("exact");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20000);
    let d = 384;
    let cancel = AtomicBool::new(false);
    match what {
        "exact" | "approx" | "auto" => {
            let method = match what { "exact" => Method::Exact, "approx" => Method::Approx, _ => Method::Auto };
            let ev = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(0usize);
            let mut approx = ApproxParams { build_k: ev("BK"), n_trees: ev("NT"), max_iters: ev("IT"), ..ApproxParams::default() };
            if ev("RS") > 0 {
                approx.recall_sample = ev("RS");
            }
            // 0.35: benches/bench_graph.py's clustered() (noise 0.35 x centre scale)
            let sigma: f32 = std::env::var("SIGMA").ok().and_then(|v| v.parse().ok()).unwrap_or(0.35);
            let centres = match ev("CENTRES") { 0 => 100, c => c };
            let x = clustered(n, d, centres, sigma, 1);
            let p = KnnParams { k: 10, metric: Metric::Cosine, method, seed: 0, approx };
            let (t, c0) = (Instant::now(), cpu_s());
            let r = knn_graph(MatrixView::new(&x, n, d).unwrap(), &p, &cancel).unwrap();
            println!(
                "{what} n={n} d={d} k=10 sigma={sigma}: {:.3} s wall, {:.2} s cpu (incl. recall check), method {:?}, recall {:?}",
                t.elapsed().as_secs_f64(),
                cpu_s() - c0,
                r.method_used,
                r.estimated_recall
            );
        }
        "smooth" => {
            let k = 10;
            let mut s = 5u64;
            let mut idx = vec![0i64; n * k];
            let mut sc = vec![0f32; n * k];
            for i in 0..n {
                for t in 0..k {
                    let off = (gauss(&mut s).abs() * 200.0) as usize + 1;
                    // FAR=p: a share p (percent) of the edges go to random nodes
                    let far = std::env::var("FAR").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                    idx[i * k + t] = if far > 0 && (t as u64) * 100 >= (100 - far) * k as u64 {
                        (gauss(&mut s).to_bits() as u64 * 2654435761 % n as u64) as i64
                    } else {
                        ((i + off) % n) as i64
                    };
                    sc[i * k + t] = 0.5 + 0.1 * t as f32;
                }
            }
            let t0 = Instant::now();
            let w = knn_to_weights(&idx, &sc, n, k, Metric::Cosine).unwrap();
            println!("knn_to_weights n={n}: {:.3} s, nnz {}", t0.elapsed().as_secs_f64(), w.indices.len());
            let labels: Vec<f32> = (0..n).flat_map(|i| { let a = (i % 7) as f32 / 7.0; [0.05 + 0.9 * a, 0.95 - 0.9 * a] }).collect();
            let sp1 = SmoothParams { alpha: 0.9, max_iter: 1, tol: 0.0 };
            let t1 = Instant::now();
            smooth_labels(&w, &labels, 2, &sp1, None, None, &cancel).unwrap();
            let one = t1.elapsed().as_secs_f64();
            let sp = SmoothParams { alpha: 0.9, max_iter: 31, tol: 0.0 };
            let t1 = Instant::now();
            let r = smooth_labels(&w, &labels, 2, &sp, None, None, &cancel).unwrap();
            let el = t1.elapsed().as_secs_f64();
            println!("smooth n={n} c=2: {:.3} s total for {} iters; setup+1 iter {:.3} s; {:.2} ms/iteration", el, r.iterations, one, (el - one) * 1e3 / (r.iterations - 1) as f64);
        }
        _ => panic!("unknown"),
    }
}
