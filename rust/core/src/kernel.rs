//! Dense compute kernels: a packed-panel GEMM tile (`C = A B^T`) and a dot product,
//! each with runtime CPU-feature dispatch (AVX-512F, AVX2+FMA on x86_64) and a portable
//! scalar fallback.
//!
//! Packed layout: rows are grouped in panels of [`PW`] rows; inside a panel, for every
//! feature `p` the `PW` row values are contiguous (`panel[p * PW + r]`). Missing rows of the
//! last panel are zero. The same layout serves both operands: the A side broadcasts single
//! values, the B side loads whole vectors of `PW` columns.
//!
//! Every output entry accumulates over `p = 0..d` in the same order, whatever its position in
//! the tile, so identical rows give bit-identical scores (ties are then broken by index).

// Index loops over small register arrays are the clearest way to write micro-kernels.
#![allow(clippy::needless_range_loop)]

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

/// `c[i * nb + j] = sum_p a_i[p] * b_j[p]` for a packed `a` of `mb` rows and a packed `b` of
/// `nb` rows (`mb`, `nb` multiples of [`PW`]).
pub(crate) fn gemm_tile(a: &[f32], b: &[f32], d: usize, mb: usize, nb: usize, c: &mut [f32]) {
    #[allow(clippy::manual_is_multiple_of)] // is_multiple_of needs Rust 1.87
    let aligned = mb % PW == 0 && nb % PW == 0;
    assert!(aligned);
    assert!(a.len() >= mb * d && b.len() >= nb * d && c.len() >= mb * nb);
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: feature detected; slice bounds asserted above.
            unsafe { x86::tile_avx512(a.as_ptr(), b.as_ptr(), d, mb, nb, c.as_mut_ptr()) };
            return;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            unsafe { x86::tile_avx2(a.as_ptr(), b.as_ptr(), d, mb, nb, c.as_mut_ptr()) };
            return;
        }
    }
    tile_scalar(a, b, d, mb, nb, c);
}

fn tile_scalar(a: &[f32], b: &[f32], d: usize, mb: usize, nb: usize, c: &mut [f32]) {
    const MR: usize = 4;
    for i in (0..mb).step_by(MR) {
        let ap = &a[(i / PW) * PW * d..];
        let ro = i % PW;
        for jp in (0..nb).step_by(PW) {
            let bp = &b[jp * d..jp * d + PW * d];
            let mut acc = [[0.0f32; PW]; MR];
            for p in 0..d {
                let bv = &bp[p * PW..p * PW + PW];
                for r in 0..MR {
                    let av = ap[p * PW + ro + r];
                    for v in 0..PW {
                        acc[r][v] += av * bv[v];
                    }
                }
            }
            for r in 0..MR {
                c[(i + r) * nb + jp..(i + r) * nb + jp + PW].copy_from_slice(&acc[r]);
            }
        }
    }
}

/// Dot product of two equal-length vectors, accumulated in a fixed order.
pub(crate) type DotFn = fn(&[f32], &[f32]) -> f32;

/// The fastest dot product this CPU supports (chosen once per call site).
pub(crate) fn dot_fn() -> DotFn {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return x86::dot_avx512_safe;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return x86::dot_avx2_safe;
        }
    }
    dot_scalar
}

/// Four dot products of `a` with `b[0..4]`, each bit-identical to what [`dot_fn`] returns
/// for that pair (same per-pair arithmetic; `a` is only loaded once).
pub(crate) type Dot4Fn = fn(&[f32], [&[f32]; 4]) -> [f32; 4];

pub(crate) fn dot4_fn() -> Dot4Fn {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return x86::dot4_avx512_safe;
        }
    }
    dot4_generic
}

fn dot4_generic(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    let f = dot_fn();
    [f(a, b[0]), f(a, b[1]), f(a, b[2]), f(a, b[3])]
}

