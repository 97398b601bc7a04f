//! Approximate kNN graphs: NN-descent (Dong, Charikar, Li 2011) seeded by a forest of
//! random-projection trees, as in pynndescent, except that the trees have large leaves
//! (about 1024 points) searched exactly with the packed GEMM kernel, so the seed graph is
//! already good and one or two NN-descent rounds finish it. Local joins compute their
//! new x (new + old) candidate block with a 4x4 register-blocked dot kernel ([`pairdot`]).
//!
//! Determinism: every random choice comes from a hash of (seed, what is being chosen), never
//! from a shared generator, and every graph update is applied as "offer a candidate to a bounded
//! best-K list ordered by (distance, index)". Such a list ends up holding the best K of all that
//! was offered whatever the order of the offers, provided a pair is offered with one distance
//! value within one batch of offers: leaves use the GEMM kernel (each pair lies in one leaf of
//! a tree, one tree per batch), local joins and the random fill use [`pairdot`], whose value of
//! a pair does not depend on where it is computed. So the result depends on the seed only, not
//! on the thread count or scheduling. Work is cut into blocks of fixed size (not per thread).
//!
//! Locality: rows are copied once in the leaf order of the first tree (normalised under cosine),
//! so that neighbours tend to sit close in memory; the copy is the only O(n·d) allocation.

use crate::kernel::{dot4_fn, dot_fn, gemm_tile, pack_rows_seq, packed_len, round_up, DotFn, PW};
use crate::knn::{check_cancel, Prepared};
use crate::rng::{hash3, mix64, SplitMix64};
use crate::{Metric, Result};
use rayon::prelude::*;
use std::sync::atomic::AtomicBool;

#[path = "pairdot.rs"]
mod pairdot;

/// Neighbours kept per node while NN-descent runs: `max(2k, 30)` (a pool larger than k is
/// what buys recall; 30 matches pynndescent's default), capped at n-1.
pub(crate) fn auto_build_k(k: usize, n: usize, user: usize) -> usize {
    let b = if user > 0 { user } else { (2 * k).max(30) };
    b.max(k).min(n - 1)
}

/// NN-descent iteration cap (as pynndescent: max(5, log2 n)).
pub(crate) fn auto_iters(n: usize) -> usize {
    ((n as f64).log2().round() as usize).max(5)
}

/// Seeding trees. Each leaf is searched exactly (GEMM), so the seed graph is already good
/// (measured, clustered n=100k, leaves of 1024: 4 trees recall 0.81, 8 trees 0.9+), and one
/// NN-descent round on top reaches 0.99; fewer trees need more rounds, which cost more.
fn auto_trees(n: usize) -> usize {
    if n <= 4 * LEAF {
        3
    } else {
        8
    }
}

/// Leaf size of the seeding trees (measured at n=100k: 256 gives a much worse seed per
/// unit of time than 1024).
const LEAF: usize = 1024;

/// Candidates sampled per node and round (as pynndescent: at most 60).
const MAX_CANDIDATES: usize = 60;

/// Nodes per local-join block: updates are applied between blocks.
const JOIN_BLOCK: usize = 8192;
/// Rows per chunk when applying updates in parallel.
const APPLY_CHUNK: usize = 1024;
/// Stop when fewer than this fraction of the n*K graph entries changed in an iteration
/// (pynndescent uses 0.001 with a random start; from the exact-leaf seed the changes are in
/// the tail of the lists beyond k: at n=100k, 2.4% changed in a round that left recall@10
/// at 0.994).
const DELTA: f64 = 0.025;

const EMPTY: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Upd {
    target: u32,
    cand: u32,
    dist: f32,
}

/// Per-node best-K lists, ascending (dist, index). flag: 0 old, 1 new, 2 inserted this round.
struct Graph {
    kk: usize,
    idx: Vec<u32>,
    dist: Vec<f32>,
    flag: Vec<u8>,
}

