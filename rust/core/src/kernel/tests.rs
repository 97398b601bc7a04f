//! Every level's kernels against naive sums, and the bit-for-bit agreements each family
//! promises within a level.

use super::*;
use crate::cpu::supported_levels;

#[test]
fn tile_and_dot_match_naive_all_levels() {
    let (m, n, d) = (37, 50, 23);
    let x: Vec<f32> = (0..m * d).map(|i| ((i * 7919) % 113) as f32 / 50.0 - 1.0).collect();
    let y: Vec<f32> = (0..n * d).map(|i| ((i * 104729) % 97) as f32 / 40.0 - 1.0).collect();
    let (mb, nb) = (round_up(m, PW), round_up(n, PW));
    let mut a = vec![0.0; packed_len(m, d)];
    let mut b = vec![0.0; packed_len(n, d)];
    pack_rows(m, d, |i| &x[i * d..(i + 1) * d], |_| 1.0, &mut a);
    pack_rows_seq(n, d, |i| &y[i * d..(i + 1) * d], |_| 1.0, &mut b);
    for level in supported_levels() {
        let k = Kernels::for_level(level);
        let mut c = vec![0.0; mb * nb];
        (k.tile)(&a, &b, d, mb, nb, &mut c);
        for i in 0..m {
            let xi = &x[i * d..(i + 1) * d];
            for j in 0..n {
                let yj = &y[j * d..(j + 1) * d];
                let r: f32 = (0..d).map(|p| xi[p] * yj[p]).sum();
                assert!((c[i * nb + j] - r).abs() < 1e-4, "{level:?} {i} {j}");
                let dot = (k.dot)(xi, yj);
                assert!((dot - r).abs() < 1e-4, "{level:?} {i} {j}");
                let four = (k.dot4)(xi, [yj, yj, yj, yj]);
                assert!(four.iter().all(|&v| v.to_bits() == dot.to_bits()), "{level:?}");
            }
        }
    }
}

#[test]
fn dot4_matches_dot_bitwise_all_tails() {
    for d in [1usize, 8, 15, 16, 17, 31, 32, 33, 48, 384, 385] {
        let rows: Vec<Vec<f32>> = (0..5).map(|i| (0..d).map(|p| (((i * 29 + p * 13) % 19) as f32 - 9.0) / 5.0).collect()).collect();
        for level in supported_levels() {
            let k = Kernels::for_level(level);
            let four = (k.dot4)(&rows[0], [&rows[1], &rows[2], &rows[3], &rows[4]]);
            for t in 0..4 {
                assert_eq!(four[t].to_bits(), (k.dot)(&rows[0], &rows[t + 1]).to_bits(), "{level:?} d={d}");
            }
        }
    }
}

#[test]
fn pair_blocks_match_naive_and_agree_bitwise() {
    for d in [1usize, 7, 16, 23, 40, 384] {
        let rows: Vec<Vec<f32>> = (0..11).map(|i| (0..d).map(|p| (((i * 31 + p * 17) % 23) as f32 - 11.0) / 7.0).collect()).collect();
        let r: Vec<&[f32]> = rows.iter().map(|v| v.as_slice()).collect();
        for level in supported_levels() {
            let block = Kernels::for_level(level).block;
            let mut o = [[0.0f32; 4]; 4];
            let (xa, xb) = ([r[0], r[1], r[2], r[3]], [r[4], r[5], r[0], r[7]]);
            // SAFETY: equal row lengths; the level is supported.
            unsafe { block(&xa, &xb, &mut o) };
            let mut t = [[0.0f32; 4]; 4];
            // SAFETY: as above.
            unsafe { block(&xb, &xa, &mut t) };
            for i in 0..4 {
                for j in 0..4 {
                    let want: f64 = xa[i].iter().zip(xb[j]).map(|(&x, &y)| x as f64 * y as f64).sum();
                    assert!((o[i][j] as f64 - want).abs() < 1e-3 * (1.0 + want.abs()), "{level:?} d={d}");
                    assert_eq!(o[i][j].to_bits(), t[j][i].to_bits(), "{level:?} d={d}: not symmetric");
                }
            }
        }
        // This CPU's level through `cross` and `dot1`.
        let (a, b) = (&r[..5], &r[2..]);
        let mut out = vec![0.0; a.len() * b.len()];
        pairdot::cross(a, b, &mut out);
        for i in 0..a.len() {
            for j in 0..b.len() {
                let got = out[i * b.len() + j];
                assert_eq!(got.to_bits(), pairdot::dot1(a[i], b[j]).to_bits());
                assert_eq!(got.to_bits(), pairdot::dot1(b[j], a[i]).to_bits());
            }
        }
    }
}
