//! The spreading operator `S = D^-1/2 W D^-1/2`: normalised, renumbered for locality
//! (breadth-first or maximum-cardinality-search order, whichever leaves fewer long edges), stored as the strict upper triangle when `W` is exactly symmetric,
//! and cut into row ranges for the parallel tasks of one iteration.

use crate::csr::{CsrChunk, CsrParts};
use crate::Csr;
use rayon::prelude::*;

/// Rows per task when building the operator.
pub(super) const BUILD_CHUNK: usize = 8192;

/// `1 / sqrt(row sum of W)` per node, 0 for rows without weight.
pub(super) fn inv_sqrt_degrees(w: &Csr) -> Vec<f32> {
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
pub(super) fn s_value(wv: f32, a: f32, b: f32) -> f32 {
    wv * (a * b)
}

/// Maximum-cardinality-search node order: the next node is the unplaced one with the most
/// already placed neighbours (bucket queue, most recently promoted first; a new component
/// starts at its lowest unplaced node). Neighbours get nearby numbers, so one iteration's
/// gathers from `F` stay in cache. Unlike breadth-first order, a few long edges (a kNN graph
/// with some far neighbours) do not scatter the numbering: the node at the far end of one
/// edge has one placed neighbour, the local frontier has several. O(n + nnz). Returns
/// `order` (new -> old).
fn mcs_order(w: &Csr) -> Vec<u32> {
    const NIL: u32 = u32::MAX;
    let n = w.n;
    let maxdeg = (0..n).map(|i| (w.indptr[i + 1] - w.indptr[i]) as usize).max().unwrap_or(0);
    let mut head = vec![NIL; maxdeg + 1];
    let (mut next, mut prev) = (vec![NIL; n], vec![NIL; n]);
    let mut count = vec![0u32; n];
    let mut placed = vec![false; n];
    // bucket 0 holds every node, lowest index first
    for v in (0..n).rev() {
        next[v] = head[0];
        if head[0] != NIL {
            prev[head[0] as usize] = v as u32;
        }
        head[0] = v as u32;
    }
    let unlink = |v: usize, head: &mut [u32], next: &mut [u32], prev: &mut [u32], b: usize| {
        let (p, q) = (prev[v], next[v]);
        if p == NIL {
            head[b] = q;
        } else {
            next[p as usize] = q;
        }
        if q != NIL {
            prev[q as usize] = p;
        }
    };
    let mut order = Vec::with_capacity(n);
    let mut cur = 0usize;
    for _ in 0..n {
        while head[cur] == NIL {
            cur -= 1;
        }
        let v = head[cur] as usize;
        unlink(v, &mut head, &mut next, &mut prev, cur);
        placed[v] = true;
        order.push(v as u32);
        for &u in &w.indices[w.indptr[v] as usize..w.indptr[v + 1] as usize] {
            let u = u as usize;
            if placed[u] {
                continue;
            }
            let b = count[u] as usize;
            unlink(u, &mut head, &mut next, &mut prev, b);
            count[u] += 1;
            let b = b + 1;
            prev[u] = NIL;
            next[u] = head[b];
            if head[b] != NIL {
                prev[head[b] as usize] = u as u32;
            }
            head[b] = u as u32;
            cur = cur.max(b);
        }
    }
    order
}

/// Rows apart beyond which an edge's row of `F` is unlikely to be in cache (and, in the
/// triangle storage, its scatter reaches past the task's rows).
const LOCAL_SPAN: usize = 4096;

/// The node order, of breadth-first and maximum-cardinality search, with fewer edges spanning
/// more than [`LOCAL_SPAN`] rows (ties: breadth-first). Measured at 1M nodes, k = 10: on a
/// kNN graph's `W` with only local edges breadth-first keeps every edge within the span and runs
/// ~30% faster per iteration; with 20% far edges breadth-first scatters the numbering (4.5x the
/// long edges) and maximum-cardinality search runs ~15% faster. Both orders cost O(n + nnz).
fn node_order(w: &Csr) -> Vec<u32> {
    let bfs = bfs_order(w);
    let mcs = mcs_order(w);
    if long_edges(w, &mcs) < long_edges(w, &bfs) {
        mcs
    } else {
        bfs
    }
}

/// Edges whose ends land more than [`LOCAL_SPAN`] rows apart in `order` (new -> old).
fn long_edges(w: &Csr, order: &[u32]) -> usize {
    let mut pos = vec![0u32; w.n];
    for (new, &old) in order.iter().enumerate() {
        pos[old as usize] = new as u32;
    }
    (0..w.n)
        .map(|i| {
            w.indices[w.indptr[i] as usize..w.indptr[i + 1] as usize]
                .iter()
                .filter(|&&j| (pos[i] as i64 - pos[j as usize] as i64).unsigned_abs() as usize > LOCAL_SPAN)
                .count()
        })
        .sum()
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

/// The spreading operator, renumbered in [`node_order`].
///
/// When `W` is exactly symmetric (no duplicate entries) only the strict upper triangle is
/// stored (`sym`), halving the bytes streamed per iteration: a stored `S_ij`, `j > i`, adds
/// `S_ij F_j` to row `i` and `S_ij F_i` to row `j`. Otherwise rows hold all off-diagonal
/// entries. Diagonal entries live in `diag`. Column indices are in the new numbering, sorted.
pub(crate) struct SpreadOp {
    pub(super) n: usize,
    /// new -> old node
    pub(super) order: Vec<u32>,
    pub(super) sym: bool,
    pub(super) indptr: Vec<usize>,
    pub(super) indices: Vec<u32>,
    pub(super) data: Vec<f32>,
    pub(super) diag: Option<Vec<f32>>,
    /// row ranges of the parallel tasks of one iteration: task `t` owns rows
    /// `bounds[t]..bounds[t + 1]` and writes rows `bounds[t]..reach[t]`
    pub(super) bounds: Vec<usize>,
    pub(super) reach: Vec<usize>,
}

/// A pointer shared by parallel tasks that write disjoint rows through it.
#[derive(Clone, Copy)]
pub(super) struct SyncPtr(pub(super) *mut f32);
// SAFETY: used only for disjoint row ranges from different tasks.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

/// One chunk of new rows of `S`, split at the diagonal: the entries left of it (`lo`), right
/// of it (`up`), the diagonal entries (new row, summed value) and whether a row holds a
/// column twice.
struct Part {
    lo: CsrChunk,
    up: CsrChunk,
    diag: Vec<(u32, f32)>,
    dup: bool,
}

impl SpreadOp {
    pub(crate) fn new(w: &Csr) -> Self {
        let n = w.n;
        let dinv = inv_sqrt_degrees(w);
        let order = node_order(w);
        let mut pos = vec![0u32; n];
        for (r, &o) in order.iter().enumerate() {
            pos[o as usize] = r as u32;
        }
        let parts: Vec<Part> = (0..n.div_ceil(BUILD_CHUNK)).into_par_iter().map(|ch| Part::new(w, &order, &pos, &dinv, ch)).collect();
        let up = CsrParts::concat(parts.iter().map(|p| &p.up));
        let sym = is_symmetric(&parts, &up);
        let s = if sym {
            up
        } else {
            drop(up);
            // Full rows: lower part then upper part (both sorted, lower < r < upper).
            let full: Vec<CsrChunk> = parts.par_iter().map(|p| CsrChunk::interleave(&p.lo, &p.up)).collect();
            CsrParts::concat(full.iter())
        };
        let diag_entries: Vec<(u32, f32)> = parts.iter().flat_map(|p| p.diag.iter().copied()).collect();
        drop(parts);
        let diag = (!diag_entries.is_empty()).then(|| {
            let mut d = vec![0.0f32; n];
            for (r, v) in diag_entries {
                d[r as usize] = v;
            }
            d
        });
        let mut op = SpreadOp { n, order, sym, indptr: s.indptr, indices: s.indices, data: s.data, diag, bounds: vec![0, n], reach: vec![n] };
        op.partition();
        op
    }

    /// Split the rows into tasks of similar work. Symmetric storage writes rows beyond a
    /// task's own range, so each task gets an accumulator up to its largest column; fewer
    /// tasks when those would be large (a `W` without locality).
    fn partition(&mut self) {
        let n = self.n;
        let threads = rayon::current_num_threads().max(1);
        for tasks in [4 * threads, 2 * threads, threads] {
            let bounds = self.balanced_bounds(tasks);
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

    /// Row bounds of up to `tasks` ranges of similar work (entries plus two per row).
    fn balanced_bounds(&self, tasks: usize) -> Vec<usize> {
        let n = self.n;
        if n == 0 {
            return vec![0, 0];
        }
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
        bounds
    }

    /// Rows of task `t` that other tasks' spill reaches: `bounds[t]..spill_end(t)`.
    pub(super) fn spill_end(&self, t: usize) -> usize {
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
}

impl Part {
    /// Chunk `ch` of the new rows: each row's entries renumbered and scaled, sorted, split.
    fn new(w: &Csr, order: &[u32], pos: &[u32], dinv: &[f32], ch: usize) -> Part {
        let n = w.n;
        let (r0, r1) = (ch * BUILD_CHUNK, ((ch + 1) * BUILD_CHUNK).min(n));
        let mut p = Part { lo: CsrChunk::with_rows(r1 - r0), up: CsrChunk::with_rows(r1 - r0), diag: Vec::new(), dup: false };
        let mut row: Vec<(u32, f32)> = Vec::new();
        for (r, &i) in (r0..r1).zip(&order[r0..r1]) {
            let i = i as usize;
            let (e0, e1) = (w.indptr[i] as usize, w.indptr[i + 1] as usize);
            row.clear();
            row.extend(w.indices[e0..e1].iter().zip(&w.data[e0..e1]).map(|(&j, &v)| (pos[j as usize], s_value(v, dinv[i], dinv[j as usize]))));
            row.sort_unstable_by_key(|e| e.0);
            p.dup |= row.windows(2).any(|x| x[0].0 == x[1].0);
            let (lo0, up0) = (p.lo.indices.len(), p.up.indices.len());
            let mut dsum = 0.0f32;
            let mut has_diag = false;
            for &(col, v) in &row {
                match (col as usize).cmp(&r) {
                    std::cmp::Ordering::Less => p.lo.push(col, v),
                    std::cmp::Ordering::Equal => {
                        dsum += v;
                        has_diag = true;
                    }
                    std::cmp::Ordering::Greater => p.up.push(col, v),
                }
            }
            if has_diag && dsum != 0.0 {
                p.diag.push((r as u32, dsum));
            }
            p.lo.end_row(lo0);
            p.up.end_row(up0);
        }
        p
    }
}

/// Exactly symmetric: no duplicates, as many lower as upper entries, and each lower entry
/// (r, col) is matched by an equal upper entry (col, r).
fn is_symmetric(parts: &[Part], up: &CsrParts) -> bool {
    let lo_count: usize = parts.iter().map(|p| p.lo.indices.len()).sum();
    !parts.iter().any(|p| p.dup)
        && lo_count == up.indices.len()
        && parts.par_iter().enumerate().all(|(ch, p)| {
            let mut e = 0usize;
            for (t, &l) in p.lo.lens.iter().enumerate() {
                let r = (ch * BUILD_CHUNK + t) as u32;
                for q in e..e + l {
                    let col = p.lo.indices[q] as usize;
                    let row = &up.indices[up.indptr[col]..up.indptr[col + 1]];
                    match row.binary_search(&r) {
                        Ok(x) if up.data[up.indptr[col] + x] == p.lo.data[q] => {}
                        _ => return false,
                    }
                }
                e += l;
            }
            true
        })
}