#[inline]
fn better(d: f32, j: u32, t: f32, tj: u32) -> bool {
    d < t || (d == t && j < tj)
}

/// Offer (j, d) to one row; true when it went in.
#[inline]
fn row_insert(idx: &mut [u32], dist: &mut [f32], flag: &mut [u8], j: u32, d: f32, f: u8) -> bool {
    let kk = idx.len();
    if !better(d, j, dist[kk - 1], idx[kk - 1]) || idx.contains(&j) {
        return false;
    }
    let mut pos = kk - 1;
    while pos > 0 && better(d, j, dist[pos - 1], idx[pos - 1]) {
        idx[pos] = idx[pos - 1];
        dist[pos] = dist[pos - 1];
        flag[pos] = flag[pos - 1];
        pos -= 1;
    }
    idx[pos] = j;
    dist[pos] = d;
    flag[pos] = f;
    true
}

impl Graph {
    fn new(n: usize, kk: usize) -> Self {
        Self { kk, idx: vec![EMPTY; n * kk], dist: vec![f32::INFINITY; n * kk], flag: vec![0; n * kk] }
    }

    #[inline]
    fn thr(&self, i: usize) -> f32 {
        self.dist[i * self.kk + self.kk - 1]
    }

    fn apply(&mut self, ups: &mut [Upd], flag: u8) {
        ups.par_sort_unstable_by_key(|u| u.target);
        let kk = self.kk;
        let ups = &*ups;
        self.idx
            .par_chunks_mut(APPLY_CHUNK * kk)
            .zip(self.dist.par_chunks_mut(APPLY_CHUNK * kk))
            .zip(self.flag.par_chunks_mut(APPLY_CHUNK * kk))
            .enumerate()
            .for_each(|(ci, ((ir, dr), fr))| {
                let r0 = ci * APPLY_CHUNK;
                let r1 = r0 + ir.len() / kk;
                let lo = ups.partition_point(|u| (u.target as usize) < r0);
                let hi = ups.partition_point(|u| (u.target as usize) < r1);
                for u in &ups[lo..hi] {
                    let r = (u.target as usize - r0) * kk;
                    row_insert(&mut ir[r..r + kk], &mut dr[r..r + kk], &mut fr[r..r + kk], u.cand, u.dist, flag);
                }
            });
    }
}


/// The caller's rows, read in place (no copy of the data). Every distance comes from
/// [`pairdot`], whose per-pair arithmetic does not depend on where or with what else a pair is
/// computed, and the scales enter symmetrically, so a pair gets the same value wherever it is
/// computed, which the order-independence of updates relies on.
struct Points {
    /// rows in the internal order (normalised under cosine)
    x: Vec<f32>,
    d: usize,
    /// SquaredL2 only: squared norms, internal order
    sqn: Option<Vec<f32>>,
}

/// Per-thread buffers.
#[derive(Default)]
struct Scratch {
    pack: Vec<f32>,
    tile: Vec<f32>,
    ct: Vec<f32>,
    buf: Vec<u64>,
    bn: Vec<u32>,
    ids: Vec<u32>,
}

/// Rows per block inside a leaf.
const LEAF_RB: usize = 64;