pub(crate) fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let n8 = a.len() / 8 * 8;
    for (ca, cb) in a[..n8].chunks_exact(8).zip(b[..n8].chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += ca[l] * cb[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for i in n8..a.len() {
        s += a[i] * b[i];
    }
    s
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::PW;
    use std::arch::x86_64::*;

    /// Micro-tile shape, chosen by measurement (env `SW2S_MR`/`SW2S_V` for experiments).
    const MR512: usize = 4;
    const V512: usize = 6;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_avx512(a: *const f32, b: *const f32, d: usize, mb: usize, nb: usize, c: *mut f32) {
        let mut i = 0;
        while i < mb {
            let ap = a.add((i / PW) * PW * d + i % PW);
            let mut j = 0;
            while j + V512 * PW <= nb {
                micro_avx512::<MR512, V512>(ap, b.add(j * d), d, c.add(i * nb + j), nb);
                j += V512 * PW;
            }
            while j + 2 * PW <= nb {
                micro_avx512::<MR512, 2>(ap, b.add(j * d), d, c.add(i * nb + j), nb);
                j += 2 * PW;
            }
            if j < nb {
                micro_avx512::<MR512, 1>(ap, b.add(j * d), d, c.add(i * nb + j), nb);
            }
            i += MR512;
        }
    }

    /// MR rows x (16 * V) columns.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn micro_avx512<const MR: usize, const V: usize>(a: *const f32, b: *const f32, d: usize, c: *mut f32, ldc: usize) {
        let mut acc = [[_mm512_setzero_ps(); V]; MR];
        for p in 0..d {
            let mut bv = [_mm512_setzero_ps(); V];
            for v in 0..V {
                bv[v] = _mm512_loadu_ps(b.add(v * PW * d + p * PW));
            }
            for r in 0..MR {
                let av = _mm512_set1_ps(*a.add(p * PW + r));
                for v in 0..V {
                    acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
                }
            }
        }
        for r in 0..MR {
            for v in 0..V {
                _mm512_storeu_ps(c.add(r * ldc + v * PW), acc[r][v]);
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_avx2(a: *const f32, b: *const f32, d: usize, mb: usize, nb: usize, c: *mut f32) {
        let mut i = 0;
        while i < mb {
            let ap = a.add((i / PW) * PW * d + i % PW);
            let mut j = 0;
            while j < nb {
                micro_avx2(ap, b.add(j * d), d, c.add(i * nb + j), nb);
                j += PW;
            }
            i += 4;
        }
    }

    /// 4 rows x 16 columns.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn micro_avx2(a: *const f32, b: *const f32, d: usize, c: *mut f32, ldc: usize) {
        let mut acc = [[_mm256_setzero_ps(); 2]; 4];
        for p in 0..d {
            let b0 = _mm256_loadu_ps(b.add(p * PW));
            let b1 = _mm256_loadu_ps(b.add(p * PW + 8));
            for r in 0..4 {
                let av = _mm256_broadcast_ss(&*a.add(p * PW + r));
                acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
            }
        }
        for r in 0..4 {
            _mm256_storeu_ps(c.add(r * ldc), acc[r][0]);
            _mm256_storeu_ps(c.add(r * ldc + 8), acc[r][1]);
        }
    }

    pub(super) fn dot_avx512_safe(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        // SAFETY: only handed out after the feature was detected; lengths checked.
        unsafe { dot_avx512(a, b) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        while i + 32 <= n {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)), acc1);
            i += 32;
        }
        if i + 16 <= n {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
            i += 16;
        }
        if i < n {
            let m: __mmask16 = ((1u32 << (n - i)) - 1) as __mmask16;
            acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, pa.add(i)), _mm512_maskz_loadu_ps(m, pb.add(i)), acc1);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }

    pub(super) fn dot4_avx512_safe(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
        for x in &b {
            assert_eq!(a.len(), x.len());
        }
        // SAFETY: only handed out after the feature was detected; lengths checked.
        unsafe { dot4_avx512(a, b) }
    }

    /// Mirrors `dot_avx512` pair by pair (same chunks, same accumulators, same reduction).
    #[target_feature(enable = "avx512f")]
    unsafe fn dot4_avx512(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
        let n = a.len();
        let pa = a.as_ptr();
        let pb = [b[0].as_ptr(), b[1].as_ptr(), b[2].as_ptr(), b[3].as_ptr()];
        let mut acc0 = [_mm512_setzero_ps(); 4];
        let mut acc1 = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            let x0 = _mm512_loadu_ps(pa.add(i));
            let x1 = _mm512_loadu_ps(pa.add(i + 16));
            for t in 0..4 {
                acc0[t] = _mm512_fmadd_ps(x0, _mm512_loadu_ps(pb[t].add(i)), acc0[t]);
                acc1[t] = _mm512_fmadd_ps(x1, _mm512_loadu_ps(pb[t].add(i + 16)), acc1[t]);
            }
            i += 32;
        }
        if i + 16 <= n {
            let x0 = _mm512_loadu_ps(pa.add(i));
            for t in 0..4 {
                acc0[t] = _mm512_fmadd_ps(x0, _mm512_loadu_ps(pb[t].add(i)), acc0[t]);
            }
            i += 16;
        }
        if i < n {
            let m: __mmask16 = ((1u32 << (n - i)) - 1) as __mmask16;
            let x = _mm512_maskz_loadu_ps(m, pa.add(i));
            for t in 0..4 {
                acc1[t] = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, pb[t].add(i)), acc1[t]);
            }
        }
        let mut out = [0.0f32; 4];
        for t in 0..4 {
            out[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[t], acc1[t]));
        }
        out
    }

    pub(super) fn dot_avx2_safe(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        // SAFETY: only handed out after the features were detected; lengths checked.
        unsafe { dot_avx2(a, b) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)), acc1);
            i += 16;
        }
        let v = _mm256_add_ps(acc0, acc1);
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), v);
        let mut s = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
        while i < n {
            s = (*pa.add(i)).mul_add(*pb.add(i), s);
            i += 1;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_matches_naive_all_paths() {
        let (m, n, d) = (37, 50, 23);
        let x: Vec<f32> = (0..m * d).map(|i| ((i * 7919) % 113) as f32 / 50.0 - 1.0).collect();
        let y: Vec<f32> = (0..n * d).map(|i| ((i * 104729) % 97) as f32 / 40.0 - 1.0).collect();
        let (mb, nb) = (round_up(m, PW), round_up(n, PW));
        let mut a = vec![0.0; packed_len(m, d)];
        let mut b = vec![0.0; packed_len(n, d)];
        pack_rows(m, d, |i| &x[i * d..(i + 1) * d], |_| 1.0, &mut a);
        pack_rows_seq(n, d, |i| &y[i * d..(i + 1) * d], |_| 1.0, &mut b);
        let mut c1 = vec![0.0; mb * nb];
        let mut c2 = vec![0.0; mb * nb];
        gemm_tile(&a, &b, d, mb, nb, &mut c1);
        tile_scalar(&a, &b, d, mb, nb, &mut c2);
        let mut c3 = vec![0.0; mb * nb];
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: features detected; buffers sized above.
            unsafe { x86::tile_avx2(a.as_ptr(), b.as_ptr(), d, mb, nb, c3.as_mut_ptr()) };
            for (u, v) in c1.iter().zip(&c3) {
                assert!((u - v).abs() < 1e-4);
            }
            let (p, q) = (&x[..d], &y[..d]);
            assert!((x86::dot_avx2_safe(p, q) - dot_scalar(p, q)).abs() < 1e-4);
        }
        let dot = dot_fn();
        for i in 0..m {
            for j in 0..n {
                let r: f32 = (0..d).map(|p| x[i * d + p] * y[j * d + p]).sum();
                assert!((c1[i * nb + j] - r).abs() < 1e-4, "{i} {j}");
                assert!((c2[i * nb + j] - r).abs() < 1e-4);
                assert!((dot(&x[i * d..(i + 1) * d], &y[j * d..(j + 1) * d]) - r).abs() < 1e-4);
                assert!((dot_scalar(&x[i * d..(i + 1) * d], &y[j * d..(j + 1) * d]) - r).abs() < 1e-4);
                let b = &y[j * d..(j + 1) * d];
                let four = dot4_fn()(&x[i * d..(i + 1) * d], [b, b, b, b]);
                assert!(four.iter().all(|&v| v.to_bits() == dot(&x[i * d..(i + 1) * d], b).to_bits()));
            }
        }
    }
}
