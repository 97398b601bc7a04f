//! Space-partitioning trees (hyperplane splits from a sampled 2-means) that seed NN-descent:
//! each leaf is a contiguous run of ids.

use crate::kernel::kernels;
use crate::rng::{hash3, mix64, SplitMix64};
use rayon::prelude::*;

/// How to build a tree: rows (`row(i)` times `scale(i)`), angular or Euclidean splits, and
/// the leaf size.
pub(super) struct TreeSpec<'a, R, S> {
    pub(super) row: &'a R,
    pub(super) scale: &'a S,
    pub(super) angular: bool,
    pub(super) leaf: usize,
}

/// Rows sampled for a node's 2-means split.
const SPLIT_SAMPLE: usize = 256;

/// Lloyd iterations of a node's 2-means split.
const SPLIT_ITERS: usize = 6;

/// A splitting hyperplane: `side(x) = <normal, x> * scale + offset > 0`.
struct Plane {
    normal: Vec<f32>,
    offset: f32,
}

impl<'a, 'r, R, S> TreeSpec<'a, R, S>
where
    R: Fn(usize) -> &'r [f32] + Sync,
    S: Fn(usize) -> f32 + Sync,
{
    /// Tree over `ids` (reordered in place so every leaf is a contiguous run); returns the
    /// leaf sizes in order. Splits: see [`Self::split_plane`].
    pub(super) fn build(&self, ids: &mut [u32], seed: u64, depth: usize) -> Vec<u32> {
        let m = ids.len();
        if m <= self.leaf || depth >= 64 {
            return vec![m as u32];
        }
        let plane = self.split_plane(ids, seed);
        let sides = self.sides(ids, &plane, seed);
        let nl = partition(ids, &sides);
        let (l, r) = ids.split_at_mut(nl);
        let (sl, sr) = (mix64(seed.wrapping_mul(2).wrapping_add(1)), mix64(seed.wrapping_mul(2).wrapping_add(2)));
        let (mut a, b) = if m > 8192 {
            rayon::join(|| self.build(l, sl, depth + 1), || self.build(r, sr, depth + 1))
        } else {
            (self.build(l, sl, depth + 1), self.build(r, sr, depth + 1))
        };
        a.extend(b);
        a
    }

    /// The hyperplane bisecting the two centres of a seeded 2-means on a sample of `ids`
    /// (started from two random rows; directions when `angular`). Unlike the bisector of two
    /// random rows, it tends to cut between groups of points rather than through one, so
    /// clusters stay whole in a leaf.
    fn split_plane(&self, ids: &[u32], seed: u64) -> Plane {
        let (row, scale, m) = (self.row, self.scale, ids.len());
        let dot = kernels().dot;
        let d = row(ids[0] as usize).len();
        let mut rng = SplitMix64::new(seed);
        let a = rng.below(m);
        let b = (a + 1 + rng.below(m - 1)) % m;
        let sample: Vec<usize> = (0..SPLIT_SAMPLE.min(m)).map(|_| ids[rng.below(m)] as usize).collect();
        // the row as the split sees it: scaled, and as a direction when angular
        let unit = |i: usize, out: &mut [f32]| {
            let (x, mut s) = (row(i), scale(i));
            if self.angular {
                s /= (dot(x, x).sqrt() * s).max(f32::MIN_POSITIVE);
            }
            out.iter_mut().zip(x).for_each(|(o, &v)| *o = v * s);
        };
        let mut c = vec![0.0f32; 2 * d];
        unit(ids[a] as usize, &mut c[..d]);
        unit(ids[b] as usize, &mut c[d..]);
        let mut buf = vec![0.0f32; d];
        for _ in 0..SPLIT_ITERS {
            let (c0, c1) = c.split_at(d);
            let (h0, h1) = (0.5 * dot(c0, c0), 0.5 * dot(c1, c1));
            let mut sum = vec![0.0f64; 2 * d];
            let mut cnt = [0usize; 2];
            for &i in &sample {
                unit(i, &mut buf);
                let side = (dot(&buf, c1) - h1 > dot(&buf, c0) - h0) as usize;
                cnt[side] += 1;
                sum[side * d..(side + 1) * d].iter_mut().zip(&buf).for_each(|(s, &v)| *s += v as f64);
            }
            if cnt[0] == 0 || cnt[1] == 0 {
                break;
            }
            for sd in 0..2 {
                let inv = 1.0 / cnt[sd] as f64;
                c[sd * d..(sd + 1) * d].iter_mut().zip(&sum[sd * d..(sd + 1) * d]).for_each(|(o, &s)| *o = (s * inv) as f32);
            }
        }
        let (c0, c1) = c.split_at(d);
        if self.angular {
            // through the origin, between the two centres' directions
            let (n0, n1) = (dot(c0, c0).sqrt().max(f32::MIN_POSITIVE), dot(c1, c1).sqrt().max(f32::MIN_POSITIVE));
            let normal: Vec<f32> = c0.iter().zip(c1).map(|(&p, &q)| p / n0 - q / n1).collect();
            Plane { normal, offset: 0.0 }
        } else {
            let normal: Vec<f32> = c0.iter().zip(c1).map(|(&p, &q)| p - q).collect();
            let offset = -0.5 * (dot(c0, c0) - dot(c1, c1));
            Plane { normal, offset }
        }
    }

    /// The side of `plane` each row of `ids` lies on (ties by a seeded hash of the id).
    fn sides(&self, ids: &[u32], plane: &Plane, seed: u64) -> Vec<bool> {
        let (row, scale) = (self.row, self.scale);
        let k = kernels();
        let normal = &plane.normal[..];
        let side = |i: u32, ip: f32| -> bool {
            let mg = scale(i as usize) * ip + plane.offset;
            if mg == 0.0 {
                hash3(seed, i as u64, 1) & 1 == 1
            } else {
                mg > 0.0
            }
        };
        // four rows per call to the 4-wide dot product (bit-identical to `dot`)
        let sides_of = |ch: &[u32], out: &mut [bool]| {
            if ch.len() == 4 {
                let ips = (k.dot4)(normal, [row(ch[0] as usize), row(ch[1] as usize), row(ch[2] as usize), row(ch[3] as usize)]);
                for t in 0..4 {
                    out[t] = side(ch[t], ips[t]);
                }
            } else {
                for (o, &i) in out.iter_mut().zip(ch) {
                    *o = side(i, (k.dot)(normal, row(i as usize)));
                }
            }
        };
        let mut sides = vec![false; ids.len()];
        if ids.len() > 4096 {
            sides.par_chunks_mut(256).zip(ids.par_chunks(256)).for_each(|(o, ch)| {
                for (o4, c4) in o.chunks_mut(4).zip(ch.chunks(4)) {
                    sides_of(c4, o4);
                }
            });
        } else {
            for (o4, c4) in sides.chunks_mut(4).zip(ids.chunks(4)) {
                sides_of(c4, o4);
            }
        }
        sides
    }
}

/// Stable partition of `ids` by `sides` (true first); returns the size of the first part.
/// A degenerate split (duplicates: all on one side) is halved by position.
fn partition(ids: &mut [u32], sides: &[bool]) -> usize {
    let m = ids.len();
    let nl = sides.iter().filter(|&&s| s).count();
    if nl == 0 || nl == m {
        return m / 2;
    }
    let mut tmp = Vec::with_capacity(m);
    tmp.extend(ids.iter().zip(sides).filter(|(_, &s)| s).map(|(&i, _)| i));
    tmp.extend(ids.iter().zip(sides).filter(|(_, &s)| !s).map(|(&i, _)| i));
    ids.copy_from_slice(&tmp);
    nl
}
