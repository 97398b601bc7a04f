//! Exact all-pairs search under cosine with a bf16 first pass (AVX512_BF16, detected at run
//! time; opt-in, see [`EXACT_BF16_ENV`]), giving exactly the fp32 path's result.
//!
//! Pass 1 computes every pair's dot product `b` from the rows rounded to bf16
//! (`vdpbf16ps`, fp32 accumulation), over the same upper triangle of block pairs as
//! [`super::exact::exact_all`]. Pass 2 recomputes, with the fp32 GEMM tile (bit-identical to
//! the fp32 path's value of the pair), every candidate whose `b` is within `2E` of the row's
//! k-th best `b`, and keeps the best k by (key desc, index asc), as the fp32 path does.
//!
//! Why that is exact. Let `s` be the fp32 path's value of a pair and `E` a bound on `|b - s|`.
//! If `T` is a row's k-th best `b`, the k pairs with `b >= T` have `s >= T - E`, and a pair
//! with `b < T - 2E` has `s < T - E`: k pairs beat it strictly, so it is not in the fp32 top k,
//! whatever the tie rule. Pass 1 drops a pair only when `b` is below the row's running k-th
//! best minus `2E`, which is at most the final `T - 2E`.
//!
//! The bound ([`error_bound`]), for packed fp32 rows `x`, `y` (norms at most `m`, d features):
//! bf16 rounding (unit roundoff `u = 2^-8`) moves each product by at most
//! `(2u + u^2)|x_p y_p|`, in all at most `(2u + u^2) m^2` (Cauchy-Schwarz); the bf16 products
//! are exact in fp32 and summed with at most d roundings, `gamma_d (1 + u)^2 m^2`
//! (`gamma_d = d 2^-24 / (1 - d 2^-24)`); the fp32 path's own FMA chain errs by at most
//! `gamma_d m^2`; flushed subnormals add at most `d 2^-125`. Under cosine `m` is about 1, so
//! `E` is about `2^-7`.

use super::exact::{for_each_block_pair, BlockPair};
use super::prepared::Prepared;
use super::topk::TopK;
use super::types::Metric;
use crate::cancel::check_cancel;
use crate::kernel::{gemm_tile, pack_rows_seq, packed_len, round_up, PW};
use crate::{CoreError, MatrixView, Result};
use rayon::prelude::*;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

/// Rows per block (one tile is `BLOCK x BLOCK`), as the fp32 path.
const BLOCK: usize = 256;

/// Environment variable choosing the exact path: unset or `0` fp32, `1` the bf16 first pass
/// (where the CPU has AVX512_BF16 and the metric is cosine; fp32 otherwise). Opt-in because on
/// AMD Zen 4 (this project's machine) `vdpbf16ps` adds two products per lane at half the rate
/// of `vfmadd`, so the first pass is no faster than the fp32 GEMM and the re-rank is extra.
pub const EXACT_BF16_ENV: &str = "SW2S_EXACT_BF16";

/// Whether the bf16 path runs for this input (see [`EXACT_BF16_ENV`]); an error for a value
/// of the variable other than `0` or `1`.
pub(super) fn usable(prep: &Prepared<'_>) -> Result<bool> {
    let on = match std::env::var(EXACT_BF16_ENV) {
        Err(_) => false,
        Ok(v) if v == "0" || v.is_empty() => false,
        Ok(v) if v == "1" => true,
        Ok(v) => return Err(CoreError::InvalidParameter(format!("{EXACT_BF16_ENV}={v:?} must be 0 or 1"))),
    };
    Ok(on && prep.metric == Metric::Cosine && cpu_has_bf16())
}

