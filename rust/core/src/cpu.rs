//! The CPU's vector instruction level, detected once per process. Every kernel chooses its
//! implementation from this one value (see [`crate::kernel::kernels`]), so all kernels of a
//! run agree on the level.

use std::sync::OnceLock;

/// Instruction levels the kernels have implementations for, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// portable Rust, no intrinsics
    Scalar,
    /// x86_64 AVX2 with FMA
    Avx2,
    /// x86_64 AVX-512F (with AVX2 and FMA, which every AVX-512F processor has)
    Avx512,
}

/// The level of this CPU (detected on the first call, then cached).
pub(crate) fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Level {
    let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
    if avx2 && std::is_x86_feature_detected!("avx512f") {
        Level::Avx512
    } else if avx2 {
        Level::Avx2
    } else {
        Level::Scalar
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Level {
    Level::Scalar
}

/// Every level this CPU can run, lowest first (for tests comparing the implementations).
#[cfg(test)]
pub(crate) fn supported_levels() -> Vec<Level> {
    [Level::Scalar, Level::Avx2, Level::Avx512].into_iter().filter(|&l| l <= level()).collect()
}