impl Points {
    #[inline]
    fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.d..(i + 1) * self.d]
    }

    /// Lower is better: minus the similarity, or the squared distance, from a dot product
    /// of the caller's (unscaled) rows.
    #[inline]
    fn dist_from_dot(&self, a: usize, b: usize, ip: f32) -> f32 {
        match &self.sqn {
            Some(s) => (s[a] + s[b]) - 2.0 * ip,
            None => -ip,
        }
    }

    fn dist(&self, a: usize, b: usize) -> f32 {
        self.dist_from_dot(a, b, pairdot::dot1(self.row(a), self.row(b)))
    }

    /// Exact kNN inside one leaf (upper triangle, in blocks of rows; per-row best-`kl`
    /// lists), then offer each row's list to the graph.
    fn leaf_knn(&self, g: &Graph, ids: &[u32], sc: &mut Scratch, acc: &mut Vec<Upd>) {
        let l = ids.len();
        if l < 2 {
            return;
        }
        let kl = g.kk.min(l - 1);
        // Per row: a buffer of keys (distance, index) that may still be in its best `kl`;
        // when full it is cut back to the best `kl` and the threshold `ct` tightens.
        let cap = 2 * kl + 2;
        sc.buf.clear();
        sc.buf.resize(l * cap, 0);
        sc.bn.clear();
        sc.bn.resize(l, 0);
        sc.ct.clear();
        sc.ct.resize(l, f32::INFINITY);
        let mut ls = Lists { buf: &mut sc.buf, bn: &mut sc.bn, ct: &mut sc.ct, cap, kl };
        let d = self.d;
        sc.pack.resize(packed_len(l, d), 0.0);
        pack_rows_seq(l, d, |i| self.row(ids[i] as usize), |_| 1.0, &mut sc.pack);
        for r0 in (0..l).step_by(LEAF_RB) {
            let mr = LEAF_RB.min(l - r0);
            let nc = l - r0;
            let (mb, nb) = (round_up(mr, PW), round_up(nc, PW));
            sc.tile.resize(mb * nb, 0.0);
            gemm_tile(&sc.pack[r0 * d..], &sc.pack[r0 * d..], d, mb, nb, &mut sc.tile);
            for r in 0..mr {
                let a = ids[r0 + r];
                let trow = &mut sc.tile[r * nb..r * nb + nc];
                match &self.sqn {
                    Some(s) => {
                        let sa = s[a as usize];
                        for (v, &b) in trow.iter_mut().zip(&ids[r0..]) {
                            *v = (sa + s[b as usize]) - 2.0 * *v;
                        }
                    }
                    None => trow.iter_mut().for_each(|v| *v = -*v),
                }
                for q0 in (r + 1..nc).step_by(32) {
                    let q1 = (q0 + 32).min(nc);
                    let t = ls.ct[r0 + r];
                    let (mut mrow, mut mcol) = (0u32, 0u32);
                    for (q, (&dd, &tc)) in trow[q0..q1].iter().zip(&ls.ct[r0 + q0..r0 + q1]).enumerate() {
                        mrow |= ((dd <= t) as u32) << q;
                        mcol |= ((dd <= tc) as u32) << q;
                    }
                    while mrow != 0 {
                        let c = q0 + mrow.trailing_zeros() as usize;
                        mrow &= mrow - 1;
                        if trow[c] <= ls.ct[r0 + r] {
                            ls.push(r0 + r, trow[c], ids[r0 + c]);
                        }
                    }
                    while mcol != 0 {
                        let c = q0 + mcol.trailing_zeros() as usize;
                        mcol &= mcol - 1;
                        ls.push(r0 + c, trow[c], a);
                    }
                }
            }
        }
        for (r, &a) in ids.iter().enumerate() {
            let t = g.thr(a as usize);
            let b = &mut ls.buf[r * cap..r * cap + ls.bn[r] as usize];
            let m = b.len().min(kl);
            if b.len() > m {
                b.select_nth_unstable(m - 1);
            }
            for &key in &b[..m] {
                let dd = key_dist(key);
                if dd <= t {
                    acc.push(Upd { target: a, cand: key as u32, dist: dd });
                }
            }
        }
    }

    /// Local join: offer every pair (i < j, i < na) among `ids` whose distance beats an
    /// endpoint's list; the `na` new candidates against all, as one block of dot products.
    fn join(&self, g: &Graph, ids: &[u32], na: usize, sc: &mut Scratch, acc: &mut Vec<Upd>) {
        let m = ids.len();
        if na == 0 || m < 2 {
            return;
        }
        let rows: Vec<&[f32]> = ids.iter().map(|&i| self.row(i as usize)).collect();
        sc.tile.resize(na * m, 0.0);
        pairdot::cross(&rows[..na], &rows, &mut sc.tile);
        for i in 0..na {
            let a = ids[i];
            let trow = &sc.tile[i * m..(i + 1) * m];
            for j in i + 1..m {
                let b = ids[j];
                if b != a {
                    let dd = self.dist_from_dot(a as usize, b as usize, trow[j]);
                    push_pair(g, acc, a, b, dd);
                }
            }
        }
    }
}

