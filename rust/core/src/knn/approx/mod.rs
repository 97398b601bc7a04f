//! Approximate kNN graphs: NN-descent (Dong, Charikar, Li 2011) seeded by a forest of
//! space-partitioning trees, as in pynndescent, except that the trees split by 2-means and have
//! large leaves (n/64 points, 1024 to 16384; see [`auto_leaf`]) searched exactly with the packed
//! GEMM kernel, so the seeded lists are already good and a few NN-descent rounds finish it. Local joins compute their
//! new x (new + old) candidate block with the 4x4 pair-block kernel.
//!
//! Determinism: every random choice comes from a hash of (seed, what is being chosen), never
//! from a shared generator, and every list update is applied as "offer a candidate to a bounded
//! best-K list ordered by (distance, index)". Such a list ends up holding the best K of all that
//! was offered whatever the order of the offers, provided a pair is offered with one distance
//! value within one batch of offers (see [`points`]). So the result depends on the seed only,
//! not on the thread count or scheduling. Work is cut into blocks of fixed size (not per
//! thread).
//!
//! Locality: rows are copied once in the leaf order of the first tree (normalised under cosine),
//! so that neighbours tend to sit close in memory; the copy is the only O(n·d) allocation.

mod candidates;
mod lists;
mod points;
mod tree;

use super::prepared::Prepared;
use super::types::Metric;
use crate::cancel::{check_cancel, is_cancelled};
use crate::rng::hash3;
use crate::Result;
use candidates::sample_candidates;
use lists::{concat, NeighbourLists, Upd, EMPTY};
use points::{Points, Scratch};
use rayon::prelude::*;
use std::sync::atomic::AtomicBool;
use tree::TreeSpec;

/// Neighbours kept per node while NN-descent runs: `max(2k, 30)` (a pool larger than k is
/// what buys recall; 30 matches pynndescent's default), capped at n-1.
pub(super) fn auto_build_k(k: usize, n: usize, user: usize) -> usize {
    let b = if user > 0 { user } else { (2 * k).max(30) };
    b.max(k).min(n - 1)
}

/// NN-descent iteration cap (as pynndescent: max(5, log2 n)).
pub(super) fn auto_iters(n: usize) -> usize {
    ((n as f64).log2().round() as usize).max(5)
}

/// Leaf size of the seeding trees: `n / 64` within [1024, 16384], at least `2 * kk`. Leaves
/// are searched exactly with the GEMM kernel, and the trees split by 2-means (see [`tree`]), so
/// a leaf keeps whole groups of nearby points up to about 1.5% of the data. Measured on the
/// 100-centre mixture (384-d): at n = 1M (10,000 points per centre) leaves of 1024 plateau at
/// recall@10 0.82 however long NN-descent runs; leaves of 16384 seed it to 0.96. At n = 100k
/// leaves of 2048 (3 trees) beat 16384 (1 tree), 0.9999 against 0.957, in less time.
fn auto_leaf(n: usize, kk: usize) -> usize {
    (n / 64).clamp(MIN_LEAF, MAX_LEAF).max(2 * kk)
}

/// Smallest and largest automatic leaf.
const MIN_LEAF: usize = 1024;
const MAX_LEAF: usize = 16384;

/// Seeding trees for leaves of `leaf` points: enough that the leaf pass covers about 4096
/// pairs per point (it costs `n * leaf / 2` pair distances per tree), and at least two, so a
/// point next to one tree's cut gets a second chance (measured at n = 1M: one tree of 16384
/// reaches recall@10 0.96, two 0.999, in 1.6x the CPU time).
fn auto_trees(leaf: usize) -> usize {
    4096usize.div_ceil(leaf).max(2)
}

/// Candidates sampled per node and round (as pynndescent: at most 60).
const MAX_CANDIDATES: usize = 60;

/// Nodes per local-join block (and points per block of leaves): updates are applied
/// between blocks.
const JOIN_BLOCK: usize = 8192;

/// Points per block of leaves in the seeding pass: several large leaves per block, since
/// one leaf is searched by one thread (with leaves of 16384, blocks of `JOIN_BLOCK` points held
/// one leaf and left the other cores idle). The result does not depend on it: an offer is only
/// dropped when it cannot enter the list.
const SEED_BLOCK: usize = 16 * JOIN_BLOCK;

