//! Frames with a header that tells their length: the machinery shared by the
//! length-prefixed and netstring receivers.

use std::fmt;
use std::time::Duration;

use log::warn;

use crate::protocol::Protocol;
use crate::reason::Reason;
use crate::timer::TimerId;
use crate::transport::Transport;

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
    /// [`Protocol::pause_producing`]. The
    /// default stops reading.
    fn pause_producing(&mut self, frames: &mut Frames<'_>) {
        frames.transport().pause_reading();
    }

    /// The outgoing buffer drained below its low watermark after a pause;
    /// a producer writes on here. The default reads again.
    fn resume_producing(&mut self, frames: &mut Frames<'_>) {
        frames.transport().resume_reading();
    }

    /// The idle timeout or deadline passed; see
    /// [`Protocol::timeout_connection`].
    /// The default closes the connection.
    fn timeout_connection(&mut self, frames: &mut Frames<'_>, timeout: crate::Timeout) {
        let _ = timeout;
        frames.transport().lose_connection();
    }

    /// Whether the peer's FIN should leave the connection open for writing;
    /// see [`Protocol::allows_half_close`].
    fn allows_half_close(&self) -> bool {
        false
    }

    /// The peer closed its writing side (with `allows_half_close`).
    fn read_connection_lost(&mut self, frames: &mut Frames<'_>) {
        let _ = frames;
    }

    /// A timer scheduled through [`Frames::call_later`] fired.
    fn timer_fired(&mut self, frames: &mut Frames<'_>, tag: u64) {
        let _ = (frames, tag);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Frame,
    Raw,
}

/// The receiver's state a handler may change during a callback.
struct State {
    mode: Mode,
    max_length: usize,
    /// Bytes a raw-mode handler handed back with `set_frame_mode_with`.
    replay: Vec<u8>,
    /// Why the receiver closed the connection itself, for `connection_lost`.
    bad_input: Option<String>,
}

/// What a [`FrameHandler`] callback gets: the transport, plus frame sending
/// and mode switching.
pub struct Frames<'a> {
    transport: &'a mut dyn Transport,
    state: &'a mut State,
    codec: &'a dyn FrameCodec,
}

impl Frames<'_> {
    /// The connection's transport, for raw writes, closing, timers and the
    /// reactor.
    pub fn transport(&mut self) -> &mut dyn Transport {
        self.transport
    }

    /// Writes `payload` as one frame (header, payload, trailer) in one
    /// vectored write. Refuses a payload the header cannot declare (over 255
    /// bytes with an 8-bit prefix, say) and writes nothing then.
    pub fn send_frame(&mut self, payload: &[u8]) -> Result<(), FrameTooLarge> {
        let mut header = [0u8; 24];
        let n = self.codec.encode_header(payload.len(), &mut header)?;
        self.transport
            .write_vectored(&[&header[..n], payload, self.codec.trailer()]);
        Ok(())
    }

    /// From the next byte on, deliver bytes to `raw_data_received` as they
    /// come (a file body after a header frame). Bytes already received after
    /// the current frame go there too, in order.
    pub fn set_raw_mode(&mut self) {
        self.state.mode = Mode::Raw;
    }

    /// Back to frames from the next byte on.
    pub fn set_frame_mode(&mut self) {
        self.state.mode = Mode::Frame;
    }

    /// Back to frames, starting with `rest`: from `raw_data_received`, the
    /// part of its data that follows the raw section. Copied once.
    pub fn set_frame_mode_with(&mut self, rest: &[u8]) {
        self.state.mode = Mode::Frame;
        self.state.replay.extend_from_slice(rest);
    }

    /// The largest payload accepted.
    pub fn max_length(&self) -> usize {
        self.state.max_length
    }

    /// Logs `why` as a warning with the peer's address and closes the
    /// connection after what is buffered is written; the handler's
    /// `connection_lost` then gets [`Reason::BadInput`] with `why`.
    pub fn close_because(&mut self, why: String) {
        warn!("{}: {why}; closing", self.transport.peer_addr());
        self.state.bad_input.get_or_insert(why);
        self.transport.lose_connection();
    }

    /// Schedules [`FrameHandler::timer_fired`] with `tag`.
    pub fn call_later(&mut self, delay: Duration, tag: u64) -> TimerId {
        self.transport.call_later(delay, tag)
    }
}

