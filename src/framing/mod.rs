//! Message boundaries over TCP's byte stream, as `twisted.protocols.basic`.
//!
//! TCP delivers bytes, not messages: one read may hold half a message or
//! three of them (the "sticky packet" problem of the Python tutorials). A
//! framing receiver is a [`Protocol`](crate::Protocol) that wraps a handler
//! and calls it once per whole message, however the bytes were split.

pub mod line;

pub use line::{LineHandler, LineReceiver, Lines, DEFAULT_MAX_LINE_LENGTH};
