//! Netstrings, `<length>:<bytes>,`: Twisted's `NetstringReceiver`.

use std::io::Write as _;

use super::frame::{
    FrameCodec, FrameHandler, FrameHeader, FrameReceiver, FrameTooLarge, HeaderError,
};

/// D. J. Bernstein's netstring format: the payload's length in decimal
/// ASCII without leading zeros, `:`, the payload, `,`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Netstring;

/// Decimal digits in `u64::MAX`: no longer length can be read.
const MAX_DIGITS: usize = 20;

impl FrameCodec for Netstring {
    fn max_header_len(&self) -> usize {
        MAX_DIGITS + 1
    }

    fn parse_header(
        &self,
        buf: &[u8],
        max_length: usize,
    ) -> Result<Option<FrameHeader>, HeaderError> {
        if buf.len() >= 2 && buf[0] == b'0' && buf[1].is_ascii_digit() {
            return Err(HeaderError::Malformed(
                "netstring length has a leading zero",
            ));
        }
        let Some(colon) = buf.iter().position(|b| !b.is_ascii_digit()) else {
            // Only digits so far. More than a u64 holds is no netstring we
            // could ever accept, and cannot be skipped.
            if buf.len() >= MAX_DIGITS {
                return Err(HeaderError::TooLong {
                    declared: u64::MAX,
                    skip: None,
                });
            }
            return Ok(None);
        };
        match buf[colon] {
            b':' if colon == 0 => return Err(HeaderError::Malformed("netstring has no length")),
            b':' => {}
            _ => {
                return Err(HeaderError::Malformed(
                    "netstring length is not a decimal number followed by ':'",
                ))
            }
        }
        let declared = buf[..colon].iter().fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        });
        if declared > max_length as u64 {
            return Err(HeaderError::TooLong {
                declared,
                skip: Some((colon as u64 + 2).saturating_add(declared)),
            });
        }
        Ok(Some(FrameHeader {
            header_len: colon + 1,
            // At most `max_length`, so it fits.
            body_len: declared as usize,
            trailer_len: 1,
        }))
    }

    fn check_trailer(&self, trailer: &[u8]) -> Result<(), &'static str> {
        if trailer == b"," {
            Ok(())
        } else {
            Err("netstring does not end with ','")
        }
    }

    fn encode_header(&self, len: usize, out: &mut [u8; 24]) -> Result<usize, FrameTooLarge> {
        let mut cursor = &mut out[..];
        // 20 digits and a colon always fit in 24 bytes.
        write!(cursor, "{len}:").expect("a usize and a colon fit in 24 bytes");
        Ok(24 - cursor.len())
    }

    fn trailer(&self) -> &'static [u8] {
        b","
    }
}

/// A [`Protocol`](crate::Protocol) for netstrings, as Twisted's
/// `NetstringReceiver`.
///
/// A declared length over the limit (99,999 bytes by default) is refused as
/// soon as its digits pass it, before anything of that size is allocated;
/// anything that is not a netstring (a non-digit in the length, a leading
/// zero, a missing `,`) goes to [`FrameHandler::frame_malformed`], which
/// closes the connection with a reason that says what was wrong.
///
/// ```
/// use reactor::framing::{FrameHandler, Frames, NetstringReceiver};
/// use reactor::testing::StringTransport;
/// use reactor::Protocol;
///
/// struct Shout;
/// impl FrameHandler for Shout {
///     fn frame_received(&mut self, frames: &mut Frames<'_>, frame: &[u8]) {
///         frames.send_frame(&frame.to_ascii_uppercase()).expect("netstrings hold any length");
///     }
/// }
///
/// let mut protocol = NetstringReceiver::new(Shout);
/// let mut transport = StringTransport::new();
/// protocol.data_received(&mut transport, b"5:hello,2:");
/// protocol.data_received(&mut transport, b"ok,");
/// assert_eq!(transport.value(), b"5:HELLO,2:OK,");
/// ```
pub type NetstringReceiver<H> = FrameReceiver<Netstring, H>;

impl<H: FrameHandler> FrameReceiver<Netstring, H> {
    /// Wraps `handler`.
    pub fn new(handler: H) -> Self {
        FrameReceiver::with_codec(Netstring, handler)
    }
}
