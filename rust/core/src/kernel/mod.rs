//! Dense compute kernels, each with one portable scalar implementation (the reference) and
//! x86_64 implementations for AVX2+FMA and AVX-512F. The implementation is chosen once per
//! process: [`kernels`] returns the table for [`crate::cpu::level`].
//!
//! Determinism rests on one rule: within a run, a given pair of rows always gets the same
//! value from a given kernel family, wherever and with whatever else it is computed. Each
//! family therefore has one fixed reduction order per level (documented in its module), and
//! its batched forms repeat the single-pair arithmetic exactly. Results differ between
//! levels (a fused multiply-add rounds once, a separate multiply and add twice), never
//! within one.
//!
//! | family | module | used by | per-pair order |
//! |---|---|---|---|
//! | GEMM tile | [`gemm`] | exact search, NN-descent leaves | one accumulator, features in order |
//! | row dot (and 4 at once) | [`dot`] | random-projection tree splits | two interleaved lane accumulators |
//! | pair block (4 x 4 pairs) | [`pairdot`] | NN-descent joins, random fill | one lane accumulator, then the tail |
//!
//! The families are not merged: their values for the same pair differ in the last bits,
//! and each one's results (the kNN graphs) are fixed by the order documented here.

// Index loops over small register arrays are the clearest way to write micro-kernels.
#![allow(clippy::needless_range_loop)]

pub(crate) mod dot;
pub(crate) mod gemm;
mod pack;
pub(crate) mod pairdot;

pub(crate) use gemm::gemm_tile;
pub(crate) use pack::{pack_rows, pack_rows_seq, packed_len, round_up, PW};

use crate::cpu::Level;
use std::sync::OnceLock;

/// The implementations of one instruction level.
pub(crate) struct Kernels {
    /// `c = a b^T` for packed panels (see [`gemm::gemm_tile`])
    pub(crate) tile: gemm::TileFn,
    /// dot product of two rows
    pub(crate) dot: dot::DotFn,
    /// four dot products of one row with four others, each equal to `dot` bit for bit
    pub(crate) dot4: dot::Dot4Fn,
    /// 4 x 4 pair block (see [`pairdot::cross`])
    pub(crate) block: pairdot::BlockFn,
}

impl Kernels {
    /// The table of `level`, which the CPU must support.
    pub(crate) fn for_level(level: Level) -> Kernels {
        match level {
            Level::Scalar => Kernels { tile: gemm::tile_scalar, dot: dot::dot_scalar, dot4: dot::dot4_scalar, block: pairdot::block_scalar },
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => Kernels { tile: gemm::tile_avx2, dot: dot::dot_avx2, dot4: dot::dot4_avx2, block: pairdot::block_avx2 },
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => Kernels { tile: gemm::tile_avx512, dot: dot::dot_avx512, dot4: dot::dot4_avx512, block: pairdot::block_avx512 },
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("no {level:?} kernels on this architecture"),
        }
    }
}

/// The kernels of this CPU (chosen once).
pub(crate) fn kernels() -> &'static Kernels {
    static K: OnceLock<Kernels> = OnceLock::new();
    K.get_or_init(|| Kernels::for_level(crate::cpu::level()))
}

#[cfg(test)]
mod tests;
