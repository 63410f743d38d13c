//! Frames behind a binary length: Twisted's `Int32StringReceiver` and its
//! 8- and 16-bit siblings.

use super::frame::{
    FrameCodec, FrameHandler, FrameHeader, FrameReceiver, FrameTooLarge, HeaderError,
};

/// A fixed-width unsigned length before each payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthPrefix {
    width: usize,
    big_endian: bool,
}

impl LengthPrefix {
    /// An 8-bit length (payloads up to 255 bytes): `Int8StringReceiver`.
    pub const U8: LengthPrefix = LengthPrefix::new(1);
    /// A 16-bit big-endian length: `Int16StringReceiver`.
    pub const U16: LengthPrefix = LengthPrefix::new(2);
    /// A 32-bit big-endian length: `Int32StringReceiver`, and the header
    /// length of the seeds' file transfer.
    pub const U32: LengthPrefix = LengthPrefix::new(4);

    const fn new(width: usize) -> Self {
        LengthPrefix {
            width,
            big_endian: true,
        }
    }

    /// The same width, least significant byte first.
    pub const fn little_endian(self) -> Self {
        LengthPrefix {
            width: self.width,
            big_endian: false,
        }
    }

    /// Bytes in the prefix.
    pub const fn width(&self) -> usize {
        self.width
    }

    /// The largest length the prefix can declare.
    pub const fn max_declarable(&self) -> u64 {
        (1u64 << (8 * self.width)) - 1
    }

    fn read(&self, prefix: &[u8]) -> u64 {
        let fold = |n: u64, &b: &u8| n << 8 | u64::from(b);
        if self.big_endian {
            prefix.iter().fold(0, fold)
        } else {
            prefix.iter().rev().fold(0, fold)
        }
    }
}

impl FrameCodec for LengthPrefix {
    fn max_header_len(&self) -> usize {
        self.width
    }

    fn parse_header(
        &self,
        buf: &[u8],
        max_length: usize,
    ) -> Result<Option<FrameHeader>, HeaderError> {
        let Some(prefix) = buf.get(..self.width) else {
            return Ok(None);
        };
        let declared = self.read(prefix);
        if declared > max_length as u64 {
            return Err(HeaderError::TooLong {
                declared,
                skip: Some(self.width as u64 + declared),
            });
        }
        Ok(Some(FrameHeader {
            header_len: self.width,
            // At most `max_length`, so it fits.
            body_len: declared as usize,
            trailer_len: 0,
        }))
    }

    fn encode_header(&self, len: usize, out: &mut [u8; 24]) -> Result<usize, FrameTooLarge> {
        let max = self.max_declarable();
        if len as u64 > max {
            return Err(FrameTooLarge { len, max });
        }
        let bytes = (len as u64).to_be_bytes();
        let prefix = &mut out[..self.width];
        prefix.copy_from_slice(&bytes[8 - self.width..]);
        if !self.big_endian {
            prefix.reverse();
        }
        Ok(self.width)
    }
}

/// A [`Protocol`](crate::Protocol) for frames behind a binary length, as
/// Twisted's `Int32StringReceiver` (the default: a 4-byte big-endian prefix)
/// and `Int8`/`Int16StringReceiver`.
///
/// A declared length over the limit
/// ([`with_max_length`](FrameReceiver::with_max_length), 99,999 bytes by
/// default as in Twisted) is refused as soon as the prefix is read, before
/// anything of that size is allocated: it goes to
/// [`FrameHandler::length_limit_exceeded`], which closes the connection by
/// default.
///
/// ```
/// use reactor::framing::{FrameHandler, Frames, LengthPrefixedReceiver};
/// use reactor::testing::StringTransport;
/// use reactor::Protocol;
///
/// /// Answers every frame with the same frame reversed.
/// struct Reverse;
/// impl FrameHandler for Reverse {
///     fn frame_received(&mut self, frames: &mut Frames<'_>, frame: &[u8]) {
///         let reversed: Vec<u8> = frame.iter().rev().copied().collect();
///         frames.send_frame(&reversed).expect("no longer than what came in");
///     }
/// }
///
/// let mut protocol = LengthPrefixedReceiver::new(Reverse);
/// let mut transport = StringTransport::new();
/// protocol.data_received(&mut transport, b"\0\0\0\x03ab");
/// protocol.data_received(&mut transport, b"c\0\0\0\x01z");
/// assert_eq!(transport.value(), b"\0\0\0\x03cba\0\0\0\x01z");
/// ```
pub type LengthPrefixedReceiver<H> = FrameReceiver<LengthPrefix, H>;

impl<H: FrameHandler> FrameReceiver<LengthPrefix, H> {
    /// Wraps `handler` with a 4-byte big-endian prefix.
    pub fn new(handler: H) -> Self {
        FrameReceiver::with_codec(LengthPrefix::U32, handler)
    }

    /// Wraps `handler` with the given prefix.
    pub fn with_prefix(prefix: LengthPrefix, handler: H) -> Self {
        FrameReceiver::with_codec(prefix, handler)
    }
}
