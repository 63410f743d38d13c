//! Message boundaries over TCP's byte stream, as `twisted.protocols.basic`.
//!
//! TCP delivers bytes, not messages: one read may hold half a message or
//! three of them (the "sticky packet" problem of the Python tutorials). A
//! framing receiver is a [`Protocol`](crate::Protocol) that wraps a handler
//! and calls it once per whole message, however the bytes were split:
//!
//! - [`LineReceiver`] for delimited lines (Twisted's `LineReceiver`);
//! - [`LengthPrefixedReceiver`] for frames behind an 8-, 16- or 32-bit
//!   length (`Int8/16/32StringReceiver`);
//! - [`NetstringReceiver`] for `<length>:<bytes>,` (`NetstringReceiver`).
//!
//! Each has a maximum length whose hook closes the connection by default,
//! a raw mode for bytes that follow a header (a file body), and reports the
//! bytes of a message still incomplete at `connection_lost`.
//!
//! All three are one [`Receiver`] (in `receiver.rs`: carrying an incomplete
//! message between reads, raw mode, handed-back bytes, closing on bad input)
//! with a different splitter, the part that finds where a message ends
//! (`line.rs`, `frame.rs`). What an incomplete message costs is the bytes
//! that arrived, never the length a header declares.

pub mod frame;
pub mod length;
pub mod line;
pub mod netstring;
mod receiver;

pub use frame::{
    FrameCodec, FrameHandler, FrameHeader, FrameReceiver, FrameTooLarge, Frames, HeaderError,
    DEFAULT_MAX_FRAME_LENGTH,
};
pub use length::{LengthPrefix, LengthPrefixedReceiver};
pub use line::{LineHandler, LineReceiver, Lines, DEFAULT_MAX_LINE_LENGTH};
pub use netstring::{Netstring, NetstringReceiver};
pub use receiver::{Context, Receiver};
