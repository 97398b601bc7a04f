//! Conversions of arguments: string options into core enums (one parser per enum), and CSR
//! arrays into the core's [`Csr`].
//!
//! Copies: inputs the core reads as they are (embeddings, kNN indices and scores, labels,
//! confidences, the clamped mask) are borrowed from numpy, not copied. A `W` passed in is
//! copied once into the core's owned [`Csr`] (see [`csr_in`]).

use crate::errors::{to_pyerr, ParameterError};
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use sw2s_core::{CoreError, Csr, Method, Metric};

/// A core enum read from a Python string option (as polars' `Wrap<T>`): the names are the
/// core's ([`Metric::from_name`], [`Method::from_name`]); anything else, a non-string too,
/// is a `ParameterError` naming the value as Python writes it, e.g.
/// `metric='manhattan' is not one of 'cosine', 'ip', 'sqeuclidean'`.
pub(crate) struct Wrap<T>(pub(crate) T);

/// A core enum with a table of names.
pub(crate) trait Named: Sized + Copy + 'static {
    /// the parameter's name in messages
    const PARAMETER: &'static str;
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
    fn from_name(name: &str) -> Option<Self>;

    /// The names, in the core's order, as a Python tuple (`_core.METRICS`, `_core.METHODS`).
    fn names_tuple(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
        PyTuple::new(py, Self::ALL.iter().map(|v| v.name()))
    }
}

impl Named for Metric {
    const PARAMETER: &'static str = "metric";
    const ALL: &'static [Self] = &Metric::ALL;
    fn name(self) -> &'static str {
        Metric::name(self)
    }
    fn from_name(name: &str) -> Option<Self> {
        Metric::from_name(name)
    }
}

impl Named for Method {
    const PARAMETER: &'static str = "method";
    const ALL: &'static [Self] = &Method::ALL;
    fn name(self) -> &'static str {
        Method::name(self)
    }
    fn from_name(name: &str) -> Option<Self> {
        Method::from_name(name)
    }
}

impl<'a, 'py, T: Named> FromPyObject<'a, 'py> for Wrap<T> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Some(v) = obj.extract::<String>().ok().and_then(|s| T::from_name(&s)) {
            return Ok(Wrap(v));
        }
        let names: Vec<String> = T::ALL.iter().map(|v| format!("'{}'", v.name())).collect();
        Err(ParameterError::new_err(format!("{}={} is not one of {}", T::PARAMETER, obj.repr()?, names.join(", "))))
    }
}

/// CSR arrays from numpy (`int64` row pointers, `int32` columns) as a core [`Csr`]: a copy of
/// all three arrays (the core owns its matrices, and its index types are unsigned). The arrays are checked here, before the conversion to unsigned types, since negative
/// values cannot be represented after it; errors are `GraphError`s.
pub(crate) fn csr_in(
    n: usize,
    indptr: &PyReadonlyArray1<'_, i64>,
    indices: &PyReadonlyArray1<'_, i32>,
    data: &PyReadonlyArray1<'_, f32>,
) -> PyResult<Csr> {
    let indptr = indptr.as_slice()?;
    let indices = indices.as_slice()?;
    let data = data.as_slice()?;
    let bad = |m: String| to_pyerr(CoreError::InvalidGraph(m));
    if indptr.len() != n + 1 {
        return Err(bad(format!("indptr has length {}, expected n+1 = {}", indptr.len(), n + 1)));
    }
    if indices.len() != data.len() {
        return Err(bad(format!("{} indices but {} values", indices.len(), data.len())));
    }
    if let Some(row) = indptr.windows(2).position(|w| w[0] > w[1] || w[0] < 0) {
        return Err(bad(format!("indptr decreases at row {row}")));
    }
    if indptr[n] as usize != indices.len() {
        return Err(bad(format!("indptr[n]={} but there are {} entries", indptr[n], indices.len())));
    }
    if let Some(pos) = indices.iter().position(|&j| j < 0 || j as usize >= n) {
        return Err(bad(format!("column index {} at entry {pos} is outside [0, {n})", indices[pos])));
    }
    Ok(Csr {
        n,
        indptr: indptr.iter().map(|&v| v as u64).collect(),
        indices: indices.iter().map(|&v| v as u32).collect(),
        data: data.to_vec(),
    })
}
