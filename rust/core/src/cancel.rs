//! Cancellation: long calls take a `&AtomicBool` that the caller (the Python bindings, on
//! Ctrl-C) may raise at any time; the work polls it between blocks and stops with
//! [`CoreError::Cancelled`].

use crate::{CoreError, Result};
use std::sync::atomic::{AtomicBool, Ordering};

/// `Err(Cancelled)` once the flag is raised.
#[inline]
pub(crate) fn check_cancel(cancel: &AtomicBool) -> Result<()> {
    if is_cancelled(cancel) {
        Err(CoreError::Cancelled)
    } else {
        Ok(())
    }
}

/// Whether the flag is raised (for parallel loops that skip their remaining work and let
/// the caller report the cancellation with [`check_cancel`] afterwards).
#[inline]
pub(crate) fn is_cancelled(cancel: &AtomicBool) -> bool {
    cancel.load(Ordering::Relaxed)
}
