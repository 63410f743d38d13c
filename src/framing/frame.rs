//! Frames with a header that tells their length: the machinery shared by the
//! length-prefixed and netstring receivers.

use std::fmt;

use super::receiver::{Context, Event, Handles, Mode, Next, Receiver, Splitter};
use crate::reason::Reason;

/// Twisted's `MAX_LENGTH` for `IntNStringReceiver` and `NetstringReceiver`.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 99_999;

/// Where a frame starts, once its header has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes of header before the payload.
    pub header_len: usize,
    /// Bytes of payload.
    pub body_len: usize,
    /// Bytes after the payload that close the frame (a netstring's `,`).
    pub trailer_len: usize,
}

impl FrameHeader {
    fn total(&self) -> usize {
        self.header_len + self.body_len + self.trailer_len
    }
}

/// Why a header could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// The declared payload length is over the limit. `skip` is the whole
    /// frame's length on the wire when it is known, so the rest of the stream
    /// can still be read if the handler keeps the connection.
    TooLong {
        /// The payload length the header declares (as far as it was read).
        declared: u64,
        /// Header + payload + trailer bytes, when the header is complete.
        skip: Option<u64>,
    },
    /// The bytes are not a header of this format; the stream cannot be
    /// resynchronised.
    Malformed(&'static str),
}

/// Why [`Frames::send_frame`] refused a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTooLarge {
    /// The payload's length.
    pub len: usize,
    /// The largest payload the header format can declare.
    pub max: u64,
}

impl fmt::Display for FrameTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a frame of {} bytes does not fit a header that declares at most {}",
            self.len, self.max
        )
    }
}

impl std::error::Error for FrameTooLarge {}

/// A wire format whose header gives the payload's length: a binary length
/// prefix ([`LengthPrefix`](super::LengthPrefix)) or a netstring
/// ([`Netstring`](super::Netstring)).
pub trait FrameCodec: 'static {
    /// The longest header the format allows; a partial header is never
    /// carried past this many bytes.
    fn max_header_len(&self) -> usize;

    /// Reads the header at the start of `buf`: `Ok(None)` while it is still
    /// incomplete. A declared length over `max_length` is an error *before*
    /// anything of that size is allocated.
    fn parse_header(
        &self,
        buf: &[u8],
        max_length: usize,
    ) -> Result<Option<FrameHeader>, HeaderError>;

    /// Checks the bytes after the payload (`trailer_len` of them).
    fn check_trailer(&self, trailer: &[u8]) -> Result<(), &'static str> {
        let _ = trailer;
        Ok(())
    }

    /// Writes the header for a payload of `len` bytes into `out` and returns
    /// how many bytes it used, or refuses a length the format cannot declare.
    fn encode_header(&self, len: usize, out: &mut [u8; 24]) -> Result<usize, FrameTooLarge>;

    /// What follows the payload on the wire.
    fn trailer(&self) -> &'static [u8] {
        b""
    }
}

