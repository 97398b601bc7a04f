//! Bounded per-row best-k lists for the exact search, with vectorisable scans of a tile row
//! or column.

/// Per-row best-k lists, best first, ordered by (key desc, index asc); unfilled slots hold
/// (-inf, u32::MAX). The kept set is the top-k of everything offered, whatever the order.
pub(crate) struct TopK {
    k: usize,
    pub vals: Vec<f32>,
    pub idx: Vec<u32>,
}

#[inline]
fn beats(s: f32, j: u32, t: f32, tj: u32) -> bool {
    s > t || (s == t && j < tj)
}

impl TopK {
    pub(super) fn new(rows: usize, k: usize) -> Self {
        Self { k, vals: vec![f32::NEG_INFINITY; rows * k], idx: vec![u32::MAX; rows * k] }
    }

    #[inline]
    fn worst(&self, r: usize) -> (f32, u32) {
        let p = r * self.k + self.k - 1;
        (self.vals[p], self.idx[p])
    }

    /// Insert (s, j) into row r; the caller has checked that it beats the worst entry.
    #[inline]
    pub(super) fn insert(&mut self, r: usize, s: f32, j: u32) {
        let base = r * self.k;
        let mut pos = self.k - 1;
        while pos > 0 {
            let (v, i) = (self.vals[base + pos - 1], self.idx[base + pos - 1]);
            if beats(s, j, v, i) {
                self.vals[base + pos] = v;
                self.idx[base + pos] = i;
                pos -= 1;
            } else {
                break;
            }
        }
        self.vals[base + pos] = s;
        self.idx[base + pos] = j;
    }

    pub(super) fn merge(mut self, other: TopK) -> TopK {
        let rows = self.vals.len() / self.k;
        for r in 0..rows {
            for e in r * self.k..(r + 1) * self.k {
                let (s, j) = (other.vals[e], other.idx[e]);
                if j == u32::MAX {
                    break;
                }
                let (t, tj) = self.worst(r);
                if beats(s, j, t, tj) {
                    self.insert(r, s, j);
                }
            }
        }
        self
    }

    /// Offer tile row `r` (keys of candidates `j0..j0+cols`) to list `row`, skipping `skip`.
    /// Chunks of 16 are first tested branch-free (vectorised) against the threshold; only
    /// chunks holding a possible winner take the scalar path.
    #[inline]
    pub(super) fn scan_row(&mut self, row: usize, keys: &[f32], j0: usize, skip: usize) {
        let (mut t, mut tj) = self.worst(row);
        for (q, ch) in keys.chunks(SCAN_CHUNK).enumerate() {
            if !ch.iter().fold(false, |any, &s| any | (s >= t)) {
                continue;
            }
            for (c, &s) in ch.iter().enumerate() {
                if s >= t {
                    let j = j0 + q * SCAN_CHUNK + c;
                    if j != skip && beats(s, j as u32, t, tj) {
                        self.insert(row, s, j as u32);
                        (t, tj) = self.worst(row);
                    }
                }
            }
        }
    }

    /// Offer rows `0..mr` of a tile (row stride `ld`; keys of candidates `j0..j0 + nc`) to
    /// rows `0..mr` of this list, row `r` skipping itself (`i0 + r`).
    pub(super) fn scan_tile_rows(&mut self, tile: &[f32], ld: usize, mr: usize, nc: usize, i0: usize, j0: usize) {
        for r in 0..mr {
            self.scan_row(r, &tile[r * ld..r * ld + nc], j0, i0 + r);
        }
    }

    /// Offer the columns of a tile: tile row `r` (candidate `i0 + r`, keys against rows
    /// `0..nc` of this list) to every list. `tv`/`ti` are scratch for the thresholds.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn scan_tile_cols(&mut self, tile: &[f32], ld: usize, mr: usize, nc: usize, i0: usize, tv: &mut Vec<f32>, ti: &mut Vec<u32>) {
        tv.clear();
        ti.clear();
        for c in 0..nc {
            let (t, tj) = self.worst(c);
            tv.push(t);
            ti.push(tj);
        }
        for r in 0..mr {
            self.scan_col(&tile[r * ld..r * ld + nc], (i0 + r) as u32, tv, ti);
        }
    }

    /// Offer tile row `keys` (the candidate `gi` scored against rows `0..cols` of this list)
    /// to every list; `tv`/`ti` cache the lists' thresholds.
    #[inline]
    fn scan_col(&mut self, keys: &[f32], gi: u32, tv: &mut [f32], ti: &mut [u32]) {
        for q0 in (0..keys.len()).step_by(SCAN_CHUNK) {
            let q1 = (q0 + SCAN_CHUNK).min(keys.len());
            if !keys[q0..q1].iter().zip(&tv[q0..q1]).fold(false, |any, (&s, &t)| any | (s >= t)) {
                continue;
            }
            for c in q0..q1 {
                let s = keys[c];
                if s >= tv[c] && beats(s, gi, tv[c], ti[c]) {
                    self.insert(c, s, gi);
                    (tv[c], ti[c]) = self.worst(c);
                }
            }
        }
    }
}

/// Width of the branch-free pre-test in the top-k scans.
const SCAN_CHUNK: usize = 16;