/// Per-row buffers of keys (distance, index) that may still be among the row's best `kl`;
/// a full buffer is cut back to its best `kl` and the row's threshold `ct` tightens.
struct Lists<'a> {
    buf: &'a mut [u64],
    bn: &'a mut [u32],
    ct: &'a mut [f32],
    cap: usize,
    kl: usize,
}

impl Lists<'_> {
    #[inline]
    fn push(&mut self, row: usize, dd: f32, j: u32) {
        let (cap, kl) = (self.cap, self.kl);
        let n0 = self.bn[row] as usize;
        let b = &mut self.buf[row * cap..(row + 1) * cap];
        b[n0] = dkey(dd, j);
        if n0 + 1 == cap {
            b.select_nth_unstable(kl - 1);
            self.bn[row] = kl as u32;
            self.ct[row] = key_dist(b[..kl].iter().copied().max().unwrap_or(u64::MAX));
        } else {
            self.bn[row] = (n0 + 1) as u32;
        }
    }
}

/// Sort key of (distance, index): the order of `better` (with -0 read as +0).
#[inline]
fn dkey(d: f32, j: u32) -> u64 {
    let b = (d + 0.0).to_bits();
    let o = if b >> 31 == 1 { !b } else { b | 0x8000_0000 };
    ((o as u64) << 32) | j as u64
}

#[inline]
fn key_dist(k: u64) -> f32 {
    let o = (k >> 32) as u32;
    f32::from_bits(if o >> 31 == 1 { o & 0x7fff_ffff } else { !o })
}


/// Leaf size of the seeding trees: leaves are searched exactly with the GEMM kernel, so
/// large leaves are cheap per pair and give a much better starting graph.
fn auto_leaf(kk: usize) -> usize {
    LEAF.max(2 * kk)
}