/// A [`Protocol`] that cuts the stream into frames whose header gives their
/// length, for a [`FrameHandler`]. See
/// [`LengthPrefixedReceiver`](super::LengthPrefixedReceiver) and
/// [`NetstringReceiver`](super::NetstringReceiver).
///
/// A frame's bytes are copied at most once: frames wholly inside one read
/// are passed straight from the read buffer; only an incomplete frame is
/// kept, and completed from the following reads. Its buffer grows with the
/// bytes that arrive, never ahead of them to the length the header declares:
/// a peer that sends headers alone costs what it sent.
pub struct FrameReceiver<C, H> {
    handler: H,
    codec: C,
    state: State,
    /// An incomplete frame (or header) carried over between reads.
    carry: Vec<u8>,
    /// Bytes of an oversized frame still to skip.
    skip: u64,
    /// A malformed or unskippable header was seen: the rest is ignored.
    broken: bool,
}

impl<C: FrameCodec, H: FrameHandler> FrameReceiver<C, H> {
    /// Wraps `handler`, reading frames in `codec`'s format of at most
    /// [`DEFAULT_MAX_FRAME_LENGTH`] bytes.
    pub fn with_codec(codec: C, handler: H) -> Self {
        FrameReceiver {
            handler,
            codec,
            state: State {
                mode: Mode::Frame,
                max_length: DEFAULT_MAX_FRAME_LENGTH,
                replay: Vec::new(),
                bad_input: None,
            },
            carry: Vec::new(),
            skip: 0,
            broken: false,
        }
    }

    /// Accepts payloads of at most `max` bytes.
    pub fn with_max_length(mut self, max: usize) -> Self {
        self.state.max_length = max;
        self
    }

