//! The iteration `F <- alpha S F + (1 - alpha) Y` over a [`SpreadOp`]: the loop with its
//! tolerance, and one step, parallel over the operator's row ranges, with clamped rows held
//! at `Y`.

// Index loops over small fixed-size arrays are the clearest way to write these kernels.
#![allow(clippy::needless_range_loop)]

use super::operator::{SpreadOp, SyncPtr};
use crate::cancel::check_cancel;
use crate::Result;
use rayon::prelude::*;
use std::sync::atomic::AtomicBool;

/// Label columns per pass of the iteration kernel.
const MAX_BLOCK: usize = 8;

/// The fixed part of every step, in the operator's order: `Y` (`(n, c)`), `alpha`,
/// `1 - alpha`, and the clamped rows.
pub(crate) struct Rhs<'a> {
    pub(crate) y: &'a [f32],
    pub(crate) c: usize,
    pub(crate) alpha: f32,
    pub(crate) oma: f32,
    pub(crate) clamped: Option<&'a [bool]>,
}

impl Rhs<'_> {
    /// Finished value of entry `(i, q)` from `s = (S F)_iq`.
    #[inline(always)]
    fn value(&self, i: usize, q: usize, s: f32, keep: bool) -> f32 {
        let yv = self.y[i * self.c + q];
        if keep {
            yv
        } else {
            self.alpha * s + self.oma * yv
        }
    }

    #[inline(always)]
    fn keep(&self, i: usize) -> bool {
        self.clamped.is_some_and(|cl| cl[i])
    }
}

/// How an iteration ended.
pub(super) struct Outcome {
    /// `F` in the operator's order
    pub(super) f: Vec<f32>,
    pub(super) iterations: usize,
    pub(super) residual: f32,
    pub(super) converged: bool,
}

/// Iterate from `F0 = Y` until `max |F_t - F_{t-1}| < tol` (or exactly 0) or `max_iter` steps.
pub(super) fn iterate(op: &SpreadOp, rhs: &Rhs<'_>, max_iter: usize, tol: f32, cancel: &AtomicBool) -> Result<Outcome> {
    let mut f = rhs.y.to_vec();
    let mut g = vec![0.0f32; op.n * rhs.c];
    let mut ws = op.workspace(rhs.c);
    let (mut iterations, mut residual, mut converged) = (0usize, f32::INFINITY, false);
    while iterations < max_iter {
        check_cancel(cancel)?;
        residual = op.step(&mut ws, &f, &mut g, rhs);
        std::mem::swap(&mut f, &mut g);
        iterations += 1;
        if residual < tol || residual == 0.0 {
            converged = true;
            break;
        }
    }
    Ok(Outcome { f, iterations, residual, converged })
}

/// Per-iteration scratch: task `t`'s scatters to rows beyond its own range
/// (`bounds[t + 1]..reach[t]`, symmetric storage only), added in by the finishing pass.
pub(crate) struct Workspace {
    spill: Vec<Vec<f32>>,
}

impl SpreadOp {
    pub(crate) fn workspace(&self, c: usize) -> Workspace {
        Workspace { spill: self.bounds.windows(2).zip(&self.reach).map(|(b, &h)| vec![0.0f32; (h - b[1]) * c]).collect() }
    }

