//! Panic isolation: a bug in one protocol must not stop the reactor.
//!
//! Every call into user code (protocol, factory and timer callbacks) runs
//! under [`catch`]. Unwind safety: the reactor never calls user code while
//! one of its own structures is half-updated (a callback runs with its
//! protocol taken out of the slot and the slab, buffers and timer heap
//! consistent), so the reactor's state is sound after an unwind; the user
//! object that panicked is the one thing that may be inconsistent, and it is
//! closed (a connection) or dropped (a timer) right after. Hence the
//! `AssertUnwindSafe`. With `panic = "abort"` none of this applies: the
//! process ends, as for any Rust program.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

/// Runs `f`, turning a panic into `Err` with its message.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| message(&*payload))
}

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a
/// `String`), or a placeholder for other payloads.
fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}

/// Drops `value` under [`catch`]: a user type's `Drop` (a protocol, a
/// factory, a timer's closure) may panic like any other callback. `what`
/// names it in the log line.
pub(crate) fn drop_caught<T>(value: T, what: &str) {
    if let Err(why) = catch(move || drop(value)) {
        log::error!("dropping {what} panicked: {why}");
    }
}