    /// The wrapped handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The wrapped handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// The wire format.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    fn frames<'a>(
        transport: &'a mut dyn Transport,
        state: &'a mut State,
        codec: &'a C,
    ) -> Frames<'a> {
        Frames {
            transport,
            state,
            codec,
        }
    }

    /// Delivers what `input` holds and returns how many bytes it used; the
    /// rest is an incomplete frame the caller keeps.
    fn deliver(&mut self, transport: &mut dyn Transport, input: &[u8]) -> usize {
        let mut at = 0;
        loop {
            if self.broken || transport.is_closing() {
                return input.len();
            }
            if self.skip > 0 {
                let n = self.skip.min((input.len() - at) as u64);
                self.skip -= n;
                at += n as usize;
                if self.skip > 0 {
                    return input.len();
                }
            }
            if at == input.len() {
                return at;
            }
            if self.state.mode == Mode::Raw {
                let mut frames = Self::frames(transport, &mut self.state, &self.codec);
                self.handler.raw_data_received(&mut frames, &input[at..]);
                return input.len();
            }
            let rest = &input[at..];
            match self.codec.parse_header(rest, self.state.max_length) {
                Ok(None) => return at,
                Ok(Some(header)) => {
                    let total = header.total();
                    if rest.len() < total {
                        return at;
                    }
                    let body = &rest[header.header_len..header.header_len + header.body_len];
                    let trailer = &rest[header.header_len + header.body_len..total];
                    if let Err(what) = self.codec.check_trailer(trailer) {
                        self.malformed(transport, what);
                        return input.len();
                    }
                    let mut frames = Self::frames(transport, &mut self.state, &self.codec);
                    self.handler.frame_received(&mut frames, body);
                    at += total;
                }
                Err(HeaderError::TooLong { declared, skip }) => {
                    let mut frames = Self::frames(transport, &mut self.state, &self.codec);
                    self.handler.length_limit_exceeded(&mut frames, declared);
                    match skip {
                        Some(skip) => self.skip = skip,
                        None => self.broken = true,
                    }
                }
                Err(HeaderError::Malformed(what)) => {
                    self.malformed(transport, what);
                    return input.len();
                }
            }
        }
    }

    fn malformed(&mut self, transport: &mut dyn Transport, what: &str) {
        self.broken = true;
        let mut frames = Self::frames(transport, &mut self.state, &self.codec);
        self.handler.frame_malformed(&mut frames, what);
    }

    /// How many more bytes the carried frame needs before it can be
    /// delivered (or its header read). Nothing is reserved for them: the
    /// carry grows only as they arrive, so a header alone does not commit
    /// the length it declares.
    fn carry_wants(&self) -> usize {
        match self.codec.parse_header(&self.carry, self.state.max_length) {
            Ok(None) => self
                .codec
                .max_header_len()
                .saturating_sub(self.carry.len())
                .max(1),
            Ok(Some(header)) => header.total().saturating_sub(self.carry.len()),
            // Delivering the carry reports the error.
            Err(_) => 0,
        }
    }

    fn feed(&mut self, transport: &mut dyn Transport, mut data: &[u8]) {
        while !self.carry.is_empty() {
            let take = self.carry_wants().min(data.len());
            self.carry.extend_from_slice(&data[..take]);
            let mut carry = std::mem::take(&mut self.carry);
            let used = self.deliver(transport, &carry);
            if used == 0 {
                // Still incomplete: the header just became readable (go on
                // appending the body) or the data ran out.
                self.carry = carry;
                if take == data.len() {
                    return;
                }
                data = &data[take..];
                continue;
            }
            // Delivery used the carried bytes and part of what was appended;
            // the rest of the appended bytes are read again from `data`, so
            // they are not copied twice.
            let unused = carry.len() - used;
            debug_assert!(unused <= take);
            data = &data[take - unused..];
            carry.clear();
            self.carry = carry;
        }
        if !self.state.replay.is_empty() {
            // A raw handler handed bytes back while the carried frame was
            // finished: those come before the rest of `data`.
            self.state.replay.extend_from_slice(data);
            return;
        }
        let used = self.deliver(transport, data);
        self.carry.extend_from_slice(&data[used..]);
    }

    /// Frame-mode bytes a raw handler handed back, delivered before anything newer.
    fn replay(&mut self, transport: &mut dyn Transport) {
        while !self.state.replay.is_empty() {
            let replay = std::mem::take(&mut self.state.replay);
            self.feed(transport, &replay);
        }
    }
}