    /// One iteration `g = alpha S f + (1 - alpha) y` (clamped rows: `g = y`), everything in
    /// the operator's order; returns max |g - f|.
    ///
    /// Phase 1, one task per row range: rows are accumulated in `g` itself and finished as
    /// soon as complete; rows that earlier tasks' spill still reaches are left unfinished.
    /// Phase 2 adds the spill to those and finishes them.
    pub(crate) fn step(&self, ws: &mut Workspace, f: &[f32], g: &mut [f32], rhs: &Rhs<'_>) -> f32 {
        let (tasks, c) = (self.reach.len(), rhs.c);
        // Split g into the tasks' own row ranges.
        let mut own: Vec<&mut [f32]> = Vec::with_capacity(tasks);
        let mut rest = g;
        for t in 0..tasks {
            let (a, b) = rest.split_at_mut((self.bounds[t + 1] - self.bounds[t]) * c);
            own.push(a);
            rest = b;
        }
        let res1 = own
            .par_iter_mut()
            .zip(ws.spill.par_iter_mut())
            .enumerate()
            .map(|(t, (gt, sp))| match c {
                1 => self.task::<1>(t, f, gt, sp, rhs, 0),
                2 => self.task::<2>(t, f, gt, sp, rhs, 0),
                _ => (0..c).step_by(MAX_BLOCK).map(|q0| self.task::<0>(t, f, gt, sp, rhs, q0)).fold(0.0f32, f32::max),
            })
            .reduce(|| 0.0f32, f32::max);
        if tasks == 1 || !self.sym {
            return res1;
        }
        let ptrs: Vec<SyncPtr> = ws.spill.iter_mut().map(|a| SyncPtr(a.as_mut_ptr())).collect();
        let ptrs = &ptrs;
        let res2 = own.par_iter_mut().enumerate().map(|(t, gt)| self.finish_spilled(t, ptrs, f, gt, rhs)).reduce(|| 0.0f32, f32::max);
        res1.max(res2)
    }

    /// Phase 2 of task `t`: add the other tasks' spill (`ptrs`) to its unfinished rows and
    /// finish them; returns their max |g - f|.
    fn finish_spilled(&self, t: usize, ptrs: &[SyncPtr], f: &[f32], gt: &mut [f32], rhs: &Rhs<'_>) -> f32 {
        let c = rhs.c;
        let (b0, se) = (self.bounds[t], self.spill_end(t));
        let mut res = 0.0f32;
        if se == b0 {
            return res;
        }
        let gd = &mut gt[..(se - b0) * c];
        for (u, p) in ptrs[..t].iter().enumerate() {
            let s0 = self.bounds[u + 1];
            let (lo, hi) = (b0.max(s0), se.min(self.reach[u]));
            if lo >= hi {
                continue;
            }
            // SAFETY: rows lo..hi (within task u's spill range s0..reach[u]) belong to
            // task t alone; phase 1 is over.
            let a = unsafe { std::slice::from_raw_parts_mut(p.0.add((lo - s0) * c), (hi - lo) * c) };
            for (o, v) in gd[(lo - b0) * c..(hi - b0) * c].iter_mut().zip(a.iter_mut()) {
                *o += *v;
                *v = 0.0;
            }
        }
        for (r, o) in gd.chunks_exact_mut(c).enumerate() {
            let i = b0 + r;
            let keep = rhs.keep(i);
            for q in 0..c {
                let v = rhs.value(i, q, o[q], keep);
                res = res.max((v - f[i * c + q]).abs());
                o[q] = v;
            }
        }
        res
    }

