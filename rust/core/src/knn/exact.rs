//! Exact search: all pairs (upper triangle of block pairs, each tile feeding both its row
//! block's and its column block's lists), and selected query rows against all rows.

use super::prepared::Prepared;
use super::topk::TopK;
use crate::cancel::{check_cancel, is_cancelled};
use crate::kernel::{gemm_tile, pack_rows, pack_rows_seq, packed_len, round_up, PW};
use crate::{MatrixView, Result};
use rayon::prelude::*;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

/// Rows per block of the exact all-pairs search (one tile is `EXACT_BLOCK x EXACT_BLOCK`).
const EXACT_BLOCK: usize = 256;

/// Exact all-pairs search over the upper triangle of block pairs; each tile feeds both its
/// row block's and its column block's lists.
pub(super) fn exact_all(prep: &Prepared<'_>, k: usize, cancel: &AtomicBool) -> Result<(Vec<u32>, Vec<f32>)> {
    let MatrixView { n, d, .. } = prep.data;
    let mut packed = vec![0.0f32; packed_len(n, d)];
    pack_rows(n, d, |i| prep.row(i), |i| prep.scale(i), &mut packed);
    check_cancel(cancel)?;
    let bs = EXACT_BLOCK;
    let lists: Vec<Mutex<TopK>> = (0..n.div_ceil(bs)).map(|b| Mutex::new(TopK::new(bs.min(n - b * bs), k))).collect();
    for_each_block_pair(n, bs, cancel, || (vec![0.0f32; bs * bs], Vec::<f32>::new(), Vec::<u32>::new()),
        |(tile, tv, ti), t| {
            let BlockPair { bi, bj, i0, j0, mr, nc, mb, nb } = t;
            gemm_tile(&packed[i0 * d..], &packed[j0 * d..], d, mb, nb, tile);
            prep.to_keys(tile, nb, &|r| i0 + r, mr, j0, nc);
            lock(&lists[bi]).scan_tile_rows(tile, nb, mr, nc, i0, j0);
            if bi != bj {
                lock(&lists[bj]).scan_tile_cols(tile, nb, mr, nc, i0, tv, ti);
            }
        },
    );
    check_cancel(cancel)?;
    let mut idx = Vec::with_capacity(n * k);
    let mut vals = Vec::with_capacity(n * k);
    for m in lists {
        let t = m.into_inner().unwrap_or_else(|e| e.into_inner());
        idx.extend_from_slice(&t.idx);
        vals.extend_from_slice(&t.vals);
    }
    Ok((idx, vals))
}

/// One tile of the all-pairs search: row block `bi` (rows `i0 .. i0 + mr`) against column
/// block `bj >= bi` (rows `j0 .. j0 + nc`), `mb x nb` once padded to the kernel's panel width.
#[derive(Clone, Copy)]
pub(super) struct BlockPair {
    pub bi: usize,
    pub bj: usize,
    pub i0: usize,
    pub j0: usize,
    pub mr: usize,
    pub nc: usize,
    pub mb: usize,
    pub nb: usize,
}

/// Run `tile` on every block pair of the upper triangle (blocks of `bs` rows), in parallel,
/// with per-thread scratch from `init`; pairs left once `cancel` is raised are skipped (the
/// caller reports it with `check_cancel`).
pub(super) fn for_each_block_pair<S: Send>(
    n: usize, bs: usize, cancel: &AtomicBool, init: impl Fn() -> S + Sync + Send,
    tile: impl Fn(&mut S, BlockPair) + Sync + Send,
) {
    let nblk = n.div_ceil(bs);
    let pairs: Vec<(u32, u32)> = (0..nblk).flat_map(|i| (i..nblk).map(move |j| (i as u32, j as u32))).collect();
    pairs.par_iter().for_each_init(init, |s, &(bi, bj)| {
        if is_cancelled(cancel) {
            return;
        }
        let (bi, bj) = (bi as usize, bj as usize);
        let (i0, j0) = (bi * bs, bj * bs);
        let (mr, nc) = (bs.min(n - i0), bs.min(n - j0));
        tile(s, BlockPair { bi, bj, i0, j0, mr, nc, mb: round_up(mr, PW), nb: round_up(nc, PW) });
    });
}

/// The list behind `m`, also after a panic elsewhere (the lists stay consistent).
fn lock(m: &Mutex<TopK>) -> std::sync::MutexGuard<'_, TopK> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Exact top-k (keys, higher is better) for the given query rows against all rows, self
/// excluded. Data blocks are packed on the fly, so no extra copy of the input is made.
pub(super) fn exact_queries(prep: &Prepared<'_>, queries: &[usize], k: usize, cancel: &AtomicBool) -> Result<(Vec<u32>, Vec<f32>)> {
    let MatrixView { n, d, .. } = prep.data;
    let bs = EXACT_BLOCK;
    let qb = 1024;
    let mut out_idx = Vec::with_capacity(queries.len() * k);
    let mut out_val = Vec::with_capacity(queries.len() * k);
    for qs in queries.chunks(qb) {
        check_cancel(cancel)?;
        let q = qs.len();
        let mb = round_up(q, PW);
        let mut qa = vec![0.0f32; packed_len(q, d)];
        pack_rows(q, d, |i| prep.row(qs[i]), |i| prep.scale(qs[i]), &mut qa);
        let nblk = n.div_ceil(bs);
        let top = (0..nblk)
            .into_par_iter()
            .fold(
                || (TopK::new(q, k), vec![0.0f32; mb * bs], vec![0.0f32; packed_len(bs, d)]),
                |(mut tk, mut tile, mut bp), b| {
                    if is_cancelled(cancel) {
                        return (tk, tile, bp);
                    }
                    let (j0, j1) = (b * bs, ((b + 1) * bs).min(n));
                    let nc = j1 - j0;
                    let nb = round_up(nc, PW);
                    pack_rows_seq(nc, d, |i| prep.row(j0 + i), |i| prep.scale(j0 + i), &mut bp);
                    gemm_tile(&qa, &bp, d, mb, nb, &mut tile);
                    prep.to_keys(&mut tile, nb, &|r| qs[r], q, j0, nc);
                    for (r, &qi) in qs.iter().enumerate() {
                        tk.scan_row(r, &tile[r * nb..r * nb + nc], j0, qi);
                    }
                    (tk, tile, bp)
                },
            )
            .map(|(tk, _, _)| tk)
            .reduce_with(TopK::merge)
            .expect("n >= 2 gives at least one block");
        out_idx.extend_from_slice(&top.idx);
        out_val.extend_from_slice(&top.vals);
    }
    check_cancel(cancel)?;
    Ok((out_idx, out_val))
}