/// Stop when fewer than this fraction of the n*K list entries changed in an iteration
/// (pynndescent uses 0.001 with a random start; from the exact-leaf seed the changes are in
/// the tail of the lists beyond k: at n=100k, 2.4% changed in a round that left recall@10
/// at 0.994).
const DELTA: f64 = 0.025;

/// Hash domain of the trees' seeds.
const TREE_SEED: u64 = 0x7472_6565;

/// Parameters of one NN-descent run (0 means automatic for `build_k`, `n_trees`, `max_iters`).
pub(super) struct NnDescentParams {
    pub(super) k: usize,
    pub(super) build_k: usize,
    pub(super) n_trees: usize,
    /// multiplies the automatic tree count (`Auto`'s stronger second pass)
    pub(super) tree_factor: usize,
    pub(super) max_iters: usize,
    pub(super) seed: u64,
}

/// Build an approximate kNN graph; returns (indices, scores) in the caller's row order,
/// scores as `KnnResult` defines them.
pub(super) fn nn_descent(prep: &Prepared<'_>, p: &NnDescentParams, cancel: &AtomicBool) -> Result<(Vec<u32>, Vec<f32>)> {
    let n = prep.data.n;
    let kk = auto_build_k(p.k, n, p.build_k);
    let iters = if p.max_iters > 0 { p.max_iters } else { auto_iters(n) };
    let (angular, leaf) = (prep.metric == Metric::Cosine, auto_leaf(n, kk));
    let trees = if p.n_trees > 0 { p.n_trees } else { auto_trees(leaf) * p.tree_factor.max(1) };

    // Tree 0 on the caller's rows fixes the internal order: rows are copied once in its
    // leaf order, so that neighbours tend to sit close in memory.
    let mut perm: Vec<u32> = (0..n as u32).collect();
    let spec0 = TreeSpec { row: &|i| prep.row(i), scale: &|i| prep.scale(i), angular, leaf };
    let sizes0 = spec0.build(&mut perm, hash3(p.seed, TREE_SEED, 0), 0);
    check_cancel(cancel)?;
    let pts = Points::reordered(prep, &perm);

    let mut g = NeighbourLists::new(n, kk);
    // Seed the lists with the exact kNN inside the leaves of every tree.
    let mut ids: Vec<u32> = vec![0; n];
    let spec = TreeSpec { row: &|i| pts.row(i), scale: &|_| 1.0, angular, leaf };
    for t in 0..trees {
        check_cancel(cancel)?;
        ids.iter_mut().enumerate().for_each(|(i, v)| *v = i as u32);
        let sizes = if t == 0 { sizes0.clone() } else { spec.build(&mut ids, hash3(p.seed, TREE_SEED, t as u64), 0) };
        seed_from_leaves(&mut g, &pts, &ids, &sizes, cancel)?;
    }
    g.fill_random(|i, j| pts.dist(i, j), p.seed);
    g.flag.par_iter_mut().for_each(|f| *f = 1);

    // NN-descent proper.
    for it in 0..iters {
        check_cancel(cancel)?;
        let changed = descent_round(&mut g, &pts, hash3(p.seed, 0x6974_6572, it as u64), cancel)?;
        if (changed as f64) <= DELTA * (n * kk) as f64 {
            break;
        }
    }
    check_cancel(cancel)?;
    Ok(to_caller_order(&g, &perm, p.k, prep))
}