    /// Phase 1 of task `t` for label columns `q0..q0 + width` (`width = C`, or up to
    /// `MAX_BLOCK` when `C == 0`). `gt`: the task's own rows of `g`; `sp`: its spill rows.
    #[inline(always)]
    fn task<const C: usize>(&self, t: usize, f: &[f32], gt: &mut [f32], sp: &mut [f32], rhs: &Rhs<'_>, q0: usize) -> f32 {
        let c = if C > 0 { C } else { rhs.c };
        let width = if C > 0 { C } else { (c - q0).min(MAX_BLOCK) };
        let (b0, b1) = (self.bounds[t], self.bounds[t + 1]);
        let defer = if self.sym { self.spill_end(t) } else { b0 };
        debug_assert!(f.len() == self.n * c && gt.len() == (b1 - b0) * c && sp.len() == (self.reach[t] - b1) * c);
        // Symmetric storage accumulates scattered rows in `gt`: zero the columns first.
        if self.sym {
            for r in gt.chunks_exact_mut(c) {
                r[q0..q0 + width].fill(0.0);
            }
        }
        let cols = Cols { c, q0, width };
        let mut res = 0.0f32;
        for i in b0..b1 {
            let (e0, e1) = (self.indptr[i], self.indptr[i + 1]);
            let mut fi = [0.0f32; MAX_BLOCK];
            for q in 0..width {
                fi[q] = f[i * c + q0 + q];
            }
            let mut s = if !self.sym {
                self.row_gather(e0, e1, f, cols)
            } else if e1 == e0 || (self.indices[e1 - 1] as usize) < b1 {
                self.row_sym_local(i, e0, e1, b0, f, gt, &fi, cols)
            } else {
                self.row_sym_spill(e0, e1, b0, b1, f, gt, sp, &fi, cols)
            };
            if let Some(d) = &self.diag {
                for q in 0..width {
                    s[q] += d[i] * fi[q];
                }
            }
            let o = &mut gt[(i - b0) * c + q0..(i - b0) * c + q0 + width];
            if self.sym {
                for q in 0..width {
                    s[q] += o[q];
                }
            }
            if i < defer {
                // unfinished: spill from earlier tasks still to come (phase 2)
                o.copy_from_slice(&s[..width]);
                continue;
            }
            let keep = rhs.keep(i);
            for q in 0..width {
                let v = rhs.value(i, q0 + q, s[q], keep);
                res = res.max((v - fi[q]).abs());
                o[q] = v;
            }
        }
        res
    }

    /// `(S F)_i` over all entries of row `i` (`e0..e1`), full storage. Four independent
    /// partial sums: the FMA latency chain, not memory, bounds a single-accumulator row loop.
    #[inline(always)]
    fn row_gather(&self, e0: usize, e1: usize, f: &[f32], cols: Cols) -> [f32; MAX_BLOCK] {
        let Cols { c, q0, width } = cols;
        let mut s4 = [[0.0f32; MAX_BLOCK]; 4];
        let (ic, dc) = (self.indices[e0..e1].chunks_exact(4), self.data[e0..e1].chunks_exact(4));
        let (ir, dr) = (ic.remainder(), dc.remainder());
        for (jj, vv) in ic.zip(dc) {
            for u in 0..4 {
                let (j, v) = (jj[u] as usize, vv[u]);
                debug_assert!(j < self.n);
                // SAFETY: j < n (validated W renumbered by a permutation): f has row j.
                let x = unsafe { f.as_ptr().add(j * c + q0) };
                for q in 0..width {
                    s4[u][q] += v * unsafe { *x.add(q) };
                }
            }
        }
        for (&j, &v) in ir.iter().zip(dr) {
            let j = j as usize;
            debug_assert!(j < self.n);
            // SAFETY: as above.
            let x = unsafe { f.as_ptr().add(j * c + q0) };
            for q in 0..width {
                s4[0][q] += v * unsafe { *x.add(q) };
            }
        }
        sum4(&s4, width)
    }

