//! Dot products between row-major rows, without packing ("pair block" family): blocks of
//! 4 x 4 pairs share their loads (8 loads per 16 fused multiply-adds), for the small,
//! scattered row sets of NN-descent. [`dot1`] and [`cross`] agree bit for bit and
//! `dot(a, b) == dot(b, a)`; the order-independence of NN-descent's list updates relies on it.
//!
//! Reduction order per level, the same for every pair wherever it sits in a block and on
//! either side (d features, W lanes):
//! - AVX-512 (W = 16): one accumulator per pair over the full 16-feature chunks, reduced by
//!   `_mm512_reduce_add_ps`, then the tail (< 16) by scalar fused multiply-adds.
//! - AVX2 (W = 8): as AVX-512 with 8 lanes, reduced as `((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7))`.
//! - Scalar reference (W = 8): multiply then add per lane, the AVX2 lane sum, then the tail
//!   by multiply and add.

/// The 16 dot products `o[r][c] = <a[r], b[c]>`.
///
/// # Safety
/// All eight rows have the same length, and the CPU supports the kernel's level (the
/// functions are only handed out through [`super::kernels`]).
pub(crate) type BlockFn = unsafe fn(&[&[f32]; 4], &[&[f32]; 4], &mut [[f32; 4]; 4]);

/// `out[i * b.len() + j] = <a[i], b[j]>` (all rows of one length).
pub(crate) fn cross(a: &[&[f32]], b: &[&[f32]], out: &mut [f32]) {
    let nb = b.len();
    assert!(out.len() >= a.len() * nb);
    if a.is_empty() || b.is_empty() {
        return;
    }
    let d = a[0].len();
    assert!(a.iter().chain(b).all(|r| r.len() == d));
    let kern = super::kernels().block;
    let mut o = [[0.0f32; 4]; 4];
    // 4 x 4 blocks; short blocks repeat their last row (results dropped).
    for i0 in (0..a.len()).step_by(4) {
        let mi = (a.len() - i0).min(4);
        let xa: [&[f32]; 4] = std::array::from_fn(|t| a[i0 + t.min(mi - 1)]);
        for j0 in (0..nb).step_by(4) {
            let mj = (nb - j0).min(4);
            let xb: [&[f32]; 4] = std::array::from_fn(|t| b[j0 + t.min(mj - 1)]);
            // SAFETY: all rows have length d (asserted above); `kern` matches this CPU.
            unsafe { kern(&xa, &xb, &mut o) };
            for r in 0..mi {
                out[(i0 + r) * nb + j0..(i0 + r) * nb + j0 + mj].copy_from_slice(&o[r][..mj]);
            }
        }
    }
}

/// One pair, bit-identical to its entry in [`cross`].
pub(crate) fn dot1(a: &[f32], b: &[f32]) -> f32 {
    let mut o = [0.0f32];
    cross(&[a], &[b], &mut o);
    o[0]
}

/// Scalar reference block (see the module documentation for the order).
pub(crate) fn block_scalar(a: &[&[f32]; 4], b: &[&[f32]; 4], o: &mut [[f32; 4]; 4]) {
    for r in 0..4 {
        for c in 0..4 {
            o[r][c] = dot_scalar(a[r], b[c]);
        }
    }
}

fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let n8 = a.len() / 8 * 8;
    for (ca, cb) in a[..n8].chunks_exact(8).zip(b[..n8].chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += ca[l] * cb[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    for i in n8..a.len() {
        s += a[i] * b[i];
    }
    s
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{block_avx2, block_avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// 4 x 4 pairs, 16 lanes.
    #[target_feature(enable = "avx512f,fma")]
    pub(crate) unsafe fn block_avx512(a: &[&[f32]; 4], b: &[&[f32]; 4], o: &mut [[f32; 4]; 4]) {
        let d = a[0].len();
        let pa: [*const f32; 4] = std::array::from_fn(|t| a[t].as_ptr());
        let pb: [*const f32; 4] = std::array::from_fn(|t| b[t].as_ptr());
        let mut acc = [[_mm512_setzero_ps(); 4]; 4];
        let mut p = 0;
        while p + 16 <= d {
            let xb: [__m512; 4] = std::array::from_fn(|t| _mm512_loadu_ps(pb[t].add(p)));
            for r in 0..4 {
                let xa = _mm512_loadu_ps(pa[r].add(p));
                for c in 0..4 {
                    acc[r][c] = _mm512_fmadd_ps(xa, xb[c], acc[r][c]);
                }
            }
            p += 16;
        }
        for r in 0..4 {
            for c in 0..4 {
                let mut s = _mm512_reduce_add_ps(acc[r][c]);
                for q in p..d {
                    s = (*pa[r].add(q)).mul_add(*pb[c].add(q), s);
                }
                o[r][c] = s;
            }
        }
    }

    /// 4 x 4 pairs, 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn block_avx2(a: &[&[f32]; 4], b: &[&[f32]; 4], o: &mut [[f32; 4]; 4]) {
        let d = a[0].len();
        let pa: [*const f32; 4] = std::array::from_fn(|t| a[t].as_ptr());
        let pb: [*const f32; 4] = std::array::from_fn(|t| b[t].as_ptr());
        let mut acc = [[_mm256_setzero_ps(); 4]; 4];
        let mut p = 0;
        while p + 8 <= d {
            let xb: [__m256; 4] = std::array::from_fn(|t| _mm256_loadu_ps(pb[t].add(p)));
            for r in 0..4 {
                let xa = _mm256_loadu_ps(pa[r].add(p));
                for c in 0..4 {
                    acc[r][c] = _mm256_fmadd_ps(xa, xb[c], acc[r][c]);
                }
            }
            p += 8;
        }
        for r in 0..4 {
            for c in 0..4 {
                let v = acc[r][c];
                let h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
                let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
                let h = _mm_add_ss(h, _mm_shuffle_ps::<1>(h, h));
                let mut s = _mm_cvtss_f32(h);
                for q in p..d {
                    s = (*pa[r].add(q)).mul_add(*pb[c].add(q), s);
                }
                o[r][c] = s;
            }
        }
    }
}