/// Offer the exact kNN inside every leaf of one tree (`ids` in leaf order, `sizes` the leaf
/// sizes) to the lists, in blocks of leaves.
fn seed_from_leaves(g: &mut NeighbourLists, pts: &Points, ids: &[u32], sizes: &[u32], cancel: &AtomicBool) -> Result<()> {
    let mut s0 = 0usize;
    let leaves: Vec<(usize, usize)> = sizes
        .iter()
        .map(|&l| {
            let s = s0;
            s0 += l as usize;
            (s, l as usize)
        })
        .collect();
    let mut b = 0;
    while b < leaves.len() {
        check_cancel(cancel)?;
        let (mut e, mut cnt) = (b, 0);
        while e < leaves.len() && cnt < SEED_BLOCK {
            cnt += leaves[e].1;
            e += 1;
        }
        let gr = &*g;
        let mut ups: Vec<Upd> = leaves[b..e]
            .par_iter()
            .fold(
                || (Vec::new(), Scratch::default()),
                |(mut acc, mut sc), &(s, l)| {
                    // once cancelled, the remaining leaves are skipped (a block of large
                    // leaves with a large k takes seconds)
                    if !is_cancelled(cancel) {
                        pts.leaf_knn(gr, &ids[s..s + l], &mut sc, &mut acc);
                    }
                    (acc, sc)
                },
            )
            .map(|(acc, _)| acc)
            .reduce(Vec::new, concat);
        check_cancel(cancel)?;
        g.apply(&mut ups, 1);
        b = e;
    }
    Ok(())
}

/// One NN-descent round (`sit` its seed): sample candidates, join them, apply the offers
/// block by block. Returns how many list entries changed.
fn descent_round(g: &mut NeighbourLists, pts: &Points, sit: u64, cancel: &AtomicBool) -> Result<usize> {
    let (n, kk) = (g.n(), g.kk);
    let mc = kk.min(MAX_CANDIDATES);
    let (new_c, old_c) = sample_candidates(g, mc, sit);
    // Entries sampled as new candidates are joined this round: mark them old.
    g.idx.par_chunks(kk).zip(g.flag.par_chunks_mut(kk)).zip(new_c.par_chunks(mc)).for_each(|((ir, fr), nc)| {
        for (f, j) in fr.iter_mut().zip(ir) {
            if *f != 0 && nc.contains(j) {
                *f = 0;
            }
        }
    });
    for b0 in (0..n).step_by(JOIN_BLOCK) {
        check_cancel(cancel)?;
        let b1 = (b0 + JOIN_BLOCK).min(n);
        let gr = &*g;
        let mut ups: Vec<Upd> = (b0..b1)
            .into_par_iter()
            .fold(
                || (Vec::new(), Scratch::default()),
                |(mut acc, mut sc), v| {
                    // once cancelled, the remaining nodes are skipped: with a large k one
                    // block of joins takes many seconds, and Ctrl-C must land within about 2 s
                    if is_cancelled(cancel) {
                        return (acc, sc);
                    }
                    let mut ids = std::mem::take(&mut sc.ids);
                    ids.clear();
                    ids.extend(new_c[v * mc..(v + 1) * mc].iter().copied().filter(|&j| j != EMPTY));
                    let na = ids.len();
                    ids.extend(old_c[v * mc..(v + 1) * mc].iter().copied().filter(|&j| j != EMPTY));
                    pts.join(gr, &ids, na, &mut sc, &mut acc);
                    sc.ids = ids;
                    (acc, sc)
                },
            )
            .map(|(acc, _)| acc)
            .reduce(Vec::new, concat);
        check_cancel(cancel)?;
        g.apply(&mut ups, 2);
    }
    Ok(g.flag.par_iter_mut().map(|f| if *f == 2 { *f = 1; 1 } else { 0 }).sum())
}

/// The best `k` of every list, back in the caller's order (`perm`: internal -> caller), ties
/// re-broken by the caller's indices; scores as `KnnResult` defines them.
fn to_caller_order(g: &NeighbourLists, perm: &[u32], k: usize, prep: &Prepared<'_>) -> (Vec<u32>, Vec<f32>) {
    let (n, kk) = (g.n(), g.kk);
    let mut out_idx = vec![0u32; n * k];
    let mut out_sc = vec![0.0f32; n * k];
    let mut inv = vec![0u32; n];
    for (i, &o) in perm.iter().enumerate() {
        inv[o as usize] = i as u32;
    }
    out_idx.par_chunks_mut(k).zip(out_sc.par_chunks_mut(k)).enumerate().for_each(|(o, (oi, os))| {
        let i = inv[o] as usize;
        let mut row: Vec<(f32, u32)> = (0..kk).map(|t| (g.dist[i * kk + t], perm[g.idx[i * kk + t] as usize])).collect();
        row.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1)));
        for t in 0..k {
            oi[t] = row[t].1;
            os[t] = prep.score_of_key(-row[t].0);
        }
    });
    (out_idx, out_sc)
}