/// What a frame-oriented protocol implements; a [`FrameReceiver`] turns the
/// byte stream into calls of these.
pub trait FrameHandler: 'static {
    /// The connection is made.
    fn connection_made(&mut self, frames: &mut Frames<'_>) {
        let _ = frames;
    }

    /// One complete frame's payload.
    fn frame_received(&mut self, frames: &mut Frames<'_>, frame: &[u8]);

    /// Bytes that arrived in raw mode ([`Frames::set_raw_mode`]), as they came.
    fn raw_data_received(&mut self, frames: &mut Frames<'_>, data: &[u8]) {
        let _ = (frames, data);
    }

    /// A header declared a payload of `declared` bytes, over the limit. The
    /// default logs it and closes the connection; nothing of that size is
    /// ever buffered. A handler that keeps the connection open has the
    /// oversized frame skipped (when its length is known) and reads on.
    fn length_limit_exceeded(&mut self, frames: &mut Frames<'_>, declared: u64) {
        let why = format!(
            "frame of {declared} bytes exceeds the {} byte limit",
            frames.max_length()
        );
        frames.close_because(why);
    }

    /// The bytes are not a frame of this format (`what` says how). The
    /// default logs it and closes the connection. The stream cannot be
    /// resynchronised, so nothing after it is delivered either way.
    fn frame_malformed(&mut self, frames: &mut Frames<'_>, what: &str) {
        frames.close_because(format!("malformed frame: {what}"));
    }

    /// The connection is gone. `unfinished` holds the bytes of a frame that
    /// was still incomplete, header included (empty if none): nothing is
    /// dropped silently. When the receiver closed the connection through
    /// [`Frames::close_because`], `reason` is [`Reason::BadInput`].
    fn connection_lost(&mut self, frames: &mut Frames<'_>, reason: &Reason, unfinished: &[u8]) {
        let _ = (frames, reason, unfinished);
    }

    /// The outgoing buffer reached its high watermark; see
    /// [`Protocol::pause_producing`](crate::Protocol::pause_producing). The
    /// default stops reading.
    fn pause_producing(&mut self, frames: &mut Frames<'_>) {
        frames.transport().pause_reading();
    }

    /// Every buffer that paused this producer drained below its low
    /// watermark; a producer writes on here. Reading paused by
    /// `pause_producing` has already resumed: see
    /// [`Protocol::resume_producing`](crate::Protocol::resume_producing).
    fn resume_producing(&mut self, frames: &mut Frames<'_>) {
        let _ = frames;
    }

    /// A graceful stop began; see [`Protocol::stopping`](crate::Protocol::stopping).
    /// The default closes the connection once what is buffered is flushed.
    fn stopping(&mut self, frames: &mut Frames<'_>) -> crate::OnStop {
        let _ = frames;
        crate::OnStop::Close
    }

    /// The idle timeout or deadline passed; see
    /// [`Protocol::timeout_connection`](crate::Protocol::timeout_connection).
    /// The default closes the connection.
    fn timeout_connection(&mut self, frames: &mut Frames<'_>, timeout: crate::Timeout) {
        let _ = timeout;
        frames.transport().lose_connection();
    }

    /// Whether the peer's FIN should leave the connection open for writing;
    /// see [`Protocol::allows_half_close`](crate::Protocol::allows_half_close).
    fn allows_half_close(&self) -> bool {
        false
    }

    /// The peer closed its writing side (with `allows_half_close`).
    fn read_connection_lost(&mut self, frames: &mut Frames<'_>) {
        let _ = frames;
    }

    /// A timer scheduled through [`Context::call_later`] fired.
    fn timer_fired(&mut self, frames: &mut Frames<'_>, tag: u64) {
        let _ = (frames, tag);
    }
}

/// What a [`FrameHandler`] callback gets: the transport, plus frame sending
/// and mode switching.
pub type Frames<'a> = Context<'a, dyn FrameCodec>;

impl Frames<'_> {
    /// Writes `payload` as one frame (header, payload, trailer) in one
    /// vectored write. Refuses a payload the header cannot declare (over 255
    /// bytes with an 8-bit prefix, say) and writes nothing then.
    pub fn send_frame(&mut self, payload: &[u8]) -> Result<(), FrameTooLarge> {
        let mut header = [0u8; 24];
        let n = self.format.encode_header(payload.len(), &mut header)?;
        self.transport
            .write_vectored(&[&header[..n], payload, self.format.trailer()]);
        Ok(())
    }

    /// Back to frames from the next byte on.
    pub fn set_frame_mode(&mut self) {
        self.set_message_mode_with(&[]);
    }

    /// Back to frames, starting with `rest`: from `raw_data_received`, the
    /// part of its data that follows the raw section. Copied once.
    pub fn set_frame_mode_with(&mut self, rest: &[u8]) {
        self.set_message_mode_with(rest);
    }
}

/// What the frame splitter does with the bytes in front of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Reads headers and frames.
    Frames,
    /// Drops this many more bytes: the rest of a frame over the limit.
    Skipping(u64),
    /// Drops everything: the stream cannot be resynchronised after a
    /// malformed frame or a length too long to skip.
    Ignoring,
}

/// Where frames end: where their header says.
pub struct FrameSplitter<C> {
    codec: C,
    reading: Reading,
}

impl<C: FrameCodec> Splitter for FrameSplitter<C> {
    type Format = dyn FrameCodec;

    fn format(&self) -> &dyn FrameCodec {
        &self.codec
    }

    fn wants(&self, carried: &[u8], _data: &[u8], max_length: usize) -> usize {
        match self.codec.parse_header(carried, max_length) {
            Ok(None) => self
                .codec
                .max_header_len()
                .saturating_sub(carried.len())
                .max(1),
            Ok(Some(header)) => header.total().saturating_sub(carried.len()),
            // Delivering the carry reports the error.
            Err(_) => 0,
        }
    }