    /// Upper-triangle row `i` whose columns all lie in the task's own rows (`< b1`): gathers
    /// `(S F)_i` with four partial sums and scatters `S_ij F_i` to rows `j` of `gt`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn row_sym_local(&self, i: usize, e0: usize, e1: usize, b0: usize, f: &[f32], gt: &mut [f32], fi: &[f32; MAX_BLOCK], cols: Cols) -> [f32; MAX_BLOCK] {
        let Cols { c, q0, width } = cols;
        let mut s4 = [[0.0f32; MAX_BLOCK]; 4];
        let (ic, dc) = (self.indices[e0..e1].chunks_exact(4), self.data[e0..e1].chunks_exact(4));
        let (ir, dr) = (ic.remainder(), dc.remainder());
        for (jj, vv) in ic.zip(dc) {
            for u in 0..4 {
                let (j, v) = (jj[u] as usize, vv[u]);
                debug_assert!(j > i && (j - b0) * c < gt.len());
                // SAFETY: i < j < b1 <= n: f has row j and gt has row j - b0.
                unsafe {
                    let a = gt.as_mut_ptr().add((j - b0) * c + q0);
                    let x = f.as_ptr().add(j * c + q0);
                    for q in 0..width {
                        s4[u][q] += v * *x.add(q);
                        *a.add(q) += v * fi[q];
                    }
                }
            }
        }
        for (&j, &v) in ir.iter().zip(dr) {
            let j = j as usize;
            debug_assert!(j > i && (j - b0) * c < gt.len());
            // SAFETY: as above.
            unsafe {
                let a = gt.as_mut_ptr().add((j - b0) * c + q0);
                let x = f.as_ptr().add(j * c + q0);
                for q in 0..width {
                    s4[0][q] += v * *x.add(q);
                    *a.add(q) += v * fi[q];
                }
            }
        }
        sum4(&s4, width)
    }

    /// Upper-triangle row reaching beyond the task's rows: as [`Self::row_sym_local`],
    /// scattering to `gt` or, for rows `>= b1`, to the spill `sp`. Such rows hold the long
    /// edges, whose rows of `F` and of the spill are cache misses: both are prefetched
    /// [`PREFETCH`] entries ahead.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn row_sym_spill(&self, e0: usize, e1: usize, b0: usize, b1: usize, f: &[f32], gt: &mut [f32], sp: &mut [f32], fi: &[f32; MAX_BLOCK], cols: Cols) -> [f32; MAX_BLOCK] {
        let Cols { c, q0, width } = cols;
        let mut s = [0.0f32; MAX_BLOCK];
        let (idx, val) = (&self.indices[..e1], &self.data[..e1]);
        let (gp, spp, fp) = (gt.as_mut_ptr(), sp.as_mut_ptr(), f.as_ptr());
        let target = |j: usize| -> *mut f32 {
            // SAFETY: i < j < reach[t]: gt has row j - b0 when j < b1, sp row j - b1 otherwise
            // (the operator's partition sizes them so); checked in debug builds.
            debug_assert!(if j < b1 { (j - b0 + 1) * c <= gt.len() } else { (j - b1 + 1) * c <= sp.len() });
            unsafe { if j < b1 { gp.add((j - b0) * c + q0) } else { spp.add((j - b1) * c + q0) } }
        };
        for e in e0..e1 {
            if let Some(&jn) = idx.get(e + PREFETCH) {
                let jn = jn as usize;
                // SAFETY: only prefetch hints (an address computed, never dereferenced).
                prefetch(fp.wrapping_add(jn * c + q0));
                prefetch(target(jn.max(b0)) as *const f32);
            }
            let (j, v) = (idx[e] as usize, val[e]);
            debug_assert!(j < self.n);
            let a = target(j);
            // SAFETY: j < n: f has row j; `a` as in `target`.
            unsafe {
                let x = fp.add(j * c + q0);
                for q in 0..width {
                    s[q] += v * *x.add(q);
                    *a.add(q) += v * fi[q];
                }
            }
        }
        s
    }
}

/// Entries ahead whose rows [`SpreadOp::row_sym_spill`] prefetches.
const PREFETCH: usize = 8;

/// A hint to load the cache line at `p` (no effect on results; never faults).
#[inline(always)]
fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it does not dereference `p` architecturally.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The label columns one pass works on: `q0..q0 + width` of `c`.
#[derive(Clone, Copy)]
struct Cols {
    c: usize,
    q0: usize,
    width: usize,
}

/// `(s0 + s1) + (s2 + s3)` per column.
#[inline(always)]
fn sum4(s4: &[[f32; MAX_BLOCK]; 4], width: usize) -> [f32; MAX_BLOCK] {
    let mut s = [0.0f32; MAX_BLOCK];
    for q in 0..width {
        s[q] = (s4[0][q] + s4[1][q]) + (s4[2][q] + s4[3][q]);
    }
    s
}
