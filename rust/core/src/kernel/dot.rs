//! Dot product of two rows ("row dot" family), and four at once sharing the loads of the
//! first row. `dot4` repeats `dot`'s arithmetic pair by pair, so both agree bit for bit.
//!
//! Reduction order per level (n features):
//! - AVX-512: two 16-lane accumulators take alternate 16-feature chunks (`acc0` the even
//!   ones, `acc1` the odd ones); a last full chunk goes to `acc0`, the masked tail (< 16)
//!   to `acc1`; then `acc0 + acc1` lane-wise and `_mm512_reduce_add_ps`.
//! - AVX2: two 8-lane accumulators take alternate 8-feature chunks of whole 16-feature
//!   steps; `acc0 + acc1` lane-wise, lanes summed as `((l0+l4)+(l1+l5))+((l2+l6)+(l3+l7))`,
//!   then the tail (< 16) by scalar fused multiply-adds.
//! - Scalar reference: 8 lanes over 8-feature chunks (multiply, then add), the AVX2 lane
//!   sum, then the tail (< 8) by multiply and add.

/// Dot product of two equal-length rows.
pub(crate) type DotFn = fn(&[f32], &[f32]) -> f32;

/// Four dot products of `a` with `b[0..4]`, each equal bit for bit to the level's [`DotFn`].
pub(crate) type Dot4Fn = fn(&[f32], [&[f32]; 4]) -> [f32; 4];

pub(crate) fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
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

pub(crate) fn dot4_scalar(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    b.map(|x| dot_scalar(a, x))
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    // SAFETY: only in the table of a CPU with AVX2 and FMA; lengths checked.
    unsafe { x86::dot_avx2(a, b) }
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn dot4_avx2(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    b.map(|x| dot_avx2(a, x))
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    // SAFETY: only in the table of a CPU with AVX-512F; lengths checked.
    unsafe { x86::dot_avx512(a, b) }
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn dot4_avx512(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    for x in &b {
        assert_eq!(a.len(), x.len());
    }
    // SAFETY: only in the table of a CPU with AVX-512F; lengths checked.
    unsafe { x86::dot4_avx512(a, b) }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
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

    /// Mirrors `dot_avx512` pair by pair (same chunks, same accumulators, same reduction).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot4_avx512(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
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

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
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
