//! Label spreading (Zhou et al. 2004): `F <- alpha * S F + (1 - alpha) * Y`,
//! `S = D^-1/2 W D^-1/2`.

use crate::cancel::check_cancel;
use crate::{CoreError, Csr, Result};
use rayon::prelude::*;
use std::sync::atomic::AtomicBool;

#[derive(Clone, Debug)]
pub struct SmoothParams {
    pub alpha: f32,
    pub max_iter: usize,
    /// stop when max |F_t - F_{t-1}| < tol
    pub tol: f32,
}

#[derive(Clone, Debug)]
pub struct SmoothResult {
    /// row-major `(n, c)`, rows normalised to sum 1
    pub labels: Vec<f32>,
    pub iterations: usize,
    pub residual: f32,
    pub converged: bool,
    /// seconds spent building the operator (S, node order) before the first iteration
    pub setup_seconds: f64,
    /// seconds spent in the iterations themselves
    pub iterate_seconds: f64,
}

/// `labels` row-major `(n, c)`, values in [0, 1], rows summing > 0. `confidence` (n,) scales
/// each node's seed row Y_i (>= 0); `clamped` (n,) nodes keep F_i = Y_i every iteration.
///
/// `S = D^-1/2 W D^-1/2` is built once (f32 CSR; isolated nodes get an empty row); then
/// `F <- alpha S F + (1 - alpha) Y` from `F0 = Y` until `max |dF| < tol` or `max_iter`.
/// Output rows are normalised to sum 1; a row with no mass falls back to its label row.
pub fn smooth_labels(
    w: &Csr,
    labels: &[f32],
    c: usize,
    params: &SmoothParams,
    confidence: Option<&[f32]>,
    clamped: Option<&[bool]>,
    cancel: &AtomicBool,
) -> Result<SmoothResult> {
    let n = w.n;
    let alpha = params.alpha;
    if !(alpha.is_finite() && (0.0..1.0).contains(&alpha)) {
        return Err(CoreError::InvalidAlpha(alpha as f64));
    }
    if !(params.tol.is_finite() && params.tol >= 0.0) {
        return Err(CoreError::InvalidParameter(format!("tol={} must be finite and >= 0", params.tol)));
    }
    if c == 0 {
        return Err(CoreError::ShapeMismatch("labels need c >= 1 columns".into()));
    }
    if labels.len() != n * c {
        return Err(CoreError::ShapeMismatch(format!("labels has {} values, expected n*c = {}*{} = {}", labels.len(), n, c, n * c)));
    }
    if let Some(row) = labels.par_chunks(c).position_first(|r| r.iter().any(|v| !(v.is_finite() && (0.0..=1.0).contains(v)))) {
        let value = *labels[row * c..(row + 1) * c].iter().find(|v| !(v.is_finite() && (0.0..=1.0).contains(*v))).unwrap_or(&f32::NAN);
        return Err(CoreError::LabelOutOfRange { row, value });
    }
    if let Some(row) = labels.par_chunks(c).position_first(|r| r.iter().sum::<f32>() <= 0.0) {
        return Err(CoreError::ZeroLabelRow { row });
    }
    if let Some(conf) = confidence {
        if conf.len() != n {
            return Err(CoreError::ShapeMismatch(format!("confidence has {} values, expected n={n}", conf.len())));
        }
        if let Some(i) = conf.par_iter().position_first(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(CoreError::InvalidParameter(format!("confidence[{i}]={} must be finite and >= 0", conf[i])));
        }
    }
    if let Some(cl) = clamped {
        if cl.len() != n {
            return Err(CoreError::ShapeMismatch(format!("clamped has {} values, expected n={n}", cl.len())));
        }
    }
    w.validate()?;
    if let Some(e) = w.data.par_iter().position_first(|v| !(v.is_finite() && *v >= 0.0)) {
        let row = w.indptr.partition_point(|&p| p as usize <= e) - 1;
        return Err(CoreError::InvalidGraph(format!("row {row} has weight {}; weights must be finite and >= 0", w.data[e])));
    }
    check_cancel(cancel)?;

    // Y = confidence * labels.
    let mut y = labels.to_vec();
    if let Some(conf) = confidence {
        y.par_chunks_mut(c).zip(conf.par_iter()).for_each(|(r, &s)| r.iter_mut().for_each(|v| *v *= s));
    }
    let t_setup = std::time::Instant::now();
    let op = SpreadOp::new(w);
    check_cancel(cancel)?;
    // Work in the operator's node order: Y, F and the clamped mask are permuted once here and
    // F is permuted back at the end.
    let yp = op.permute_rows(&y, c);
    let clp: Option<Vec<bool>> = clamped.map(|cl| op.order.par_iter().map(|&o| cl[o as usize]).collect());
    let oma = 1.0 - alpha;
    let mut f = yp.clone();
    let mut g = vec![0.0f32; n * c];
    let mut ws = op.workspace(c);
    let (mut iterations, mut residual, mut converged) = (0usize, f32::INFINITY, false);
    let setup_seconds = t_setup.elapsed().as_secs_f64();
    let t_iter = std::time::Instant::now();
    while iterations < params.max_iter {
        check_cancel(cancel)?;
        residual = op.step(&mut ws, &f, &mut g, &yp, c, alpha, oma, clp.as_deref());
        std::mem::swap(&mut f, &mut g);
        iterations += 1;
        if residual < params.tol || residual == 0.0 {
            converged = true;
            break;
        }
    }
    let iterate_seconds = t_iter.elapsed().as_secs_f64();
    let mut f = op.unpermute_rows(&f, c);
    // Normalise rows; a row without mass falls back to its (normalised) label row.
    f.par_chunks_mut(c).zip(labels.par_chunks(c)).for_each(|(r, l)| {
        let sum: f32 = r.iter().sum();
        if sum > 0.0 && sum.is_finite() {
            r.iter_mut().for_each(|v| *v /= sum);
        } else {
            let ls: f32 = l.iter().sum();
            r.iter_mut().zip(l).for_each(|(v, &x)| *v = x / ls);
        }
    });
    Ok(SmoothResult { labels: f, iterations, residual, converged, setup_seconds, iterate_seconds })
}