/// Build an approximate kNN graph; returns (indices, scores) in the caller's row order,
/// scores as `KnnResult` defines them.
pub(crate) fn nn_descent(
    prep: &Prepared<'_>,
    k: usize,
    build_k: usize,
    n_trees: usize,
    max_iters: usize,
    seed: u64,
    cancel: &AtomicBool,
) -> Result<(Vec<u32>, Vec<f32>)> {
    let n = prep.data.n;
    let kk = auto_build_k(k, n, build_k);
    let iters = if max_iters > 0 { max_iters } else { auto_iters(n) };
    let trees = if n_trees > 0 { n_trees } else { auto_trees(n) };
    let leaf = auto_leaf(kk);
    let angular = prep.metric == Metric::Cosine;
    let dot = dot_fn();

    // Tree 0 on the caller's rows fixes the internal order: rows are copied once in its
    // leaf order, so that neighbours tend to sit close in memory.
    let mut perm: Vec<u32> = (0..n as u32).collect();
    let sizes0 = build_tree(&mut perm, &|i| prep.data.row(i), &|i| prep.scale(i), angular, leaf, hash3(seed, 0x7472_6565, 0), 0, dot);
    check_cancel(cancel)?;
    let d = prep.data.d;
    let mut x = vec![0.0f32; n * d];
    x.par_chunks_mut(d).zip(perm.par_iter()).for_each(|(dst, &o)| {
        let s = prep.scale(o as usize);
        for (a, &b) in dst.iter_mut().zip(prep.data.row(o as usize)) {
            *a = b * s;
        }
    });
    let sqn = prep.sqn.as_ref().map(|v| perm.iter().map(|&o| v[o as usize]).collect::<Vec<f32>>());
    let pts = Points { x, d, sqn };

    let mut g = Graph::new(n, kk);
    // Seed the graph with the exact kNN inside the leaves of every tree.
    let mut ids: Vec<u32> = vec![0; n];
    for t in 0..trees {
        check_cancel(cancel)?;
        ids.iter_mut().enumerate().for_each(|(i, v)| *v = i as u32);
        let sizes = if t == 0 {
            sizes0.clone()
        } else {
            build_tree(&mut ids, &|i| pts.row(i), &|_| 1.0, angular, leaf, hash3(seed, 0x7472_6565, t as u64), 0, dot)
        };
        let mut s0 = 0usize;
        let leaves: Vec<(usize, usize)> = sizes.iter().map(|&l| { let s = s0; s0 += l as usize; (s, l as usize) }).collect();
        let mut b = 0;
        while b < leaves.len() {
            check_cancel(cancel)?;
            let (mut e, mut cnt) = (b, 0);
            while e < leaves.len() && cnt < JOIN_BLOCK {
                cnt += leaves[e].1;
                e += 1;
            }
            let (gr, idr) = (&g, &ids);
            let mut ups: Vec<Upd> = leaves[b..e]
                .par_iter()
                .fold(
                    || (Vec::new(), Scratch::default()),
                    |(mut acc, mut sc), &(s, l)| {
                        pts.leaf_knn(gr, &idr[s..s + l], &mut sc, &mut acc);
                        (acc, sc)
                    },
                )
                .map(|(acc, _)| acc)
                .reduce(Vec::new, concat);
            g.apply(&mut ups, 1);
            b = e;
        }
    }
    fill_random(&mut g, &pts, seed);
    g.flag.par_iter_mut().for_each(|f| *f = 1);

    // NN-descent proper.
    let mc = kk.min(MAX_CANDIDATES);
    for it in 0..iters {
        check_cancel(cancel)?;
        let sit = hash3(seed, 0x6974_6572, it as u64);
        let (new_c, old_c) = sample_candidates(&g, mc, sit);
        // Entries sampled as new candidates are joined this round: mark them old.
        g.idx
            .par_chunks(kk)
            .zip(g.flag.par_chunks_mut(kk))
            .zip(new_c.par_chunks(mc))
            .for_each(|((ir, fr), nc)| {
                for (f, j) in fr.iter_mut().zip(ir) {
                    if *f != 0 && nc.contains(j) {
                        *f = 0;
                    }
                }
            });
        for b0 in (0..n).step_by(JOIN_BLOCK) {
            check_cancel(cancel)?;
            let b1 = (b0 + JOIN_BLOCK).min(n);
            let gr = &g;
            let mut ups: Vec<Upd> = (b0..b1)
                .into_par_iter()
                .fold(
                    || (Vec::new(), Scratch::default()),
                    |(mut acc, mut sc), v| {
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
            g.apply(&mut ups, 2);
        }
        let changed: usize = g.flag.par_iter_mut().map(|f| if *f == 2 { *f = 1; 1 } else { 0 }).sum();
        if (changed as f64) <= DELTA * (n * kk) as f64 {
            break;
        }
    }
    check_cancel(cancel)?;

    // Back to the caller's order; ties re-broken by the caller's indices.
    let metric = prep.metric;
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
            os[t] = match metric {
                Metric::SquaredL2 => row[t].0.max(0.0),
                _ => -row[t].0,
            };
        }
    });
    Ok((out_idx, out_sc))
}

fn concat(mut a: Vec<Upd>, mut b: Vec<Upd>) -> Vec<Upd> {
    if a.len() < b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    a.extend_from_slice(&b);
    a
}

#[inline]
fn push_pair(g: &Graph, acc: &mut Vec<Upd>, a: u32, b: u32, d: f32) {
    if d <= g.thr(a as usize) {
        acc.push(Upd { target: a, cand: b, dist: d });
    }
    if d <= g.thr(b as usize) {
        acc.push(Upd { target: b, cand: a, dist: d });
    }
}

