//! The neighbour lists NN-descent refines: per-node bounded best-K lists, updated in batches
//! of offers whose outcome does not depend on their order. (The kNN graph handed back to the
//! caller is the best k of each list, see `to_caller_order`.)

use crate::rng::{hash3, SplitMix64};
use rayon::prelude::*;

/// Rows per chunk when applying updates in parallel.
const APPLY_CHUNK: usize = 1024;

/// An unfilled list slot.
pub(super) const EMPTY: u32 = u32::MAX;

/// Offer `cand` at distance `dist` to `target`'s list.
#[derive(Clone, Copy)]
pub(super) struct Upd {
    pub(super) target: u32,
    pub(super) cand: u32,
    pub(super) dist: f32,
}

/// Per-node best-K lists, ascending (dist, index). flag: 0 old, 1 new, 2 inserted this round.
pub(super) struct NeighbourLists {
    pub(super) kk: usize,
    pub(super) idx: Vec<u32>,
    pub(super) dist: Vec<f32>,
    pub(super) flag: Vec<u8>,
}

#[inline]
fn better(d: f32, j: u32, t: f32, tj: u32) -> bool {
    d < t || (d == t && j < tj)
}

/// Offer (j, d) to one row; true when it went in (or improved j's distance there).
///
/// Order-independent: after any sequence of offers the row holds the best K of
/// everything offered, each candidate at the smallest distance it was offered with, ordered
/// by (distance, index), whatever the order of the offers. (An offer of a candidate already
/// present lowers its distance rather than being dropped: otherwise a candidate evicted and
/// offered again, with a distance computed by another kernel, would go in or not depending on
/// the order, which broke determinism on tied data.) An entry that goes in or improves gets `f`.
#[inline]
fn row_insert(idx: &mut [u32], dist: &mut [f32], flag: &mut [u8], j: u32, d: f32, f: u8) -> bool {
    let kk = idx.len();
    // Where j starts moving up from: its own slot if it is listed (and improves), else the last.
    let mut pos = match idx.iter().position(|&v| v == j) {
        Some(p) if d.partial_cmp(&dist[p]) == Some(std::cmp::Ordering::Less) => p,
        Some(_) => return false,
        None if better(d, j, dist[kk - 1], idx[kk - 1]) => kk - 1,
        None => return false,
    };
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

impl NeighbourLists {
    pub(super) fn new(n: usize, kk: usize) -> Self {
        Self { kk, idx: vec![EMPTY; n * kk], dist: vec![f32::INFINITY; n * kk], flag: vec![0; n * kk] }
    }

    /// Number of nodes.
    pub(super) fn n(&self) -> usize {
        self.idx.len() / self.kk
    }

    /// The distance a candidate must reach to enter node `i`'s list.
    #[inline]
    pub(super) fn thr(&self, i: usize) -> f32 {
        self.dist[i * self.kk + self.kk - 1]
    }

    /// Apply a batch of offers; entries that go in get `flag`.
    pub(super) fn apply(&mut self, ups: &mut [Upd], flag: u8) {
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

    /// Fill the rows left short with seeded random nodes (`dist(i, j)` their distance).
    pub(super) fn fill_random<D: Fn(usize, usize) -> f32 + Sync>(&mut self, dist: D, seed: u64) {
        let kk = self.kk;
        let n = self.n();
        self.idx.par_chunks_mut(kk).zip(self.dist.par_chunks_mut(kk)).zip(self.flag.par_chunks_mut(kk)).enumerate().for_each(
            |(i, ((ir, dr), fr))| {
                if ir[kk - 1] != EMPTY {
                    return;
                }
                let mut rng = SplitMix64::new(hash3(seed, 0x6669_6c6c, i as u64));
                while ir[kk - 1] == EMPTY {
                    let j = rng.below(n);
                    if j != i && !ir.contains(&(j as u32)) {
                        let dd = dist(i, j);
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
}

/// Offer the pair (a, b) at distance `d` to both endpoints, where it can go in.
#[inline]
pub(super) fn push_pair(g: &NeighbourLists, acc: &mut Vec<Upd>, a: u32, b: u32, d: f32) {
    if d <= g.thr(a as usize) {
        acc.push(Upd { target: a, cand: b, dist: d });
    }
    if d <= g.thr(b as usize) {
        acc.push(Upd { target: b, cand: a, dist: d });
    }
}

/// Join two batches of offers (for parallel reductions).
pub(super) fn concat(mut a: Vec<Upd>, mut b: Vec<Upd>) -> Vec<Upd> {
    if a.len() < b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    a.extend_from_slice(&b);
    a
}