/// `1 / sqrt(row sum of W)` per node, 0 for rows without weight.
fn inv_sqrt_degrees(w: &Csr) -> Vec<f32> {
    (0..w.n)
        .into_par_iter()
        .map(|i| {
            let d: f64 = w.data[w.indptr[i] as usize..w.indptr[i + 1] as usize].iter().map(|&v| v as f64).sum();
            if d > 0.0 {
                (1.0 / d.sqrt()) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// `S_ij = W_ij * (d_i^-1/2 * d_j^-1/2)`: the product of the two scales is commutative, so
/// `S` is exactly symmetric wherever `W` is.
#[inline]
fn s_value(wv: f32, a: f32, b: f32) -> f32 {
    wv * (a * b)
}

/// Breadth-first node order (restarted at the lowest unvisited node): neighbours get nearby
/// numbers, so one iteration's gathers from `F` stay in cache. Returns `order` (new -> old).
fn bfs_order(w: &Csr) -> Vec<u32> {
    let n = w.n;
    let mut seen = vec![false; n];
    let mut order: Vec<u32> = Vec::with_capacity(n);
    let mut head = 0usize;
    for s in 0..n {
        if seen[s] {
            continue;
        }
        seen[s] = true;
        order.push(s as u32);
        while head < order.len() {
            let i = order[head] as usize;
            head += 1;
            for &j in &w.indices[w.indptr[i] as usize..w.indptr[i + 1] as usize] {
                let j = j as usize;
                if !seen[j] {
                    seen[j] = true;
                    order.push(j as u32);
                }
            }
        }
    }
    order
}

/// Rows per task when building the operator.
const BUILD_CHUNK: usize = 8192;

/// The spreading operator `S = D^-1/2 W D^-1/2`, renumbered in BFS order for locality.
///
/// When `W` is exactly symmetric (no duplicate entries) only the strict upper triangle is
/// stored (`sym`), halving the bytes streamed per iteration: a stored `S_ij`, `j > i`, adds
/// `S_ij F_j` to row `i` and `S_ij F_i` to row `j`. Otherwise rows hold all off-diagonal
/// entries. Diagonal entries live in `diag`. Column indices are in the new numbering, sorted.
pub(crate) struct SpreadOp {
    n: usize,
    /// new -> old node
    order: Vec<u32>,
    sym: bool,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<f32>,
    diag: Option<Vec<f32>>,
    /// row ranges of the parallel tasks of one iteration: task `t` owns rows
    /// `bounds[t]..bounds[t + 1]` and writes rows `bounds[t]..reach[t]`
    bounds: Vec<usize>,
    reach: Vec<usize>,
}

/// Per-iteration scratch: task `t`'s scatters to rows beyond its own range
/// (`bounds[t + 1]..reach[t]`, symmetric storage only), added in by the finishing pass.
pub(crate) struct Workspace {
    spill: Vec<Vec<f32>>,
}

#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: used only for disjoint row ranges of the accumulators from different tasks.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

impl SpreadOp {
    #[allow(clippy::needless_range_loop)]
    pub(crate) fn new(w: &Csr) -> Self {
        let n = w.n;
        let dinv = inv_sqrt_degrees(w);
        let order = bfs_order(w);
        let mut pos = vec![0u32; n];
        for (r, &o) in order.iter().enumerate() {
            pos[o as usize] = r as u32;
        }
        // Per chunk of new rows: sorted rows split into lower / upper parts; duplicates and
        // the diagonal noted.
        struct Part {
            up_len: Vec<usize>,
            up_ind: Vec<u32>,
            up_dat: Vec<f32>,
            lo_len: Vec<usize>,
            lo_ind: Vec<u32>,
            lo_dat: Vec<f32>,
            diag: Vec<(u32, f32)>,
            dup: bool,
        }
        let parts: Vec<Part> = (0..n.div_ceil(BUILD_CHUNK))
            .into_par_iter()
            .map(|ch| {
                let (r0, r1) = (ch * BUILD_CHUNK, ((ch + 1) * BUILD_CHUNK).min(n));
                let mut p = Part {
                    up_len: Vec::with_capacity(r1 - r0),
                    up_ind: Vec::new(),
                    up_dat: Vec::new(),
                    lo_len: Vec::with_capacity(r1 - r0),
                    lo_ind: Vec::new(),
                    lo_dat: Vec::new(),
                    diag: Vec::new(),
                    dup: false,
                };
                let mut row: Vec<(u32, f32)> = Vec::new();
                for r in r0..r1 {
                    let i = order[r] as usize;
                    let (e0, e1) = (w.indptr[i] as usize, w.indptr[i + 1] as usize);
                    row.clear();
                    row.extend(w.indices[e0..e1].iter().zip(&w.data[e0..e1]).map(|(&j, &v)| (pos[j as usize], s_value(v, dinv[i], dinv[j as usize]))));
                    row.sort_unstable_by_key(|e| e.0);
                    p.dup |= row.windows(2).any(|x| x[0].0 == x[1].0);
                    let (mut lo, mut up) = (0usize, 0usize);
                    let mut dsum = 0.0f32;
                    let mut has_diag = false;
                    for &(col, v) in &row {
                        match (col as usize).cmp(&r) {
                            std::cmp::Ordering::Less => {
                                p.lo_ind.push(col);
                                p.lo_dat.push(v);
                                lo += 1;
                            }
                            std::cmp::Ordering::Equal => {
                                dsum += v;
                                has_diag = true;
                            }
                            std::cmp::Ordering::Greater => {
                                p.up_ind.push(col);
                                p.up_dat.push(v);
                                up += 1;
                            }
                        }
                    }
                    if has_diag && dsum != 0.0 {
                        p.diag.push((r as u32, dsum));
                    }
                    p.lo_len.push(lo);
                    p.up_len.push(up);
                }
                p
            })
            .collect();
        let dup = parts.iter().any(|p| p.dup);
        let concat = |lens: &dyn Fn(&Part) -> &Vec<usize>, ind: &dyn Fn(&Part) -> &Vec<u32>, dat: &dyn Fn(&Part) -> &Vec<f32>| {
            let total: usize = parts.iter().map(|p| ind(p).len()).sum();
            let mut indptr = Vec::with_capacity(n + 1);
            indptr.push(0usize);
            let mut acc = 0usize;
            for p in &parts {
                for &l in lens(p) {
                    acc += l;
                    indptr.push(acc);
                }
            }
            let mut indices = Vec::with_capacity(total);
            let mut data = Vec::with_capacity(total);
            for p in &parts {
                indices.extend_from_slice(ind(p));
                data.extend_from_slice(dat(p));
            }
            (indptr, indices, data)
        };
        let (up_ptr, up_ind, up_dat) = concat(&|p| &p.up_len, &|p| &p.up_ind, &|p| &p.up_dat);
        let lo_count: usize = parts.iter().map(|p| p.lo_ind.len()).sum();
        // Exactly symmetric: no duplicates, as many lower as upper entries, and each lower
        // entry (r, col) is matched by an equal upper entry (col, r).
        let sym = !dup
            && lo_count == up_ind.len()
            && parts.par_iter().enumerate().all(|(ch, p)| {
                let mut e = 0usize;
                for (t, &l) in p.lo_len.iter().enumerate() {
                    let r = (ch * BUILD_CHUNK + t) as u32;
                    for q in e..e + l {
                        let col = p.lo_ind[q] as usize;
                        let row = &up_ind[up_ptr[col]..up_ptr[col + 1]];
                        match row.binary_search(&r) {
                            Ok(x) if up_dat[up_ptr[col] + x] == p.lo_dat[q] => {}
                            _ => return false,
                        }
                    }
                    e += l;
                }
                true
            });
        let (indptr, indices, data) = if sym {
            (up_ptr, up_ind, up_dat)
        } else {
            drop((up_ptr, up_ind, up_dat));
            // Full rows: lower part then upper part (both sorted, lower < r < upper).
            let lo = concat(&|p| &p.lo_len, &|p| &p.lo_ind, &|p| &p.lo_dat);
            let up = concat(&|p| &p.up_len, &|p| &p.up_ind, &|p| &p.up_dat);
            let mut indptr = Vec::with_capacity(n + 1);
            indptr.push(0usize);
            for r in 0..n {
                indptr.push(lo.0[r + 1] + up.0[r + 1]);
            }
            let mut indices = Vec::with_capacity(indptr[n]);
            let mut data = Vec::with_capacity(indptr[n]);
            for r in 0..n {
                indices.extend_from_slice(&lo.1[lo.0[r]..lo.0[r + 1]]);
                indices.extend_from_slice(&up.1[up.0[r]..up.0[r + 1]]);
                data.extend_from_slice(&lo.2[lo.0[r]..lo.0[r + 1]]);
                data.extend_from_slice(&up.2[up.0[r]..up.0[r + 1]]);
            }
            (indptr, indices, data)
        };
        let diag_entries: Vec<(u32, f32)> = parts.iter().flat_map(|p| p.diag.iter().copied()).collect();
        let diag = (!diag_entries.is_empty()).then(|| {
            let mut d = vec![0.0f32; n];
            for (r, v) in diag_entries {
                d[r as usize] = v;
            }
            d
        });
        drop(parts);
        let mut op = SpreadOp { n, order, sym, indptr, indices, data, diag, bounds: vec![0, n], reach: vec![n] };
        op.partition();
        op
    }

    /// Split the rows into tasks of similar work. Symmetric storage writes rows beyond a
    /// task's own range, so each task gets an accumulator up to its largest column; fewer
    /// tasks when those would be large (graphs without locality).
    fn partition(&mut self) {
        let n = self.n;
        let threads = rayon::current_num_threads().max(1);
        for tasks in [4 * threads, 2 * threads, threads] {
            let total = self.indptr[n] + 2 * n;
            let mut bounds = vec![0usize];
            let mut r = 0usize;
            for t in 1..tasks {
                let target = total * t / tasks;
                while r < n && self.indptr[r] + 2 * r < target {
                    r += 1;
                }
                if r > *bounds.last().unwrap() {
                    bounds.push(r);
                }
            }
            if *bounds.last().unwrap() < n {
                bounds.push(n);
            }
            if n == 0 {
                bounds = vec![0, 0];
            }
            let reach: Vec<usize> = bounds
                .windows(2)
                .map(|b| {
                    let mut hi = b[1];
                    if self.sym {
                        for r in b[0]..b[1] {
                            if let Some(&j) = self.indices[self.indptr[r]..self.indptr[r + 1]].last() {
                                hi = hi.max(j as usize + 1);
                            }
                        }
                    }
                    hi
                })
                .collect();
            let scratch: usize = bounds.windows(2).zip(&reach).map(|(b, &h)| h - b[0]).sum();
            self.bounds = bounds;
            self.reach = reach;
            if scratch <= 2 * n + 2 * BUILD_CHUNK {
                break;
            }
        }
    }

    pub(crate) fn workspace(&self, c: usize) -> Workspace {
        Workspace { spill: self.bounds.windows(2).zip(&self.reach).map(|(b, &h)| vec![0.0f32; (h - b[1]) * c]).collect() }
    }

    /// Rows of task `t` that other tasks' spill reaches: `bounds[t]..spill_end(t)`.
    fn spill_end(&self, t: usize) -> usize {
        let own = self.bounds[t + 1];
        self.reach[..t].iter().copied().max().unwrap_or(0).clamp(self.bounds[t], own)
    }

    /// Rows of a row-major `(n, c)` array in the operator's order.
    pub(crate) fn permute_rows(&self, x: &[f32], c: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; self.n * c];
        out.par_chunks_mut(c).zip(self.order.par_iter()).for_each(|(r, &o)| r.copy_from_slice(&x[o as usize * c..(o as usize + 1) * c]));
        out
    }

    /// Inverse of [`Self::permute_rows`].
    pub(crate) fn unpermute_rows(&self, x: &[f32], c: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; self.n * c];
        let ptr = SyncPtr(out.as_mut_ptr());
        x.par_chunks(c).zip(self.order.par_iter()).for_each(|(r, &o)| {
            let p = ptr;
            // SAFETY: `order` is a permutation, so each destination row is written once.
            unsafe { std::ptr::copy_nonoverlapping(r.as_ptr(), p.0.add(o as usize * c), c) };
        });
        out
    }

    /// One iteration `g = alpha S f + (1 - alpha) y` (clamped rows: `g = y`), everything in
    /// the operator's order; returns max |g - f|.
    ///
    /// Phase 1, one task per row range: rows are accumulated in `g` itself and finished as
    /// soon as complete; rows that earlier tasks' spill still reaches are left unfinished.
    /// Phase 2 adds the spill to those and finishes them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn step(&self, ws: &mut Workspace, f: &[f32], g: &mut [f32], y: &[f32], c: usize, alpha: f32, oma: f32, clamped: Option<&[bool]>) -> f32 {
        let tasks = self.reach.len();
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
                1 => self.task::<1>(t, f, gt, sp, y, 1, 0, alpha, oma, clamped),
                2 => self.task::<2>(t, f, gt, sp, y, 2, 0, alpha, oma, clamped),
                _ => (0..c).step_by(MAX_BLOCK).map(|q0| self.task::<0>(t, f, gt, sp, y, c, q0, alpha, oma, clamped)).fold(0.0f32, f32::max),
            })
            .reduce(|| 0.0f32, f32::max);
        if tasks == 1 || !self.sym {
            return res1;
        }
        let ptrs: Vec<SyncPtr> = ws.spill.iter_mut().map(|a| SyncPtr(a.as_mut_ptr())).collect();
        let ptrs = &ptrs;
        let res2 = own
            .par_iter_mut()
            .enumerate()
            .map(|(t, gt)| {
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
                    let keep = clamped.is_some_and(|cl| cl[i]);
                    for q in 0..c {
                        let yv = y[i * c + q];
                        let v = if keep { yv } else { alpha * o[q] + oma * yv };
                        res = res.max((v - f[i * c + q]).abs());
                        o[q] = v;
                    }
                }
                res
            })
            .reduce(|| 0.0f32, f32::max);
        res1.max(res2)
    }

    /// Phase 1 of task `t` for label columns `q0..q0 + width` (`width = C`, or up to
    /// `MAX_BLOCK` when `C == 0`). `gt`: the task's own rows of `g`; `sp`: its spill rows.
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    #[inline(always)]
    fn task<const C: usize>(&self, t: usize, f: &[f32], gt: &mut [f32], sp: &mut [f32], y: &[f32], c: usize, q0: usize, alpha: f32, oma: f32, clamped: Option<&[bool]>) -> f32 {
        let c = if C > 0 { C } else { c };
        let width = if C > 0 { C } else { (c - q0).min(MAX_BLOCK) };
        let (b0, b1) = (self.bounds[t], self.bounds[t + 1]);
        let defer = if self.sym { self.spill_end(t) } else { b0 };
        let (ind, dat) = (&self.indices[..], &self.data[..]);
        debug_assert!(f.len() == self.n * c && gt.len() == (b1 - b0) * c && sp.len() == (self.reach[t] - b1) * c);
        // Symmetric storage accumulates scattered rows in `gt`: zero the columns first.
        if self.sym {
            for r in gt.chunks_exact_mut(c) {
                r[q0..q0 + width].fill(0.0);
            }
        }
        let mut res = 0.0f32;
        for i in b0..b1 {
            let (e0, e1) = (self.indptr[i], self.indptr[i + 1]);
            let mut fi = [0.0f32; MAX_BLOCK];
            for q in 0..width {
                fi[q] = f[i * c + q0 + q];
            }
            let mut s = [0.0f32; MAX_BLOCK];
            if self.sym {
                let last = if e1 > e0 { ind[e1 - 1] as usize } else { 0 };
                if last < b1 {
                    // Four independent partial sums: the FMA latency chain, not memory,
                    // bounds a single-accumulator row loop.
                    let mut s4 = [[0.0f32; MAX_BLOCK]; 4];
                    let (ic, dc) = (ind[e0..e1].chunks_exact(4), dat[e0..e1].chunks_exact(4));
                    let (ir, dr) = (ic.remainder(), dc.remainder());
                    for (jj, vv) in ic.zip(dc) {
                        for u in 0..4 {
                            let (j, v) = (jj[u] as usize, vv[u]);
                            debug_assert!(j > i && j < b1);
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
                        debug_assert!(j > i && j < b1);
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
                    for q in 0..width {
                        s[q] = (s4[0][q] + s4[1][q]) + (s4[2][q] + s4[3][q]);
                    }
                } else {
                    for (&j, &v) in ind[e0..e1].iter().zip(&dat[e0..e1]) {
                        let j = j as usize;
                        let a = if j < b1 { &mut gt[(j - b0) * c + q0..] } else { &mut sp[(j - b1) * c + q0..] };
                        for q in 0..width {
                            s[q] += v * f[j * c + q0 + q];
                            a[q] += v * fi[q];
                        }
                    }
                }
            } else {
                let mut s4 = [[0.0f32; MAX_BLOCK]; 4];
                let (ic, dc) = (ind[e0..e1].chunks_exact(4), dat[e0..e1].chunks_exact(4));
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
                for q in 0..width {
                    s[q] = (s4[0][q] + s4[1][q]) + (s4[2][q] + s4[3][q]);
                }
            }
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
            let keep = clamped.is_some_and(|cl| cl[i]);
            for q in 0..width {
                let yv = y[i * c + q0 + q];
                let v = if keep { yv } else { alpha * s[q] + oma * yv };
                res = res.max((v - fi[q]).abs());
                o[q] = v;
            }
        }
        res
    }
}

/// Label columns per pass of the iteration kernel.
const MAX_BLOCK: usize = 8;

/// The plain operator `S` (original order, all entries) as f32 CSR: the reference for tests.
#[cfg(test)]
pub(crate) struct NormOp<'a> {
    indptr: Vec<usize>,
    indices: &'a [u32],
    data: Vec<f32>,
}