/// Fill the rows the trees left short with seeded random nodes.
fn fill_random(g: &mut Graph, pts: &Points, seed: u64) {
    let kk = g.kk;
    let n = g.idx.len() / kk;
    g.idx.par_chunks_mut(kk).zip(g.dist.par_chunks_mut(kk)).zip(g.flag.par_chunks_mut(kk)).enumerate().for_each(
        |(i, ((ir, dr), fr))| {
            if ir[kk - 1] != EMPTY {
                return;
            }
            let mut rng = SplitMix64::new(hash3(seed, 0x6669_6c6c, i as u64));
            while ir[kk - 1] == EMPTY {
                let j = rng.below(n);
                if j != i && !ir.contains(&(j as u32)) {
                    let dd = pts.dist(i, j);
                    if !row_insert(ir, dr, fr, j as u32, dd, 1) && !ir.contains(&(j as u32)) {
                        // Only possible with a NaN distance: place it anyway at the end.
                        ir[kk - 1] = j as u32;
                        dr[kk - 1] = f32::INFINITY;
                    }
                }
            }
        },
    );
}

/// Per node, up to `mc` new and `mc` old candidates (forward and reverse neighbours), the ones
/// with the smallest hash priority. Rows are split into ranges; each range scans the whole
/// graph and keeps what lands in it, so no locks are needed.
fn sample_candidates(g: &Graph, mc: usize, sit: u64) -> (Vec<u32>, Vec<u32>) {
    let kk = g.kk;
    let n = g.idx.len() / kk;
    let parts = rayon::current_num_threads().max(1);
    let rows_per = n.div_ceil(parts).max(1);
    let mut new_c = vec![EMPTY; n * mc];
    let mut old_c = vec![EMPTY; n * mc];
    new_c.par_chunks_mut(rows_per * mc).zip(old_c.par_chunks_mut(rows_per * mc)).enumerate().for_each(|(p, (nc, oc))| {
        let r0 = p * rows_per;
        let r1 = (r0 + rows_per).min(n);
        let m = r1 - r0;
        let mut npri = vec![u32::MAX; m * mc];
        let mut opri = vec![u32::MAX; m * mc];
        let mut offer = |t: usize, c: u32, is_new: bool| {
            let pri = (hash3(sit, t as u64, c as u64) >> 32) as u32;
            let r = (t - r0) * mc;
            let (ci, pr) = if is_new { (&mut nc[r..r + mc], &mut npri[r..r + mc]) } else { (&mut oc[r..r + mc], &mut opri[r..r + mc]) };
            let last = mc - 1;
            if pri > pr[last] || (pri == pr[last] && c >= ci[last]) || ci.contains(&c) {
                return;
            }
            let mut pos = last;
            while pos > 0 && (pri < pr[pos - 1] || (pri == pr[pos - 1] && c < ci[pos - 1])) {
                ci[pos] = ci[pos - 1];
                pr[pos] = pr[pos - 1];
                pos -= 1;
            }
            ci[pos] = c;
            pr[pos] = pri;
        };
        for u in 0..n {
            for s in 0..kk {
                let v = g.idx[u * kk + s];
                if v == EMPTY {
                    continue;
                }
                let is_new = g.flag[u * kk + s] != 0;
                if (r0..r1).contains(&u) {
                    offer(u, v, is_new);
                }
                if (r0..r1).contains(&(v as usize)) {
                    offer(v as usize, u as u32, is_new);
                }
            }
        }
    });
    (new_c, old_c)
}

