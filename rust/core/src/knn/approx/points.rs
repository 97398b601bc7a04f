//! The rows NN-descent works on (copied once in the internal order), and the two ways it
//! computes distances: exact kNN inside a tree leaf (GEMM tile) and local joins (pair
//! blocks).
//!
//! A pair gets the same distance value wherever it is computed within one batch of offers
//! (leaves: each pair lies in one leaf of a tree, one tree per batch; joins and the random
//! fill: the pair-block kernel, whose value of a pair does not depend on its neighbours in
//! the block), and the squared norms enter symmetrically; the order-independence of list
//! updates relies on it.

use super::lists::{push_pair, NeighbourLists, Upd};
use crate::kernel::{gemm_tile, pack_rows_seq, packed_len, pairdot, round_up, PW};
use crate::knn::prepared::Prepared;
use rayon::prelude::*;

/// Rows per block inside a leaf.
const LEAF_RB: usize = 64;

/// Rows in the internal order (normalised under cosine).
pub(super) struct Points {
    x: Vec<f32>,
    d: usize,
    /// SquaredL2 only: squared norms, internal order
    sqn: Option<Vec<f32>>,
    /// InnerProduct only: the linear terms `l_i` (see `prepared`), internal order
    lin: Option<Vec<f32>>,
}

/// Per-thread buffers.
#[derive(Default)]
pub(super) struct Scratch {
    pack: Vec<f32>,
    tile: Vec<f32>,
    ct: Vec<f32>,
    buf: Vec<u64>,
    bn: Vec<u32>,
    /// candidate ids of one local join
    pub(super) ids: Vec<u32>,
}

impl Points {
    /// The caller's rows in the order `perm` (internal -> caller), scaled as `prep` says.
    pub(super) fn reordered(prep: &Prepared<'_>, perm: &[u32]) -> Self {
        let d = prep.data.d;
        let mut x = vec![0.0f32; perm.len() * d];
        x.par_chunks_mut(d).zip(perm.par_iter()).for_each(|(dst, &o)| {
            let s = prep.scale(o as usize);
            for (a, &b) in dst.iter_mut().zip(prep.row(o as usize)) {
                *a = b * s;
            }
        });
        let sqn = prep.sqn.as_ref().map(|v| perm.iter().map(|&o| v[o as usize]).collect::<Vec<f32>>());
        let lin = prep.lin.as_ref().map(|v| perm.iter().map(|&o| v[o as usize]).collect::<Vec<f32>>());
        Points { x, d, sqn, lin }
    }

    #[inline]
    pub(super) fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.d..(i + 1) * self.d]
    }

    /// Lower is better: minus the similarity, or the squared distance, from a dot product.
    #[inline]
    fn dist_from_dot(&self, a: usize, b: usize, ip: f32) -> f32 {
        match (&self.sqn, &self.lin) {
            (Some(s), _) => (s[a] + s[b]) - 2.0 * ip,
            (None, Some(l)) => -(ip + (l[a] + l[b])),
            (None, None) => -ip,
        }
    }

    /// The distance of one pair, as a local join computes it.
    pub(super) fn dist(&self, a: usize, b: usize) -> f32 {
        self.dist_from_dot(a, b, pairdot::dot1(self.row(a), self.row(b)))
    }

    /// Exact kNN inside one leaf (upper triangle, in blocks of rows; per-row best-`kl`
    /// lists), then offer each row's list to the neighbour lists.
    pub(super) fn leaf_knn(&self, g: &NeighbourLists, ids: &[u32], sc: &mut Scratch, acc: &mut Vec<Upd>) {
        let l = ids.len();
        if l < 2 {
            return;
        }
        let kl = g.kk.min(l - 1);
        let mut ls = Lists::new(&mut sc.buf, &mut sc.bn, &mut sc.ct, l, kl);
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
                let trow = &mut sc.tile[r * nb..r * nb + nc];
                self.dists_from_dots(ids[r0 + r], trow, &ids[r0..]);
                ls.scan(r0, r, trow, ids);
            }
        }
        ls.offer(g, ids, acc);
    }

    /// Turn the dot products of row `a` with rows `ids` into distances, in place.
    #[inline]
    fn dists_from_dots(&self, a: u32, trow: &mut [f32], ids: &[u32]) {
        match (&self.sqn, &self.lin) {
            (Some(s), _) => {
                let sa = s[a as usize];
                for (v, &b) in trow.iter_mut().zip(ids) {
                    *v = (sa + s[b as usize]) - 2.0 * *v;
                }
            }
            (None, Some(l)) => {
                let la = l[a as usize];
                for (v, &b) in trow.iter_mut().zip(ids) {
                    *v = -(*v + (la + l[b as usize]));
                }
            }
            (None, None) => trow.iter_mut().for_each(|v| *v = -*v),
        }
    }

    /// Local join: offer every pair (i < j, i < na) among `ids` whose distance beats an
    /// endpoint's list; the `na` new candidates against all, as one block of dot products.
    pub(super) fn join(&self, g: &NeighbourLists, ids: &[u32], na: usize, sc: &mut Scratch, acc: &mut Vec<Upd>) {
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

impl<'a> Lists<'a> {
    /// Empty lists for `l` rows, in the scratch buffers.
    fn new(buf: &'a mut Vec<u64>, bn: &'a mut Vec<u32>, ct: &'a mut Vec<f32>, l: usize, kl: usize) -> Self {
        let cap = 2 * kl + 2;
        buf.clear();
        buf.resize(l * cap, 0);
        bn.clear();
        bn.resize(l, 0);
        ct.clear();
        ct.resize(l, f32::INFINITY);
        Lists { buf, bn, ct, cap, kl }
    }

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

    /// Offer tile row `r` of the block starting at leaf row `r0` (distances `trow` to leaf
    /// rows `r0..`) to its own list and, for the columns right of the diagonal, to theirs.
    #[inline]
    fn scan(&mut self, r0: usize, r: usize, trow: &[f32], ids: &[u32]) {
        let (nc, a) = (trow.len(), ids[r0 + r]);
        for q0 in (r + 1..nc).step_by(32) {
            let q1 = (q0 + 32).min(nc);
            let t = self.ct[r0 + r];
            let (mut mrow, mut mcol) = (0u32, 0u32);
            for (q, (&dd, &tc)) in trow[q0..q1].iter().zip(&self.ct[r0 + q0..r0 + q1]).enumerate() {
                mrow |= ((dd <= t) as u32) << q;
                mcol |= ((dd <= tc) as u32) << q;
            }
            while mrow != 0 {
                let c = q0 + mrow.trailing_zeros() as usize;
                mrow &= mrow - 1;
                if trow[c] <= self.ct[r0 + r] {
                    self.push(r0 + r, trow[c], ids[r0 + c]);
                }
            }
            while mcol != 0 {
                let c = q0 + mcol.trailing_zeros() as usize;
                mcol &= mcol - 1;
                self.push(r0 + c, trow[c], a);
            }
        }
    }

    /// Offer each row's best `kl` to the neighbour lists (leaf row `r` is node `ids[r]`).
    fn offer(self, g: &NeighbourLists, ids: &[u32], acc: &mut Vec<Upd>) {
        let (cap, kl) = (self.cap, self.kl);
        for (r, &a) in ids.iter().enumerate() {
            let t = g.thr(a as usize);
            let b = &mut self.buf[r * cap..r * cap + self.bn[r] as usize];
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
}

/// Sort key of (distance, index): the order of the neighbour lists (with -0 read as +0).
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