#[cfg(test)]
pub(crate) fn normalized_operator(w: &Csr) -> NormOp<'_> {
    let dinv = inv_sqrt_degrees(w);
    let indptr: Vec<usize> = w.indptr.iter().map(|&p| p as usize).collect();
    let mut data = vec![0.0f32; w.data.len()];
    for i in 0..w.n {
        for e in indptr[i]..indptr[i + 1] {
            data[e] = s_value(w.data[e], dinv[i], dinv[w.indices[e] as usize]);
        }
    }
    NormOp { indptr, indices: &w.indices, data }
}

/// One production iteration in the original node order (for tests).
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
fn step(w: &Csr, f: &[f32], g: &mut [f32], y: &[f32], c: usize, alpha: f32, oma: f32, clamped: Option<&[bool]>) -> f32 {
    let op = SpreadOp::new(w);
    let mut ws = op.workspace(c);
    let (fp, yp) = (op.permute_rows(f, c), op.permute_rows(y, c));
    let clp: Option<Vec<bool>> = clamped.map(|cl| op.order.iter().map(|&o| cl[o as usize]).collect());
    let mut gp = vec![0.0f32; f.len()];
    let res = op.step(&mut ws, &fp, &mut gp, &yp, c, alpha, oma, clp.as_deref());
    g.copy_from_slice(&op.unpermute_rows(&gp, c));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{knn_to_weights, Metric};

    fn ring(n: usize) -> Csr {
        // ring with chords, random-ish weights
        let k = 3;
        let mut idx = vec![0i64; n * k];
        let mut sc = vec![0f32; n * k];
        for i in 0..n {
            for t in 0..k {
                idx[i * k + t] = ((i + 1 + t * 3) % n) as i64;
                sc[i * k + t] = 0.2 + ((i * 7 + t * 13) % 10) as f32 / 10.0;
            }
        }
        knn_to_weights(&idx, &sc, n, k, Metric::Cosine).unwrap()
    }

    fn labels(n: usize, c: usize) -> Vec<f32> {
        (0..n * c).map(|e| ((e * 37 % 11) as f32 + 1.0) / 12.0).collect()
    }

    fn norm_rows(y: &[f32], c: usize) -> Vec<f32> {
        y.chunks(c).flat_map(|r| { let s: f32 = r.iter().sum(); r.iter().map(move |v| v / s) }).collect()
    }

    fn run(w: &Csr, y: &[f32], c: usize, alpha: f32, tol: f32, max_iter: usize) -> SmoothResult {
        smooth_labels(w, y, c, &SmoothParams { alpha, max_iter, tol }, None, None, &AtomicBool::new(false)).unwrap()
    }

    #[test]
    fn alpha_zero_gives_normalised_labels() {
        let w = ring(20);
        let y = labels(20, 3);
        let r = run(&w, &y, 3, 0.0, 1e-6, 50);
        assert!(r.converged);
        for (a, b) in r.labels.iter().zip(norm_rows(&y, 3)) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn operator_is_symmetric_for_symmetric_w() {
        let w = ring(25);
        let s = normalized_operator(&w);
        let n = w.n;
        let mut m = vec![0.0f32; n * n];
        for i in 0..n {
            for e in s.indptr[i]..s.indptr[i + 1] {
                m[i * n + s.indices[e] as usize] = s.data[e];
            }
        }
        for i in 0..n {
            for j in 0..n {
                assert!((m[i * n + j] - m[j * n + i]).abs() < 1e-7);
            }
        }
    }

    /// (1 - alpha) (I - alpha S)^-1 Y by dense Gauss elimination.
    fn closed_form(w: &Csr, y: &[f32], c: usize, alpha: f64) -> Vec<f64> {
        let n = w.n;
        let s = normalized_operator(w);
        let mut a = vec![0.0f64; n * n];
        for i in 0..n {
            a[i * n + i] = 1.0;
            for e in s.indptr[i]..s.indptr[i + 1] {
                a[i * n + s.indices[e] as usize] -= alpha * s.data[e] as f64;
            }
        }
        let mut b: Vec<f64> = y.iter().map(|&v| (1.0 - alpha) * v as f64).collect();
        for col in 0..n {
            let p = (col..n).max_by(|&x, &z| a[x * n + col].abs().total_cmp(&a[z * n + col].abs())).unwrap();
            for q in 0..n {
                a.swap(col * n + q, p * n + q);
            }
            for q in 0..c {
                b.swap(col * c + q, p * c + q);
            }
            for r in 0..n {
                if r != col {
                    let f = a[r * n + col] / a[col * n + col];
                    for q in 0..n {
                        a[r * n + q] -= f * a[col * n + q];
                    }
                    for q in 0..c {
                        b[r * c + q] -= f * b[col * c + q];
                    }
                }
            }
        }
        (0..n * c).map(|e| b[e] / a[(e / c) * n + e / c]).collect()
    }

    #[test]
    fn matches_closed_form_and_fixed_point() {
        for c in [1usize, 2, 3] {
            let n = 30;
            let w = ring(n);
            let y = labels(n, c);
            let alpha = 0.8;
            let r = run(&w, &y, c, alpha, 1e-6, 10_000);
            assert!(r.converged, "c={c}");
            assert!(r.residual < 1e-6 && r.iterations > 1);
            let f = closed_form(&w, &y, c, alpha as f64);
            let f32v: Vec<f32> = f.iter().map(|&v| v as f32).collect();
            // fixed point: one more step from the closed form moves nothing
            let mut g = vec![0.0f32; n * c];
            let moved = step(&w, &f32v, &mut g, &y, c, alpha, 1.0 - alpha, None);
            assert!(moved < 1e-5, "c={c}: {moved}");
            for (a, b) in r.labels.iter().zip(norm_rows(&f32v, c)) {
                assert!((a - b).abs() < 1e-4, "c={c}: {a} vs {b}");
            }
        }
    }

    /// One production step equals the plain CSR product, for symmetric and asymmetric W (with
    /// duplicates and self-loops) and label widths taking every kernel path.
    #[test]
    fn step_matches_plain_operator() {
        let sym = ring(40);
        let mut asym = sym.clone();
        asym.data[3] *= 2.0; // W no longer symmetric
        let dup = Csr { n: 4, indptr: vec![0, 3, 5, 6, 8], indices: vec![1, 1, 0, 2, 0, 3, 1, 2], data: vec![0.5, 0.25, 2.0, 1.0, 0.5, 1.0, 0.75, 0.3] };
        for w in [&sym, &asym, &dup] {
            for c in [1usize, 2, 3, 10] {
                let n = w.n;
                let y = labels(n, c);
                let f: Vec<f32> = (0..n * c).map(|e| ((e * 13 % 7) as f32 + 0.5) / 8.0).collect();
                let mut cl = vec![false; n];
                cl[1] = true;
                let mut g = vec![0.0f32; n * c];
                let res = step(w, &f, &mut g, &y, c, 0.7, 0.3, Some(&cl));
                let s = normalized_operator(w);
                let mut want = vec![0.0f32; n * c];
                let mut wres = 0.0f32;
                for i in 0..n {
                    for q in 0..c {
                        let sf: f32 = (s.indptr[i]..s.indptr[i + 1]).map(|e| s.data[e] * f[s.indices[e] as usize * c + q]).sum();
                        want[i * c + q] = if cl[i] { y[i * c + q] } else { 0.7 * sf + 0.3 * y[i * c + q] };
                        wres = wres.max((want[i * c + q] - f[i * c + q]).abs());
                    }
                }
                for (a, b) in g.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "n={n} c={c}: {a} vs {b}");
                }
                assert!((res - wres).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn clamped_and_confidence() {
        let n = 12;
        let w = ring(n);
        let y = labels(n, 2);
        let mut cl = vec![false; n];
        cl[3] = true;
        let conf: Vec<f32> = (0..n).map(|i| if i == 5 { 0.0 } else { 1.0 }).collect();
        let p = SmoothParams { alpha: 0.9, max_iter: 200, tol: 1e-6 };
        let r = smooth_labels(&w, &y, 2, &p, Some(&conf), Some(&cl), &AtomicBool::new(false)).unwrap();
        let yn = norm_rows(&y, 2);
        assert!((r.labels[6] - yn[6]).abs() < 1e-6 && (r.labels[7] - yn[7]).abs() < 1e-6);
        assert!(r.labels.chunks(2).all(|row| (row[0] + row[1] - 1.0).abs() < 1e-5));
        // isolated node (no edges) keeps its normalised label row
        let empty = Csr { n: 2, indptr: vec![0, 0, 0], indices: vec![], data: vec![] };
        let r = run(&empty, &[0.2, 0.6, 1.0, 0.0], 2, 0.5, 1e-6, 10);
        assert!((r.labels[0] - 0.25).abs() < 1e-6 && (r.labels[2] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn validation_and_cancel() {
        let w = ring(4);
        let y = labels(4, 2);
        let c = AtomicBool::new(false);
        let p = SmoothParams { alpha: 0.5, max_iter: 10, tol: 1e-6 };
        let call = |y: &[f32], cc: usize, p: &SmoothParams| smooth_labels(&w, y, cc, p, None, None, &c);
        assert_eq!(call(&y, 2, &SmoothParams { alpha: 1.0, ..p.clone() }).unwrap_err(), CoreError::InvalidAlpha(1.0));
        assert!(matches!(call(&y, 3, &p), Err(CoreError::ShapeMismatch(_))));
        assert!(matches!(call(&y, 0, &p), Err(CoreError::ShapeMismatch(_))));
        let mut bad = y.clone();
        bad[5] = 1.5;
        assert_eq!(call(&bad, 2, &p).unwrap_err(), CoreError::LabelOutOfRange { row: 2, value: 1.5 });
        let mut z = y.clone();
        z[2] = 0.0;
        z[3] = 0.0;
        assert_eq!(call(&z, 2, &p).unwrap_err(), CoreError::ZeroLabelRow { row: 1 });
        assert!(matches!(smooth_labels(&w, &y, 2, &p, Some(&[1.0; 3]), None, &c), Err(CoreError::ShapeMismatch(_))));
        assert!(matches!(smooth_labels(&w, &y, 2, &p, Some(&[1.0, -1.0, 1.0, 1.0]), None, &c), Err(CoreError::InvalidParameter(_))));
        assert!(matches!(smooth_labels(&w, &y, 2, &p, None, Some(&[true; 2]), &c), Err(CoreError::ShapeMismatch(_))));
        let mut bw = w.clone();
        bw.indices[0] = 9;
        assert!(matches!(smooth_labels(&bw, &y, 2, &p, None, None, &c), Err(CoreError::InvalidGraph(_))));
        let mut nw = w.clone();
        nw.data[0] = -1.0;
        assert!(matches!(smooth_labels(&nw, &y, 2, &p, None, None, &c), Err(CoreError::InvalidGraph(_))));
        let set = AtomicBool::new(true);
        assert_eq!(smooth_labels(&w, &y, 2, &p, None, None, &set).unwrap_err(), CoreError::Cancelled);
    }
}
