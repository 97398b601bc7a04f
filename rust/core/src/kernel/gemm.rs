//! GEMM tile `c = a b^T` over packed panels (layout in [`super::pack`]).
//!
//! Reduction order, every level: each output entry has its own accumulator, fed over the
//! features `p = 0..d` in ascending order (fused multiply-add on AVX2/AVX-512, multiply then
//! add in the scalar reference). An entry's value thus depends on its two rows only, not on
//! its position in the tile or the micro-tile shape, so identical rows give bit-identical
//! scores (ties are then broken by index).

use super::pack::PW;

/// `c[i * nb + j] = sum_p a_i[p] * b_j[p]` for a packed `a` of `mb` rows and a packed `b`
/// of `nb` rows (`mb`, `nb` multiples of [`PW`]).
pub(crate) type TileFn = fn(&[f32], &[f32], usize, usize, usize, &mut [f32]);

/// The tile of this CPU's level (see [`TileFn`]).
#[inline]
pub(crate) fn gemm_tile(a: &[f32], b: &[f32], d: usize, mb: usize, nb: usize, c: &mut [f32]) {
    (super::kernels().tile)(a, b, d, mb, nb, c)
}

/// The shape contract of [`TileFn`]; the intrinsic kernels rely on it.
fn check_tile(a: &[f32], b: &[f32], d: usize, mb: usize, nb: usize, c: &[f32]) {
    assert!(mb.is_multiple_of(PW) && nb.is_multiple_of(PW));
    assert!(a.len() >= mb * d && b.len() >= nb * d && c.len() >= mb * nb);
}

/// Scalar reference: micro-tiles of 4 rows x [`PW`] columns.
pub(crate) fn tile_scalar(a: &[f32], b: &[f32], d: usize, mb: usize, nb: usize, c: &mut [f32]) {
    check_tile(a, b, d, mb, nb, c);
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

#[cfg(target_arch = "x86_64")]
pub(crate) fn tile_avx512(a: &[f32], b: &[f32], d: usize, mb: usize, nb: usize, c: &mut [f32]) {
    check_tile(a, b, d, mb, nb, c);
    // SAFETY: only in the table of a CPU with AVX-512F; slice bounds checked above.
    unsafe { x86::tile_avx512(a.as_ptr(), b.as_ptr(), d, mb, nb, c.as_mut_ptr()) }
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn tile_avx2(a: &[f32], b: &[f32], d: usize, mb: usize, nb: usize, c: &mut [f32]) {
    check_tile(a, b, d, mb, nb, c);
    // SAFETY: only in the table of a CPU with AVX2 and FMA; slice bounds checked above.
    unsafe { x86::tile_avx2(a.as_ptr(), b.as_ptr(), d, mb, nb, c.as_mut_ptr()) }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::PW;
    use std::arch::x86_64::*;

    /// Micro-tile shape (rows x vectors of 16 columns), chosen by measurement.
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
}