    fn next(&mut self, input: &[u8], _seen: usize, max_length: usize, mode: Mode) -> Next {
        // A refused frame's bytes go first, whatever the mode.
        match self.reading {
            Reading::Frames => {}
            Reading::Skipping(left) => {
                let n = left.min(input.len() as u64);
                self.reading = match left - n {
                    0 => Reading::Frames,
                    left => Reading::Skipping(left),
                };
                // At most `input.len()`, so it fits.
                return Next::Skip(n as usize);
            }
            Reading::Ignoring => return Next::Skip(input.len()),
        }
        if mode == Mode::Raw {
            return Next::Raw;
        }
        match self.codec.parse_header(input, max_length) {
            Ok(None) => Next::Wait,
            Ok(Some(header)) if input.len() < header.total() => Next::Wait,
            Ok(Some(header)) => {
                let body_end = header.header_len + header.body_len;
                match self.codec.check_trailer(&input[body_end..header.total()]) {
                    Ok(()) => Next::Message {
                        body: header.header_len..body_end,
                        len: header.total(),
                    },
                    Err(what) => {
                        self.reading = Reading::Ignoring;
                        Next::Malformed(what)
                    }
                }
            }
            Err(HeaderError::TooLong { declared, skip }) => {
                self.reading = match skip {
                    Some(skip) => Reading::Skipping(skip),
                    None => Reading::Ignoring,
                };
                Next::TooLong(declared)
            }
            Err(HeaderError::Malformed(what)) => {
                self.reading = Reading::Ignoring;
                Next::Malformed(what)
            }
        }
    }
}

impl<H: FrameHandler> Handles<dyn FrameCodec> for H {
    fn handle(&mut self, frames: &mut Frames<'_>, event: Event<'_>) {
        match event {
            Event::Made => self.connection_made(frames),
            Event::Message(frame) => self.frame_received(frames, frame),
            Event::Raw(data) => self.raw_data_received(frames, data),
            Event::TooLong(declared) => self.length_limit_exceeded(frames, declared),
            Event::Malformed(what) => self.frame_malformed(frames, what),
            Event::Lost { reason, unfinished } => self.connection_lost(frames, reason, unfinished),
            Event::PauseProducing => self.pause_producing(frames),
            Event::ResumeProducing => self.resume_producing(frames),
            Event::Timeout(timeout) => self.timeout_connection(frames, timeout),
            Event::ReadConnectionLost => self.read_connection_lost(frames),
            Event::TimerFired(tag) => self.timer_fired(frames, tag),
        }
    }

    fn allows_half_close(&self) -> bool {
        FrameHandler::allows_half_close(self)
    }

    fn stopping(&mut self, frames: &mut Frames<'_>) -> crate::OnStop {
        FrameHandler::stopping(self, frames)
    }
}

/// A [`Protocol`](crate::Protocol) that cuts the stream into frames whose
/// header gives their length, for a [`FrameHandler`]. See
/// [`LengthPrefixedReceiver`](super::LengthPrefixedReceiver) and
/// [`NetstringReceiver`](super::NetstringReceiver).
///
/// A frame's bytes are copied at most once: frames wholly inside one read
/// are passed straight from the read buffer; only an incomplete frame is
/// kept, and completed from the following reads. Its buffer grows with the
/// bytes that arrive, never ahead of them to the length the header declares:
/// a peer that sends headers alone costs what it sent.
pub type FrameReceiver<C, H> = Receiver<FrameSplitter<C>, H>;

impl<C: FrameCodec, H: FrameHandler> Receiver<FrameSplitter<C>, H> {
    /// Wraps `handler`, reading frames in `codec`'s format of at most
    /// [`DEFAULT_MAX_FRAME_LENGTH`] bytes.
    pub fn with_codec(codec: C, handler: H) -> Self {
        let splitter = FrameSplitter {
            codec,
            reading: Reading::Frames,
        };
        Receiver::with_splitter(splitter, handler, DEFAULT_MAX_FRAME_LENGTH)
    }

    /// The wire format.
    pub fn codec(&self) -> &C {
        &self.splitter.codec
    }
}

#[cfg(test)]
mod tests;