/// Random-projection tree over `ids` (reordered in place so every leaf is a contiguous run);
/// returns the leaf sizes in order. Splits: the hyperplane bisecting two random points
/// (through the origin between their directions when `angular`).
#[allow(clippy::too_many_arguments)]
fn build_tree<'a, R, S>(ids: &mut [u32], row: &R, scale: &S, angular: bool, leaf: usize, seed: u64, depth: usize, dot: DotFn) -> Vec<u32>
where
    R: Fn(usize) -> &'a [f32] + Sync,
    S: Fn(usize) -> f32 + Sync,
{
    let m = ids.len();
    if m <= leaf || depth >= 64 {
        return vec![m as u32];
    }
    let mut rng = SplitMix64::new(seed);
    let a = ids[rng.below(m)] as usize;
    let mut b = ids[rng.below(m)] as usize;
    if b == a {
        b = ids[(ids.iter().position(|&v| v as usize == a).unwrap_or(0) + 1 + rng.below(m - 1)) % m] as usize;
    }
    let (xa, xb) = (row(a), row(b));
    let (mut sa, mut sb) = (scale(a), scale(b));
    if angular {
        // directions: rows scaled to unit length
        let na = dot(xa, xa).sqrt() * sa;
        let nb = dot(xb, xb).sqrt() * sb;
        sa /= na.max(f32::MIN_POSITIVE);
        sb /= nb.max(f32::MIN_POSITIVE);
    }
    let normal: Vec<f32> = xa.iter().zip(xb).map(|(&p, &q)| p * sa - q * sb).collect();
    let offset = if angular { 0.0 } else { -xa.iter().zip(xb).zip(&normal).map(|((&p, &q), &w)| w * (p * sa + q * sb) * 0.5).sum::<f32>() };
    let side = |i: u32, ip: f32| -> bool {
        let mg = scale(i as usize) * ip + offset;
        if mg == 0.0 {
            hash3(seed, i as u64, 1) & 1 == 1
        } else {
            mg > 0.0
        }
    };
    // four rows per call to the 4-wide dot product (bit-identical to `dot`)
    let dot4 = dot4_fn();
    let sides_of = |ch: &[u32], out: &mut [bool]| {
        if ch.len() == 4 {
            let ips = dot4(&normal, [row(ch[0] as usize), row(ch[1] as usize), row(ch[2] as usize), row(ch[3] as usize)]);
            for t in 0..4 {
                out[t] = side(ch[t], ips[t]);
            }
        } else {
            for (o, &i) in out.iter_mut().zip(ch) {
                *o = side(i, dot(&normal, row(i as usize)));
            }
        }
    };
    let mut sides = vec![false; m];
    if m > 4096 {
        sides.par_chunks_mut(256).zip(ids.par_chunks(256)).for_each(|(o, ch)| {
            for (o4, c4) in o.chunks_mut(4).zip(ch.chunks(4)) {
                sides_of(c4, o4);
            }
        });
    } else {
        for (o4, c4) in sides.chunks_mut(4).zip(ids.chunks(4)) {
            sides_of(c4, o4);
        }
    }
    let nl = sides.iter().filter(|&&s| s).count();
    let mut tmp = Vec::with_capacity(m);
    if nl == 0 || nl == m {
        // Degenerate split (duplicates): halve by position.
        tmp.extend_from_slice(ids);
    } else {
        tmp.extend(ids.iter().zip(&sides).filter(|(_, &s)| s).map(|(&i, _)| i));
        tmp.extend(ids.iter().zip(&sides).filter(|(_, &s)| !s).map(|(&i, _)| i));
    }
    let nl = if nl == 0 || nl == m { m / 2 } else { nl };
    ids.copy_from_slice(&tmp);
    drop(tmp);
    let (l, r) = ids.split_at_mut(nl);
    let (sl, sr) = (mix64(seed.wrapping_mul(2).wrapping_add(1)), mix64(seed.wrapping_mul(2).wrapping_add(2)));
    let (mut a, b) = if m > 8192 {
        rayon::join(
            || build_tree(l, row, scale, angular, leaf, sl, depth + 1, dot),
            || build_tree(r, row, scale, angular, leaf, sr, depth + 1, dot),
        )
    } else {
        (build_tree(l, row, scale, angular, leaf, sl, depth + 1, dot), build_tree(r, row, scale, angular, leaf, sr, depth + 1, dot))
    };
    a.extend(b);
    a
}
