//! Compressed sparse rows: the matrix type, its structural check, and the builder that
//! assembles a matrix from row chunks produced in parallel.

use crate::{CoreError, Result};
use rayon::prelude::*;

/// Square CSR matrix, `n x n`, `f32` values, `u32` column indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Csr {
    pub n: usize,
    /// length n + 1
    pub indptr: Vec<u64>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

impl Csr {
    /// Check the structure: `indptr` of length n+1, starting at 0, non-decreasing, ending at
    /// `indices.len() == data.len()`; column indices < n. Errors name the first bad row.
    pub fn validate(&self) -> Result<()> {
        let n = self.n;
        if self.indptr.len() != n + 1 {
            return Err(CoreError::InvalidGraph(format!("indptr has {} entries, expected n+1 = {}", self.indptr.len(), n + 1)));
        }
        if self.indices.len() != self.data.len() {
            return Err(CoreError::InvalidGraph(format!("indices has {} entries but data {}", self.indices.len(), self.data.len())));
        }
        if self.indptr[0] != 0 || self.indptr[n] as usize != self.indices.len() {
            return Err(CoreError::InvalidGraph(format!("indptr must run from 0 to nnz={}", self.indices.len())));
        }
        if let Some(i) = (0..n).into_par_iter().find_first(|&i| self.indptr[i] > self.indptr[i + 1]) {
            return Err(CoreError::InvalidGraph(format!("indptr decreases at row {i}")));
        }
        let bad = (0..n).into_par_iter().find_first(|&i| {
            (self.indptr[i] as usize..self.indptr[i + 1] as usize).any(|e| self.indices[e] as usize >= n)
        });
        if let Some(i) = bad {
            let e = (self.indptr[i] as usize..self.indptr[i + 1] as usize).find(|&e| self.indices[e] as usize >= n).unwrap_or(0);
            return Err(CoreError::InvalidGraph(format!("row {i} has column index {}, but n={n}", self.indices[e])));
        }
        Ok(())
    }

    /// The `n x n` matrix whose rows are those of `chunks`, in order.
    pub(crate) fn from_chunks(n: usize, chunks: &[CsrChunk]) -> Csr {
        let parts = CsrParts::concat(chunks.iter());
        debug_assert_eq!(parts.indptr.len(), n + 1);
        Csr { n, indptr: parts.indptr.into_iter().map(|p| p as u64).collect(), indices: parts.indices, data: parts.data }
    }
}

/// Consecutive rows of a CSR matrix, built by one task: the rows' lengths and their entries.
#[derive(Default)]
pub(crate) struct CsrChunk {
    pub(crate) lens: Vec<usize>,
    pub(crate) indices: Vec<u32>,
    pub(crate) data: Vec<f32>,
}

impl CsrChunk {
    /// Empty, with room for `rows` row lengths.
    pub(crate) fn with_rows(rows: usize) -> Self {
        CsrChunk { lens: Vec::with_capacity(rows), indices: Vec::new(), data: Vec::new() }
    }

    /// Append one entry to the row being built.
    #[inline]
    pub(crate) fn push(&mut self, col: u32, v: f32) {
        self.indices.push(col);
        self.data.push(v);
    }

    /// Close the row being built; `start` is `self.indices.len()` when it began.
    #[inline]
    pub(crate) fn end_row(&mut self, start: usize) {
        self.lens.push(self.indices.len() - start);
    }

    /// Row by row, the entries of `a` followed by those of `b` (chunks of the same rows).
    pub(crate) fn interleave(a: &CsrChunk, b: &CsrChunk) -> CsrChunk {
        debug_assert_eq!(a.lens.len(), b.lens.len());
        let mut out = CsrChunk { lens: Vec::with_capacity(a.lens.len()), indices: Vec::with_capacity(a.indices.len() + b.indices.len()), data: Vec::with_capacity(a.data.len() + b.data.len()) };
        let (mut ea, mut eb) = (0usize, 0usize);
        for (&la, &lb) in a.lens.iter().zip(&b.lens) {
            out.indices.extend_from_slice(&a.indices[ea..ea + la]);
            out.indices.extend_from_slice(&b.indices[eb..eb + lb]);
            out.data.extend_from_slice(&a.data[ea..ea + la]);
            out.data.extend_from_slice(&b.data[eb..eb + lb]);
            out.lens.push(la + lb);
            (ea, eb) = (ea + la, eb + lb);
        }
        out
    }
}

/// The three arrays of a CSR matrix, with `usize` row pointers.
pub(crate) struct CsrParts {
    pub(crate) indptr: Vec<usize>,
    pub(crate) indices: Vec<u32>,
    pub(crate) data: Vec<f32>,
}

impl CsrParts {
    /// The rows of `chunks`, in order.
    pub(crate) fn concat<'a, I>(chunks: I) -> CsrParts
    where
        I: Iterator<Item = &'a CsrChunk> + Clone,
    {
        let total: usize = chunks.clone().map(|c| c.indices.len()).sum();
        let rows: usize = chunks.clone().map(|c| c.lens.len()).sum();
        let mut indptr = Vec::with_capacity(rows + 1);
        let mut indices = Vec::with_capacity(total);
        let mut data = Vec::with_capacity(total);
        indptr.push(0usize);
        let mut acc = 0usize;
        for c in chunks {
            for &l in &c.lens {
                acc += l;
                indptr.push(acc);
            }
            indices.extend_from_slice(&c.indices);
            data.extend_from_slice(&c.data);
        }
        CsrParts { indptr, indices, data }
    }
}
