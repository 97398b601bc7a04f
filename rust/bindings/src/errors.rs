//! The Python exceptions and warnings of `selective_w2sg.graph.errors`, and the one mapping of core
//! errors onto them.

use pyo3::prelude::*;
use sw2s_core::CoreError;

// The exception classes of `selective_w2sg.graph.errors`. They are defined in Python because most
// derive from both `Sw2sError` and a builtin (`ValueError`, `KeyboardInterrupt`), which
// `create_exception!` cannot express; here they are imported as typed Rust handles.
pyo3::import_exception!(selective_w2sg.graph.errors, Sw2sError);
pyo3::import_exception!(selective_w2sg.graph.errors, InputError);
pyo3::import_exception!(selective_w2sg.graph.errors, EmbeddingsError);
pyo3::import_exception!(selective_w2sg.graph.errors, LabelsError);
pyo3::import_exception!(selective_w2sg.graph.errors, GraphError);
pyo3::import_exception!(selective_w2sg.graph.errors, ParameterError);
pyo3::import_exception!(selective_w2sg.graph.errors, InterruptedComputation);
// A `UserWarning` subclass, imported the same way (a class is a class).
pyo3::import_exception!(selective_w2sg.graph.errors, ExactFallbackWarning);
pyo3::import_exception!(selective_w2sg.graph.errors, ThreadsCappedWarning);

/// The Python exception for a core error: its class in `selective_w2sg.graph.errors`, with the
/// core's message. Every error the core returns goes through here.
pub(crate) fn to_pyerr(err: CoreError) -> PyErr {
    let msg = err.to_string();
    match err {
        CoreError::NonFinite { .. } | CoreError::ZeroNorm { .. } | CoreError::TooFewPoints { .. } | CoreError::ScoreOverflow(_) => {
            EmbeddingsError::new_err(msg)
        }
        CoreError::ShapeMismatch(_) => InputError::new_err(msg),
        CoreError::InvalidK { .. } | CoreError::InvalidAlpha(_) | CoreError::InvalidParameter(_) => ParameterError::new_err(msg),
        CoreError::LabelOutOfRange { .. } | CoreError::ZeroLabelRow { .. } => LabelsError::new_err(msg),
        CoreError::InvalidGraph(_) => GraphError::new_err(msg),
        CoreError::Cancelled => InterruptedComputation::new_err(msg),
    }
}

/// A panic in the core, reported as `Sw2sError` instead of crashing Python.
pub(crate) fn internal_error(what: String) -> PyErr {
    Sw2sError::new_err(format!("internal error in the Rust core (please report): {what}"))
}
