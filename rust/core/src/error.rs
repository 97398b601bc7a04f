use thiserror::Error;

/// Every way a core call can fail. The bindings map each variant to a typed Python
/// exception; messages name the offending value.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    #[error("embeddings row {row} has a non-finite value ({value}) in column {col}")]
    NonFinite { row: usize, col: usize, value: f32 },
    #[error("embeddings row {row} has zero norm; cosine similarity is undefined for it")]
    ZeroNorm { row: usize },
    #[error("k={k} must satisfy 1 <= k < n (n={n})")]
    InvalidK { k: usize, n: usize },
    #[error("need at least 2 points, got n={n}")]
    TooFewPoints { n: usize },
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),
    /// the value as the caller gave it, written as Python's `repr` writes it (`alpha=1.0`)
    #[error("alpha={} must be in [0, 1)", crate::fmt::float_repr(*.0))]
    InvalidAlpha(f64),
    #[error("labels row {row} has value {value} outside [0, 1]")]
    LabelOutOfRange { row: usize, value: f32 },
    #[error("labels row {row} sums to 0")]
    ZeroLabelRow { row: usize },
    #[error("invalid graph: {0}")]
    InvalidGraph(String),
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    #[error("{0}")]
    ScoreOverflow(String),
    #[error("interrupted")]
    Cancelled,
}

pub type Result<T> = std::result::Result<T, CoreError>;