/// AVX-512F and AVX512_BF16 (detected once).
pub(crate) fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bf16"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// fp32 -> bf16, round to nearest even (inputs are finite).
#[inline]
fn to_bf16(v: f32) -> u16 {
    let u = v.to_bits();
    ((u + 0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// `E` of the module doc for `d` features and row norms at most `m`.
pub(super) fn error_bound(d: usize, m: f64) -> f32 {
    let u = 2f64.powi(-8);
    let e = (d as f64) * 2f64.powi(-24);
    let gamma = e / (1.0 - e);
    let m2 = m * m;
    let b = (2.0 * u + u * u) * m2 + gamma * ((1.0 + u) * (1.0 + u) + 1.0) * m2 + d as f64 * 2f64.powi(-125);
    // evaluated in f64; widened by 1% against its own rounding
    (b * 1.01) as f32
}

/// Pack `m` rows (fp32 panel layout of [`crate::kernel`], `PW` rows per panel) as bf16 pairs:
/// `out[panel][p2 * PW + r]` holds features `2 p2` (low half) and `2 p2 + 1` of row `r`.
fn pack_bf16(rows: &[f32], m: usize, d: usize, out: &mut [u32]) {
    let d2 = d.div_ceil(2);
    out.par_chunks_mut(PW * d2).enumerate().for_each(|(q, panel)| {
        for r in 0..PW {
            let i = q * PW + r;
            for p2 in 0..d2 {
                let (lo, hi) = if i < m {
                    let x = &rows[i * d..(i + 1) * d];
                    (to_bf16(x[2 * p2]), if 2 * p2 + 1 < d { to_bf16(x[2 * p2 + 1]) } else { 0 })
                } else {
                    (0, 0)
                };
                panel[p2 * PW + r] = lo as u32 | (hi as u32) << 16;
            }
        }
    });
}

/// Per-row candidates of pass 1: the running best k of `b` (for the threshold) and every
/// pair kept so far.
struct Cands {
    top: TopK,
    list: Vec<Vec<(f32, u32)>>,
    k: usize,
    e2: f32,
}

impl Cands {
    fn new(rows: usize, k: usize, e2: f32) -> Self {
        Self { top: TopK::new(rows, k), list: vec![Vec::new(); rows], k, e2 }
    }

    /// The row's running k-th best `b` minus `2E` (-inf until k are seen).
    #[inline]
    fn cut(&self, r: usize) -> f32 {
        self.top.vals[r * self.k + self.k - 1] - self.e2
    }

    #[inline]
    fn offer(&mut self, r: usize, b: f32, j: u32) {
        self.list[r].push((b, j));
        let p = r * self.k + self.k - 1;
        if b > self.top.vals[p] || (b == self.top.vals[p] && j < self.top.idx[p]) {
            self.top.insert(r, b, j);
        }
    }

    /// Drop what the current threshold rules out, once a row's list has grown.
    #[inline]
    fn prune(&mut self, r: usize) {
        if self.list[r].len() > 8 * self.k + 256 {
            let c = self.cut(r);
            self.list[r].retain(|&(b, _)| b >= c);
        }
    }
}

/// Exact all-pairs top-k under cosine: the fp32 path's result (see the module doc).
pub(super) fn exact_all_bf16(prep: &Prepared<'_>, k: usize, cancel: &AtomicBool) -> Result<(Vec<u32>, Vec<f32>)> {
    let MatrixView { n, d, .. } = prep.data;
    // fp32 rows exactly as the fp32 path packs them (row times scale), row-major
    let mut x = vec![0.0f32; n * d];
    x.par_chunks_mut(d).enumerate().for_each(|(i, r)| {
        let s = prep.scale(i);
        r.iter_mut().zip(prep.row(i)).for_each(|(o, &v)| *o = v * s);
    });
    let m = x.par_chunks(d).map(|r| r.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt()).reduce(|| 0.0, f64::max);
    let e2 = 2.0 * error_bound(d, m);
    let d2 = d.div_ceil(2);
    let mut packed = vec![0u32; round_up(n, PW) * d2];
    pack_bf16(&x, n, d, &mut packed);
    check_cancel(cancel)?;

    let lists: Vec<Mutex<Cands>> =
        (0..n.div_ceil(BLOCK)).map(|b| Mutex::new(Cands::new(BLOCK.min(n - b * BLOCK), k, e2))).collect();
    for_each_block_pair(n, BLOCK, cancel, || vec![0.0f32; BLOCK * BLOCK],
        |tile, t| {
            let BlockPair { bi, bj, i0, j0, mr, nc, mb, nb } = t;
            tile_bf16(&packed[i0 * d2..], &packed[j0 * d2..], d2, mb, nb, tile);
            {
                let mut l = lock(&lists[bi]);
                for r in 0..mr {
                    let (row, mut cut) = (&tile[r * nb..r * nb + nc], l.cut(r));
                    for (c, &b) in row.iter().enumerate() {
                        if b >= cut && j0 + c != i0 + r {
                            l.offer(r, b, (j0 + c) as u32);
                            cut = l.cut(r);
                        }
                    }
                    l.prune(r);
                }
            }
            if bi != bj {
                let mut l = lock(&lists[bj]);
                for c in 0..nc {
                    let mut cut = l.cut(c);
                    for r in 0..mr {
                        let b = tile[r * nb + c];
                        if b >= cut {
                            l.offer(c, b, (i0 + r) as u32);
                            cut = l.cut(c);
                        }
                    }
                    l.prune(c);
                }
            }
        },
    );
    check_cancel(cancel)?;

    // Pass 2: fp32 re-rank of the survivors, per block of rows.
    let mut idx = vec![0u32; n * k];
    let mut vals = vec![0.0f32; n * k];
    let lists: Vec<Cands> = lists.into_iter().map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner())).collect();
    idx.par_chunks_mut(BLOCK * k).zip(vals.par_chunks_mut(BLOCK * k)).zip(lists.par_iter()).enumerate().for_each_init(
        || (Vec::<f32>::new(), Vec::<f32>::new(), Vec::<f32>::new()),
        |(qa, cb, tile), (b, ((oi, ov), cands))| {
            let i0 = b * BLOCK;
            let rows = oi.len() / k;
            let mut top = TopK::new(rows, k);
            qa.resize(packed_len(1, d), 0.0);
            for r in 0..rows {
                let i = i0 + r;
                let cut = cands.cut(r);
                let js: Vec<u32> = cands.list[r].iter().filter(|&&(bv, _)| bv >= cut).map(|&(_, j)| j).collect();
                pack_rows_seq(1, d, |_| &x[i * d..(i + 1) * d], |_| 1.0, qa);
                cb.resize(packed_len(js.len(), d), 0.0);
                pack_rows_seq(js.len(), d, |t| &x[js[t] as usize * d..(js[t] as usize + 1) * d], |_| 1.0, cb);
                let nb = round_up(js.len(), PW);
                tile.resize(PW * nb, 0.0);
                gemm_tile(qa, cb, d, PW, nb, tile);
                for (t, &j) in js.iter().enumerate() {
                    let s = tile[t];
                    let p = r * k + k - 1;
                    if s > top.vals[p] || (s == top.vals[p] && j < top.idx[p]) {
                        top.insert(r, s, j);
                    }
                }
            }
            oi.copy_from_slice(&top.idx);
            ov.copy_from_slice(&top.vals);
        },
    );
    Ok((idx, vals))
}

fn lock(m: &Mutex<Cands>) -> std::sync::MutexGuard<'_, Cands> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `c[i * nb + j] = b(row i of a, row j of b)` for bf16-pair panels of `mb` and `nb` rows
/// (multiples of [`PW`]) and `d2` feature pairs.
fn tile_bf16(a: &[u32], b: &[u32], d2: usize, mb: usize, nb: usize, c: &mut [f32]) {
    assert!(mb.is_multiple_of(PW) && nb.is_multiple_of(PW));
    assert!(a.len() >= mb * d2 && b.len() >= nb * d2 && c.len() >= mb * nb);
    assert!(cpu_has_bf16(), "bf16 tile called on a CPU without AVX512_BF16");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX-512F and AVX512_BF16 (asserted); bounds checked above.
    unsafe {
        x86::tile(a.as_ptr(), b.as_ptr(), d2, mb, nb, c.as_mut_ptr())
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::PW;
    use std::arch::x86_64::*;

    const MR: usize = 4;
    const V: usize = 6;

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn tile(a: *const u32, b: *const u32, d2: usize, mb: usize, nb: usize, c: *mut f32) {
        let mut i = 0;
        while i < mb {
            let ap = a.add((i / PW) * PW * d2 + i % PW);
            let mut j = 0;
            while j + V * PW <= nb {
                micro::<V>(ap, b.add(j * d2), d2, c.add(i * nb + j), nb);
                j += V * PW;
            }
            while j + 2 * PW <= nb {
                micro::<2>(ap, b.add(j * d2), d2, c.add(i * nb + j), nb);
                j += 2 * PW;
            }
            if j < nb {
                micro::<1>(ap, b.add(j * d2), d2, c.add(i * nb + j), nb);
            }
            i += MR;
        }
    }

    /// MR rows x (16 * W) columns; one `vdpbf16ps` adds two features' products per lane.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    unsafe fn micro<const W: usize>(a: *const u32, b: *const u32, d2: usize, c: *mut f32, ldc: usize) {
        let mut acc = [[_mm512_setzero_ps(); W]; MR];
        for p in 0..d2 {
            let mut bv = [_mm512_setzero_si512(); W];
            for v in 0..W {
                bv[v] = _mm512_loadu_si512(b.add(v * PW * d2 + p * PW) as *const _);
            }
            for r in 0..MR {
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(p * PW + r) as i32));
                for v in 0..W {
                    acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, std::mem::transmute::<__m512i, __m512bh>(bv[v]));
                }
            }
        }
        for r in 0..MR {
            for v in 0..W {
                _mm512_storeu_ps(c.add(r * ldc + v * PW), acc[r][v]);
            }
        }
    }
}
