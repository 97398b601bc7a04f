//! The packed-panel layout shared by both operands of the GEMM tile.
//!
//! Rows are grouped in panels of [`PW`] rows; inside a panel, for every feature `p` the `PW`
//! row values are contiguous (`panel[p * PW + r]`). Missing rows of the last panel are zero.
//! The A side broadcasts single values, the B side loads whole vectors of `PW` columns.

use rayon::prelude::*;

/// Rows per packed panel.
pub(crate) const PW: usize = 16;

#[inline]
pub(crate) fn round_up(x: usize, m: usize) -> usize {
    x.div_ceil(m) * m
}

/// Length of the packed buffer for `m` rows of dimension `d`.
#[inline]
pub(crate) fn packed_len(m: usize, d: usize) -> usize {
    round_up(m, PW) * d
}

/// Pack `m` rows (`row(i)` of length `d`, each multiplied by `scale(i)`) into `out`
/// (length `packed_len(m, d)`). Parallel over panels.
pub(crate) fn pack_rows<'a, R, S>(m: usize, d: usize, row: R, scale: S, out: &mut [f32])
where
    R: Fn(usize) -> &'a [f32] + Sync,
    S: Fn(usize) -> f32 + Sync,
{
    debug_assert_eq!(out.len(), packed_len(m, d));
    out.par_chunks_mut(PW * d).enumerate().for_each(|(q, panel)| pack_panel(q, m, d, &row, &scale, panel));
}

/// Sequential version of [`pack_rows`] (used inside already-parallel loops).
pub(crate) fn pack_rows_seq<'a, R, S>(m: usize, d: usize, row: R, scale: S, out: &mut [f32])
where
    R: Fn(usize) -> &'a [f32],
    S: Fn(usize) -> f32,
{
    debug_assert!(out.len() >= packed_len(m, d));
    for (q, panel) in out[..packed_len(m, d)].chunks_mut(PW * d).enumerate() {
        pack_panel(q, m, d, &row, &scale, panel);
    }
}

#[inline]
fn pack_panel<'a, R, S>(q: usize, m: usize, d: usize, row: &R, scale: &S, panel: &mut [f32])
where
    R: Fn(usize) -> &'a [f32],
    S: Fn(usize) -> f32,
{
    for r in 0..PW {
        let i = q * PW + r;
        if i < m {
            let s = scale(i);
            for (p, &v) in row(i).iter().enumerate() {
                panel[p * PW + r] = v * s;
            }
        } else {
            for p in 0..d {
                panel[p * PW + r] = 0.0;
            }
        }
    }
}
