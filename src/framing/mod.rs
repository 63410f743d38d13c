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

pub mod frame;
pub mod length;
pub mod line;
pub mod netstring;

pub use frame::{
    FrameCodec, FrameHandler, FrameHeader, FrameReceiver, FrameTooLarge, Frames, HeaderError,
    DEFAULT_MAX_FRAME_LENGTH,
};
pub use length::{LengthPrefix, LengthPrefixedReceiver};
pub use line::{LineHandler, LineReceiver, Lines, DEFAULT_MAX_LINE_LENGTH};
pub use netstring::{Netstring, NetstringReceiver};
