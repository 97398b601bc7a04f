//! Dot products between row-major rows, without packing: blocks of 4 x 4 pairs share their
//! loads (8 loads per 16 fused multiply-adds), for the small, scattered row sets of
//! NN-descent. Every pair gets the same arithmetic wherever it sits in a block and on either
//! side (lanes over features, a fixed reduction, then the tail), so [`dot1`] and [`cross`]
//! agree bit for bit and `dot(a, b) == dot(b, a)`; the order-independence of graph updates
//! relies on it.

// Index loops over small register arrays are the clearest way to write micro-kernels.
#![allow(clippy::needless_range_loop)]

/// `out[i * b.len() + j] = <a[i], b[j]>` (all rows of one length).
pub(crate) fn cross(a: &[&[f32]], b: &[&[f32]], out: &mut [f32]) {
    let nb = b.len();
    assert!(out.len() >= a.len() * nb);
    if a.is_empty() || b.is_empty() {
        return;
    }
    let d = a[0].len();
    assert!(a.iter().chain(b).all(|r| r.len() == d));
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY (kernel): feature detected; all rows have length d.
            blocks(a, b, out, |x, y, o| unsafe { x86::block_avx512(x, y, o) });
            return;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY (kernel): features detected; all rows have length d.
            blocks(a, b, out, |x, y, o| unsafe { x86::block_avx2(x, y, o) });
            return;
        }
    }
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            out[i * nb + j] = dot_scalar(x, y);
        }
    }
}

/// One pair, bit-identical to its entry in [`cross`].
pub(crate) fn dot1(a: &[f32], b: &[f32]) -> f32 {
    let mut o = [0.0f32];
    cross(&[a], &[b], &mut o);
    o[0]
}

/// Cut `a x b` into 4 x 4 blocks; short blocks repeat their last row (results dropped).
#[cfg(target_arch = "x86_64")]
fn blocks<F>(a: &[&[f32]], b: &[&[f32]], out: &mut [f32], kern: F)
where
    F: Fn(&[&[f32]; 4], &[&[f32]; 4], &mut [[f32; 4]; 4]),
{
    let nb = b.len();
    let mut o = [[0.0f32; 4]; 4];
    for i0 in (0..a.len()).step_by(4) {
        let mi = (a.len() - i0).min(4);
        let xa: [&[f32]; 4] = std::array::from_fn(|t| a[i0 + t.min(mi - 1)]);
        for j0 in (0..nb).step_by(4) {
            let mj = (nb - j0).min(4);
            let xb: [&[f32]; 4] = std::array::from_fn(|t| b[j0 + t.min(mj - 1)]);
            kern(&xa, &xb, &mut o);
            for r in 0..mi {
                out[(i0 + r) * nb + j0..(i0 + r) * nb + j0 + mj].copy_from_slice(&o[r][..mj]);
            }
        }
    }
}

/// Portable version: 8 lanes, plain multiply and add, the same reduction shape.
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
mod x86 {
    use std::arch::x86_64::*;

    /// 4 x 4 pairs, 16 lanes: per pair, lane-wise FMAs over 16-feature chunks, the fixed
    /// `_mm512_reduce_add_ps` reduction, then the tail (< 16 features) by scalar FMAs.
    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn block_avx512(a: &[&[f32]; 4], b: &[&[f32]; 4], o: &mut [[f32; 4]; 4]) {
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

    /// As `block_avx512` with 8 lanes and a fixed pairwise reduction.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block_avx2(a: &[&[f32]; 4], b: &[&[f32]; 4], o: &mut [[f32; 4]; 4]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_matches_naive_and_dot1_bitwise() {
        for d in [1usize, 7, 16, 23, 40, 384] {
            let rows: Vec<Vec<f32>> = (0..11).map(|i| (0..d).map(|p| (((i * 31 + p * 17) % 23) as f32 - 11.0) / 7.0).collect()).collect();
            let r: Vec<&[f32]> = rows.iter().map(|v| v.as_slice()).collect();
            let (a, b) = (&r[..5], &r[2..]);
            let mut out = vec![0.0; a.len() * b.len()];
            cross(a, b, &mut out);
            for i in 0..a.len() {
                for j in 0..b.len() {
                    let want: f64 = a[i].iter().zip(b[j]).map(|(&x, &y)| x as f64 * y as f64).sum();
                    let got = out[i * b.len() + j];
                    assert!((got as f64 - want).abs() < 1e-3 * (1.0 + want.abs()), "d={d} {i} {j}");
                    assert_eq!(got.to_bits(), dot1(a[i], b[j]).to_bits());
                    assert_eq!(got.to_bits(), dot1(b[j], a[i]).to_bits());
                }
            }
        }
    }
}