impl<C: FrameCodec, H: FrameHandler> Protocol for FrameReceiver<C, H> {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        let mut frames = Self::frames(transport, &mut self.state, &self.codec);
        self.handler.connection_made(&mut frames);
        // Bytes the handler handed back are delivered now, not behind the next read.
        self.replay(transport);
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        // Bytes handed back outside a read (from a timer, say) came first.
        self.replay(transport);
        self.feed(transport, data);
        self.replay(transport);
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        let carry = std::mem::take(&mut self.carry);
        let bad_input = self.state.bad_input.take().map(Reason::BadInput);
        let mut frames = Self::frames(transport, &mut self.state, &self.codec);
        self.handler
            .connection_lost(&mut frames, bad_input.as_ref().unwrap_or(reason), &carry);
    }

    fn pause_producing(&mut self, transport: &mut dyn Transport) {
        let mut frames = Self::frames(transport, &mut self.state, &self.codec);
        self.handler.pause_producing(&mut frames);
        // Bytes the handler handed back are delivered now, not behind the next read.
        self.replay(transport);
    }

    fn resume_producing(&mut self, transport: &mut dyn Transport) {
        let mut frames = Self::frames(transport, &mut self.state, &self.codec);
        self.handler.resume_producing(&mut frames);
        // Bytes the handler handed back are delivered now, not behind the next read.
        self.replay(transport);
    }

    fn timeout_connection(&mut self, transport: &mut dyn Transport, timeout: crate::Timeout) {
        let mut frames = Self::frames(transport, &mut self.state, &self.codec);
        self.handler.timeout_connection(&mut frames, timeout);
    }

    fn allows_half_close(&self) -> bool {
        self.handler.allows_half_close()
    }

    fn read_connection_lost(&mut self, transport: &mut dyn Transport) {
        let mut frames = Self::frames(transport, &mut self.state, &self.codec);
        self.handler.read_connection_lost(&mut frames);
    }

    fn timer_fired(&mut self, transport: &mut dyn Transport, tag: u64) {
        let mut frames = Self::frames(transport, &mut self.state, &self.codec);
        self.handler.timer_fired(&mut frames, tag);
        // Bytes the handler handed back are delivered now, not behind the next read.
        self.replay(transport);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::{LengthPrefix, LengthPrefixedReceiver, Netstring, NetstringReceiver};
    use crate::testing::StringTransport;
    use proptest::prelude::*;

    /// Records everything; a frame `RAW n` switches to raw mode for n bytes.
    #[derive(Default)]
    struct Collect {
        frames: Vec<Vec<u8>>,
        raw: Vec<u8>,
        raw_wanted: usize,
        exceeded: Vec<u64>,
        malformed: Vec<String>,
        keep_open: bool,
        lost: Option<(Reason, Vec<u8>)>,
    }

    impl FrameHandler for Collect {
        fn frame_received(&mut self, frames: &mut Frames<'_>, frame: &[u8]) {
            if let Some(n) = frame.strip_prefix(b"RAW ") {
                self.raw_wanted = std::str::from_utf8(n).unwrap().parse().unwrap();
                frames.set_raw_mode();
            }
            self.frames.push(frame.to_vec());
        }
        fn raw_data_received(&mut self, frames: &mut Frames<'_>, data: &[u8]) {
            let take = data.len().min(self.raw_wanted);
            self.raw.extend_from_slice(&data[..take]);
            self.raw_wanted -= take;
            if self.raw_wanted == 0 {
                frames.set_frame_mode_with(&data[take..]);
            }
        }
        fn length_limit_exceeded(&mut self, frames: &mut Frames<'_>, declared: u64) {
            self.exceeded.push(declared);
            if !self.keep_open {
                frames.close_because(format!("{declared} is too long"));
            }
        }
        fn frame_malformed(&mut self, frames: &mut Frames<'_>, what: &str) {
            self.malformed.push(what.to_string());
            frames.close_because(what.to_string());
        }
        fn connection_lost(&mut self, _f: &mut Frames<'_>, reason: &Reason, unfinished: &[u8]) {
            self.lost = Some((reason.clone(), unfinished.to_vec()));
        }
    }

    /// The formats under test, as `(name, encoder, receiver)`.
    fn codecs() -> Vec<Box<dyn Fn() -> Box<dyn Receiver>>> {
        vec![
            Box::new(|| {
                Box::new(LengthPrefixedReceiver::with_prefix(
                    LengthPrefix::U8,
                    Collect::default(),
                ))
            }),
            Box::new(|| {
                Box::new(LengthPrefixedReceiver::with_prefix(
                    LengthPrefix::U16,
                    Collect::default(),
                ))
            }),
            Box::new(|| Box::new(LengthPrefixedReceiver::new(Collect::default()))),
            Box::new(|| {
                Box::new(LengthPrefixedReceiver::with_prefix(
                    LengthPrefix::U32.little_endian(),
                    Collect::default(),
                ))
            }),
            Box::new(|| Box::new(NetstringReceiver::new(Collect::default()))),
        ]
    }

    /// A receiver of any format, with its handler and encoder in reach.
    trait Receiver: Protocol {
        fn collected(&self) -> &Collect;
        fn encode(&self, payload: &[u8]) -> Vec<u8>;
        /// Bytes of header before a payload of `len` bytes.
        fn header_len(&self, len: usize) -> usize;
        /// The capacity of the buffer that carries an incomplete frame.
        fn carried_capacity(&self) -> usize;
    }

    impl<C: FrameCodec> Receiver for FrameReceiver<C, Collect> {
        fn collected(&self) -> &Collect {
            self.handler()
        }
        fn encode(&self, payload: &[u8]) -> Vec<u8> {
            let mut header = [0u8; 24];
            let n = self
                .codec()
                .encode_header(payload.len(), &mut header)
                .unwrap();
            [&header[..n], payload, self.codec().trailer()].concat()
        }
        fn header_len(&self, len: usize) -> usize {
            self.codec().encode_header(len, &mut [0; 24]).unwrap()
        }
        fn carried_capacity(&self) -> usize {
            self.carry.capacity()
        }
    }

    fn feed(p: &mut dyn Receiver, t: &mut StringTransport, data: &[u8], cuts: &[usize]) {
        let mut at = 0;
        for &cut in cuts {
            let cut = cut.min(data.len()).max(at);
            p.data_received(t, &data[at..cut]);
            at = cut;
        }
        p.data_received(t, &data[at..]);
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_frames(
            // Tiny frames too, so that several fit in one carried header's worth.
            frames in prop::collection::vec(
                prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..4),
                    prop::collection::vec(any::<u8>(), 0..255),
                ],
                0..16,
            ),
            tail_len in 0usize..5,
            mut cuts in prop::collection::vec(0usize..3200, 0..40),
        ) {
            cuts.sort_unstable();
            for make in codecs() {
                let mut p = make();
                let mut stream = Vec::new();
                for f in &frames {
                    stream.extend(p.encode(f));
                }
                // An incomplete frame at the end is reported, not dropped.
                let tail = p.encode(b"unfinished");
                let tail = &tail[..tail_len.min(tail.len() - 1)];
                stream.extend_from_slice(tail);
                let mut t = StringTransport::new();
                feed(&mut *p, &mut t, &stream, &cuts);
                prop_assert_eq!(&p.collected().frames, &frames);
                p.connection_lost(&mut t, &Reason::PeerClosed);
                prop_assert_eq!(
                    p.collected().lost.clone(),
                    Some((Reason::PeerClosed, tail.to_vec()))
                );
            }
        }

        #[test]
        fn raw_sections_between_frames_survive_any_split(
            raw in prop::collection::vec(any::<u8>(), 0..300),
            mut cuts in prop::collection::vec(0usize..400, 0..30),
        ) {
            cuts.sort_unstable();
            for make in codecs() {
                let mut p = make();
                let announce = format!("RAW {}", raw.len()).into_bytes();
                let mut stream = p.encode(b"first");
                stream.extend(p.encode(&announce));
                stream.extend_from_slice(&raw);
                stream.extend(p.encode(b"after"));
                stream.extend(p.encode(b""));
                let mut t = StringTransport::new();
                feed(&mut *p, &mut t, &stream, &cuts);
                let expected = [b"first".to_vec(), announce, b"after".to_vec(), Vec::new()];
                prop_assert_eq!(&p.collected().frames, &expected);
                prop_assert_eq!(&p.collected().raw, &raw);
            }
        }
    }

    /// Payloads accepted by the large-frame tests: far above what one read brings.
    const LARGE: usize = 1 << 20;

    /// The formats that can declare [`LARGE`] payloads, accepting them.
    fn large_codecs() -> Vec<Box<dyn Receiver>> {
        vec![
            Box::new(LengthPrefixedReceiver::new(Collect::default()).with_max_length(LARGE)),
            Box::new(
                LengthPrefixedReceiver::with_prefix(
                    LengthPrefix::U32.little_endian(),
                    Collect::default(),
                )
                .with_max_length(LARGE),
            ),
            Box::new(NetstringReceiver::new(Collect::default()).with_max_length(LARGE)),
        ]
    }

    /// Deterministic bytes, so a failing case reproduces.
    fn pattern(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn a_declared_length_reserves_nothing_before_its_bytes_arrive() {
        for mut p in large_codecs() {
            let payload = pattern(LARGE, 9);
            let stream = p.encode(&payload);
            let header = p.header_len(payload.len());
            let mut t = StringTransport::new();
            // The header and ten bytes of body: what they cost is what came.
            p.data_received(&mut t, &stream[..header + 10]);
            assert!(
                p.carried_capacity() < 1024,
                "a header and 10 bytes reserved {}",
                p.carried_capacity()
            );
            // The rest in reads of 1,000 bytes: the carry grows with them,
            // and the frame arrives whole.
            let mut fed = header + 10;
            for piece in stream[fed..].chunks(1000) {
                p.data_received(&mut t, piece);
                fed += piece.len();
                assert!(
                    p.carried_capacity() <= 2 * fed + 64,
                    "{} reserved after {fed} bytes",
                    p.carried_capacity()
                );
            }
            assert!(p.collected().frames == [payload], "the frame differs");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn large_frames_in_small_pieces_arrive_whole_and_reserve_only_what_came(
            lens in prop::collection::vec(0usize..150_000, 1..4),
            seed in any::<u64>(),
            pieces in prop::collection::vec(1usize..3000, 1..50),
        ) {
            for mut p in large_codecs() {
                let frames: Vec<Vec<u8>> = lens
                    .iter()
                    .enumerate()
                    .map(|(i, &len)| pattern(len, seed.wrapping_add(i as u64)))
                    .collect();
                let stream: Vec<u8> = frames.iter().flat_map(|f| p.encode(f)).collect();
                let mut t = StringTransport::new();
                let mut fed = 0;
                for &size in pieces.iter().cycle() {
                    if fed == stream.len() {
                        break;
                    }
                    let end = (fed + size).min(stream.len());
                    p.data_received(&mut t, &stream[fed..end]);
                    fed = end;
                    prop_assert!(
                        p.carried_capacity() <= 2 * fed + 64,
                        "{} reserved after {} bytes",
                        p.carried_capacity(),
                        fed
                    );
                }
                prop_assert!(p.collected().frames == frames, "the frames differ");
            }
        }
    }

    #[test]
    fn an_oversized_frame_closes_with_the_stated_reason_and_nothing_after_it_arrives() {
        // The same for every format, with a limit of 100.
        let check = |p: &mut dyn Receiver, stream: &[u8]| {
            let mut t = StringTransport::new();
            p.data_received(&mut t, stream);
            assert_eq!(p.collected().frames, [b"ok".to_vec()]);
            assert_eq!(p.collected().exceeded, [200]);
            assert!(t.is_disconnecting());
            p.connection_lost(&mut t, &Reason::LocalClosed);
            let (reason, _) = p.collected().lost.clone().unwrap();
            assert_eq!(reason, Reason::BadInput("200 is too long".into()));
        };
        let mut p = LengthPrefixedReceiver::new(Collect::default()).with_max_length(100);
        let stream = [p.encode(b"ok"), p.encode(&[7; 200]), p.encode(b"never")].concat();
        check(&mut p, &stream);
        let mut p = NetstringReceiver::new(Collect::default()).with_max_length(100);
        let stream = [p.encode(b"ok"), p.encode(&[7; 200]), p.encode(b"never")].concat();
        check(&mut p, &stream);
    }

    #[test]
    fn the_default_limit_hook_closes_with_a_reason_that_says_why() {
        struct Plain;
        impl FrameHandler for Plain {
            fn frame_received(&mut self, _f: &mut Frames<'_>, _frame: &[u8]) {
                panic!("no frame is under the limit here");
            }
            fn connection_lost(&mut self, _f: &mut Frames<'_>, reason: &Reason, _u: &[u8]) {
                assert_eq!(
                    reason,
                    &Reason::BadInput("frame of 1000 bytes exceeds the 10 byte limit".into())
                );
            }
        }
        let mut p = NetstringReceiver::new(Plain).with_max_length(10);
        let mut t = StringTransport::new();
        p.data_received(&mut t, b"1000:");
        assert!(t.is_disconnecting());
        p.connection_lost(&mut t, &Reason::LocalClosed);
    }

    #[test]
    fn a_four_gibibyte_declared_length_allocates_nothing_big() {
        let mut p = LengthPrefixedReceiver::new(Collect::default());
        let mut t = StringTransport::new();
        p.data_received(&mut t, &[0xff, 0xff]);
        p.data_received(&mut t, &[0xff, 0xff, 1, 2, 3]);
        assert_eq!(p.handler().exceeded, [u32::MAX as u64]);
        assert!(t.is_disconnecting());
        assert!(
            p.carry.capacity() < 64,
            "carry grew to {}",
            p.carry.capacity()
        );
        // A netstring's digits are refused as soon as they pass the limit.
        let mut p = NetstringReceiver::new(Collect::default());
        let mut t = StringTransport::new();
        p.data_received(&mut t, b"4294967");
        p.data_received(&mut t, b"296:abc");
        assert_eq!(p.handler().exceeded, [4_294_967_296]);
        assert!(
            p.carry.capacity() < 64,
            "carry grew to {}",
            p.carry.capacity()
        );
    }

    #[test]
    fn a_handler_that_keeps_the_connection_skips_the_oversized_frame() {
        for make in [
            |c| Box::new(LengthPrefixedReceiver::new(c).with_max_length(10)) as Box<dyn Receiver>,
            |c| Box::new(NetstringReceiver::new(c).with_max_length(10)) as Box<dyn Receiver>,
        ] {
            let mut p = make(Collect {
                keep_open: true,
                ..Collect::default()
            });
            let stream = [p.encode(b"a"), p.encode(&[b'x'; 50]), p.encode(b"b")].concat();
            let mut t = StringTransport::new();
            for byte in stream.chunks(3) {
                p.data_received(&mut t, byte);
            }
            assert_eq!(p.collected().frames, [b"a".to_vec(), b"b".to_vec()]);
            assert_eq!(p.collected().exceeded, [50]);
            assert!(!t.is_disconnecting());
        }
    }

    #[test]
    fn malformed_netstrings_close_with_a_reason_that_says_what_was_wrong() {
        for (input, what) in [
            (&b"5:hello;"[..], "netstring does not end with ','"),
            (
                b"x:",
                "netstring length is not a decimal number followed by ':'",
            ),
            (
                b"12a:",
                "netstring length is not a decimal number followed by ':'",
            ),
            (b"012:", "netstring length has a leading zero"),
            (b":", "netstring has no length"),
        ] {
            let mut p = NetstringReceiver::new(Collect::default());
            let mut t = StringTransport::new();
            // Whole and byte by byte alike.
            for byte in input.chunks(1) {
                p.data_received(&mut t, byte);
            }
            p.data_received(&mut t, b"2:ok,");
            assert_eq!(p.handler().malformed, [what], "{input:?}");
            assert!(p.handler().frames.is_empty());
            assert!(t.is_disconnecting());
            p.connection_lost(&mut t, &Reason::LocalClosed);
            assert_eq!(
                p.handler().lost.as_ref().unwrap().0,
                Reason::BadInput(what.to_string())
            );
        }
    }

    #[test]
    fn send_frame_writes_each_format_and_refuses_what_the_prefix_cannot_declare() {
        struct Sender;
        impl FrameHandler for Sender {
            fn connection_made(&mut self, frames: &mut Frames<'_>) {
                frames.send_frame(b"hi").unwrap();
                let too_big = frames.send_frame(&[0; 256]);
                if frames.max_length() == 1 {
                    assert_eq!(too_big, Err(FrameTooLarge { len: 256, max: 255 }));
                }
            }
            fn frame_received(&mut self, _f: &mut Frames<'_>, _frame: &[u8]) {}
        }
        let sent = |mut p: Box<dyn Protocol>| {
            let mut t = StringTransport::new();
            p.connection_made(&mut t);
            t.value().to_vec()
        };
        let u8_prefix =
            LengthPrefixedReceiver::with_prefix(LengthPrefix::U8, Sender).with_max_length(1);
        assert_eq!(sent(Box::new(u8_prefix)), b"\x02hi");
        let le16 = LengthPrefixedReceiver::with_prefix(LengthPrefix::U16.little_endian(), Sender);
        let written = sent(Box::new(le16));
        assert_eq!(&written[..4], b"\x02\0hi");
        assert_eq!(&written[4..6], b"\0\x01");
        let netstring = sent(Box::new(NetstringReceiver::new(Sender)));
        assert!(netstring.starts_with(b"2:hi,256:\0"));
        assert!(netstring.ends_with(b"\0,"));
        let _ = Netstring;
    }

    #[test]
    fn bytes_handed_back_outside_a_read_are_delivered_at_once_and_first() {
        /// Holds raw bytes until its timer fires, then hands them back.
        #[derive(Default)]
        struct Later {
            held: Vec<u8>,
            frames: Vec<Vec<u8>>,
        }
        impl FrameHandler for Later {
            fn frame_received(&mut self, frames: &mut Frames<'_>, frame: &[u8]) {
                if frame == b"hold" {
                    frames.set_raw_mode();
                    frames.call_later(Duration::from_secs(1), 0);
                }
                self.frames.push(frame.to_vec());
            }
            fn raw_data_received(&mut self, _frames: &mut Frames<'_>, data: &[u8]) {
                self.held.extend_from_slice(data);
            }
            fn timer_fired(&mut self, frames: &mut Frames<'_>, _tag: u64) {
                let held = std::mem::take(&mut self.held);
                frames.set_frame_mode_with(&held);
            }
        }
        let mut p = NetstringReceiver::new(Later::default());
        let mut t = StringTransport::new();
        p.data_received(&mut t, b"4:hold,1:a,1:");
        t.advance(Duration::from_secs(1), &mut p);
        assert_eq!(p.handler().frames, [b"hold".to_vec(), b"a".to_vec()]);
        p.data_received(&mut t, b"b,");
        assert_eq!(
            p.handler().frames,
            [b"hold".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
    }

    #[test]
    fn raw_sections_survive_every_split_into_three() {
        // Exhaustive where the proptest samples: short raw sections, where a
        // carried netstring header's worth reaches past the raw bytes.
        for raw_len in 0..5 {
            let raw = vec![0u8; raw_len];
            for make in codecs() {
                let p = make();
                let announce = format!("RAW {raw_len}").into_bytes();
                let mut stream = p.encode(b"first");
                stream.extend(p.encode(&announce));
                stream.extend_from_slice(&raw);
                stream.extend(p.encode(b"after"));
                stream.extend(p.encode(b""));
                let expected = [
                    b"first".to_vec(),
                    announce.clone(),
                    b"after".to_vec(),
                    Vec::new(),
                ];
                for a in 0..=stream.len() {
                    for b in a..=stream.len() {
                        let mut p = make();
                        let mut t = StringTransport::new();
                        feed(&mut *p, &mut t, &stream, &[a, b]);
                        assert_eq!(p.collected().frames, expected, "cuts {a} {b}");
                        assert_eq!(p.collected().raw, raw, "cuts {a} {b}");
                    }
                }
            }
        }
    }
}
