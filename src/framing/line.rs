//! Lines over a byte stream: Twisted's `LineReceiver`.

use std::time::Duration;

use log::warn;

use crate::protocol::Protocol;
use crate::reason::Reason;
use crate::timer::TimerId;
use crate::transport::Transport;

/// Twisted's `LineReceiver.MAX_LENGTH`.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 16 * 1024;

/// What a line-oriented protocol implements; [`LineReceiver`] turns the
/// byte stream into calls of these.
pub trait LineHandler: 'static {
    /// The connection is made.
    fn connection_made(&mut self, lines: &mut Lines<'_>) {
        let _ = lines;
    }

    /// One complete line, without its delimiter.
    fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]);

    /// Bytes that arrived in raw mode ([`Lines::set_raw_mode`]), as they came.
    fn raw_data_received(&mut self, lines: &mut Lines<'_>, data: &[u8]) {
        let _ = (lines, data);
    }

    /// A line grew past the maximum length without a delimiter (`pending`
    /// bytes so far). The default logs it and closes the connection; the
    /// oversized bytes are discarded either way.
    fn line_length_exceeded(&mut self, lines: &mut Lines<'_>, pending: usize) {
        let why = format!(
            "line of {pending} bytes exceeds the {} byte limit",
            lines.max_length()
        );
        lines.close_because(why);
    }

    /// The connection is gone. `unfinished` holds the bytes of a line that
    /// had no delimiter yet (empty if none): nothing is dropped silently.
    /// When the receiver closed the connection through
    /// [`Lines::close_because`], `reason` is [`Reason::BadInput`].
    fn connection_lost(&mut self, lines: &mut Lines<'_>, reason: &Reason, unfinished: &[u8]) {
        let _ = (lines, reason, unfinished);
    }

    /// The outgoing buffer reached its high watermark; see
    /// [`Protocol::pause_producing`]. The
    /// default stops reading.
    fn pause_producing(&mut self, lines: &mut Lines<'_>) {
        lines.transport().pause_reading();
    }

    /// The outgoing buffer drained below its low watermark after a pause;
    /// a producer writes on here. The default reads again.
    fn resume_producing(&mut self, lines: &mut Lines<'_>) {
        lines.transport().resume_reading();
    }

    /// The idle timeout or deadline passed; see
    /// [`Protocol::timeout_connection`].
    /// The default closes the connection.
    fn timeout_connection(&mut self, lines: &mut Lines<'_>, timeout: crate::Timeout) {
        let _ = timeout;
        lines.transport().lose_connection();
    }

    /// Whether the peer's FIN should leave the connection open for writing;
    /// see [`Protocol::allows_half_close`].
    fn allows_half_close(&self) -> bool {
        false
    }

    /// The peer closed its writing side (with `allows_half_close`).
    fn read_connection_lost(&mut self, lines: &mut Lines<'_>) {
        let _ = lines;
    }

    /// A timer scheduled through [`Lines::transport`]`().call_later` fired.
    fn timer_fired(&mut self, lines: &mut Lines<'_>, tag: u64) {
        let _ = (lines, tag);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Line,
    Raw,
}

/// The receiver's state a handler may change during a callback.
struct State {
    mode: Mode,
    delimiter: Vec<u8>,
    max_length: usize,
    /// Bytes a raw-mode handler handed back with `set_line_mode_with`.
    replay: Vec<u8>,
    /// Why the receiver closed the connection itself, for `connection_lost`.
    bad_input: Option<String>,
}

/// What a [`LineHandler`] callback gets: the transport, plus line sending and
/// mode switching.
pub struct Lines<'a> {
    transport: &'a mut dyn Transport,
    state: &'a mut State,
}

impl Lines<'_> {
    /// The connection's transport, for writing raw bytes, closing, timers
    /// and the reactor.
    pub fn transport(&mut self) -> &mut dyn Transport {
        self.transport
    }

    /// Writes `line` followed by the delimiter, in one vectored write.
    pub fn send_line(&mut self, line: &[u8]) {
        self.transport
            .write_vectored(&[line, &self.state.delimiter]);
    }

    /// From the next byte on, deliver bytes to `raw_data_received` as they
    /// come (a file body after a header line, say). Bytes already received
    /// after the current line go there too, in order.
    pub fn set_raw_mode(&mut self) {
        self.state.mode = Mode::Raw;
    }

    /// Back to lines from the next byte on.
    pub fn set_line_mode(&mut self) {
        self.state.mode = Mode::Line;
    }

    /// Back to lines, starting with `rest`: from `raw_data_received`, the
    /// part of its data that belongs to the lines after the raw section
    /// (Twisted's `setLineMode(extra)`). Copied once.
    pub fn set_line_mode_with(&mut self, rest: &[u8]) {
        self.state.mode = Mode::Line;
        self.state.replay.extend_from_slice(rest);
    }

    /// The longest line accepted.
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

    /// Schedules [`LineHandler::timer_fired`] with `tag`.
    pub fn call_later(&mut self, delay: Duration, tag: u64) -> TimerId {
        self.transport.call_later(delay, tag)
    }
}

/// A [`Protocol`] that splits the stream into lines for a [`LineHandler`].
///
/// The delimiter defaults to `\r\n`; [`with_delimiter`](LineReceiver::with_delimiter)
/// changes it (`b"\n"` for Unix-style text). A line is copied at most once:
/// lines wholly inside one read are passed straight from the read buffer;
/// an unfinished line is kept, and what completes it is appended to it.
/// Lines stop being delivered once the transport is closing.
pub struct LineReceiver<H> {
    handler: H,
    state: State,
    /// An unfinished line carried over between reads (line mode only).
    carry: Vec<u8>,
    /// A line exceeded the limit: its bytes are skipped up to the next
    /// delimiter, and `carry` keeps only what could start a delimiter.
    discarding: bool,
}

impl<H: LineHandler> LineReceiver<H> {
    /// Wraps `handler` with `\r\n` lines of at most 16 KiB.
    pub fn new(handler: H) -> Self {
        LineReceiver {
            handler,
            state: State {
                mode: Mode::Line,
                delimiter: b"\r\n".to_vec(),
                max_length: DEFAULT_MAX_LINE_LENGTH,
                replay: Vec::new(),
                bad_input: None,
            },
            carry: Vec::new(),
            discarding: false,
        }
    }

    /// Uses `delimiter` to end lines.
    ///
    /// # Panics
    /// If `delimiter` is empty: a programming error, caught at construction.
    pub fn with_delimiter(mut self, delimiter: &[u8]) -> Self {
        assert!(!delimiter.is_empty(), "a line delimiter cannot be empty");
        self.state.delimiter = delimiter.to_vec();
        self
    }

    /// Accepts lines of at most `max` bytes (delimiter not counted).
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

    fn too_long(&mut self, transport: &mut dyn Transport, pending: usize) {
        let mut lines = Lines {
            transport,
            state: &mut self.state,
        };
        self.handler.line_length_exceeded(&mut lines, pending);
    }

    /// Delivers what `input` holds, in whatever mode the handler sets, and
    /// returns how many bytes it used; the rest is an unfinished line the
    /// caller keeps. `search_from` is where a delimiter may first start (bytes
    /// before it were searched already).
    fn deliver(
        &mut self,
        transport: &mut dyn Transport,
        input: &[u8],
        mut search_from: usize,
    ) -> usize {
        let delim_len = self.state.delimiter.len();
        let mut at = 0;
        while at < input.len() {
            if transport.is_closing() {
                return input.len();
            }
            if self.state.mode == Mode::Raw {
                let mut lines = Lines {
                    transport,
                    state: &mut self.state,
                };
                self.handler.raw_data_received(&mut lines, &input[at..]);
                return input.len();
            }
            let from = search_from.max(at);
            match find(&input[from..], &self.state.delimiter) {
                Some(i) => {
                    let end = from + i;
                    let line = &input[at..end];
                    if self.discarding {
                        self.discarding = false;
                    } else if line.len() > self.state.max_length {
                        self.too_long(transport, line.len());
                    } else {
                        let mut lines = Lines {
                            transport,
                            state: &mut self.state,
                        };
                        self.handler.line_received(&mut lines, line);
                    }
                    at = end + delim_len;
                    search_from = at;
                }
                None => {
                    let rest = input.len() - at;
                    // A line of `max` bytes may still be waiting for the rest
                    // of its delimiter.
                    if !self.discarding && rest > self.state.max_length + delim_len - 1 {
                        self.discarding = true;
                        self.too_long(transport, rest);
                    }
                    if self.discarding {
                        return input.len() - rest.min(delim_len - 1);
                    }
                    return at;
                }
            }
        }
        at
    }

    /// Line-mode bytes a raw handler handed back, delivered before anything newer.
    fn replay(&mut self, transport: &mut dyn Transport) {
        while !self.state.replay.is_empty() {
            let replay = std::mem::take(&mut self.state.replay);
            self.feed(transport, &replay);
        }
    }

    fn feed(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        if self.carry.is_empty() {
            let used = self.deliver(transport, data, 0);
            self.carry.extend_from_slice(&data[used..]);
        } else {
            let delim_len = self.state.delimiter.len();
            // The carried bytes hold no delimiter, but one may straddle.
            let search_from = self.carry.len().saturating_sub(delim_len - 1);
            // Only the bytes that finish the carried line are appended; the
            // lines after it are read from `data` in place, so no byte is
            // copied twice.
            let end = line_end(&self.carry[search_from..], data, &self.state.delimiter);
            let take = end.unwrap_or(data.len());
            let mut buf = std::mem::take(&mut self.carry);
            buf.extend_from_slice(&data[..take]);
            let used = self.deliver(transport, &buf, search_from);
            buf.drain(..used);
            self.carry = buf;
            if take < data.len() && !self.state.replay.is_empty() {
                // A raw handler handed bytes back: those come first.
                self.state.replay.extend_from_slice(&data[take..]);
            } else if take < data.len() {
                // The carried line ended at `take`: nothing is carried now.
                debug_assert!(self.carry.is_empty());
                let rest = &data[take..];
                let used = self.deliver(transport, rest, 0);
                self.carry.extend_from_slice(&rest[used..]);
            }
        }
    }
}

/// How many bytes of `data` finish a line whose last bytes are `tail`: up to
/// the end of the first delimiter in `tail` followed by `data`.
fn line_end(tail: &[u8], data: &[u8], delimiter: &[u8]) -> Option<usize> {
    for start in 0..tail.len() {
        let carried = &tail[start..];
        let needed = delimiter.len() - carried.len();
        if delimiter.starts_with(carried) && data.get(..needed) == Some(&delimiter[carried.len()..])
        {
            return Some(needed);
        }
    }
    find(data, delimiter).map(|at| at + delimiter.len())
}

/// First position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        [one] => haystack.iter().position(|b| b == one),
        _ => haystack.windows(needle.len()).position(|w| w == needle),
    }
}

impl<H: LineHandler> Protocol for LineReceiver<H> {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        let mut lines = Lines {
            transport,
            state: &mut self.state,
        };
        self.handler.connection_made(&mut lines);
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
        let unfinished: &[u8] = if self.discarding { &[] } else { &carry };
        let bad_input = self.state.bad_input.take().map(Reason::BadInput);
        let mut lines = Lines {
            transport,
            state: &mut self.state,
        };
        self.handler
            .connection_lost(&mut lines, bad_input.as_ref().unwrap_or(reason), unfinished);
    }

    fn pause_producing(&mut self, transport: &mut dyn Transport) {
        let mut lines = Lines {
            transport,
            state: &mut self.state,
        };
        self.handler.pause_producing(&mut lines);
        // Bytes the handler handed back are delivered now, not behind the next read.
        self.replay(transport);
    }

    fn resume_producing(&mut self, transport: &mut dyn Transport) {
        let mut lines = Lines {
            transport,
            state: &mut self.state,
        };
        self.handler.resume_producing(&mut lines);
        // Bytes the handler handed back are delivered now, not behind the next read.
        self.replay(transport);
    }

    fn timeout_connection(&mut self, transport: &mut dyn Transport, timeout: crate::Timeout) {
        let mut lines = Lines {
            transport,
            state: &mut self.state,
        };
        self.handler.timeout_connection(&mut lines, timeout);
    }

    fn allows_half_close(&self) -> bool {
        self.handler.allows_half_close()
    }

    fn read_connection_lost(&mut self, transport: &mut dyn Transport) {
        let mut lines = Lines {
            transport,
            state: &mut self.state,
        };
        self.handler.read_connection_lost(&mut lines);
    }

    fn timer_fired(&mut self, transport: &mut dyn Transport, tag: u64) {
        let mut lines = Lines {
            transport,
            state: &mut self.state,
        };
        self.handler.timer_fired(&mut lines, tag);
        // Bytes the handler handed back are delivered now, not behind the next read.
        self.replay(transport);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::StringTransport;
    use proptest::prelude::*;

    /// Records everything; switches to raw mode on a line `RAW n` and back
    /// after n raw bytes.
    #[derive(Default)]
    struct Collect {
        lines: Vec<Vec<u8>>,
        raw: Vec<u8>,
        raw_wanted: usize,
        exceeded: Vec<usize>,
        keep_open: bool,
        lost: Option<Vec<u8>>,
    }

    impl LineHandler for Collect {
        fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
            if let Some(n) = line.strip_prefix(b"RAW ") {
                self.raw_wanted = std::str::from_utf8(n).unwrap().parse().unwrap();
                lines.set_raw_mode();
            }
            self.lines.push(line.to_vec());
        }
        fn raw_data_received(&mut self, lines: &mut Lines<'_>, data: &[u8]) {
            let take = data.len().min(self.raw_wanted);
            self.raw.extend_from_slice(&data[..take]);
            self.raw_wanted -= take;
            if self.raw_wanted == 0 {
                lines.set_line_mode_with(&data[take..]);
            }
        }
        fn line_length_exceeded(&mut self, lines: &mut Lines<'_>, pending: usize) {
            self.exceeded.push(pending);
            if !self.keep_open {
                lines.transport().lose_connection();
            }
        }
        fn connection_lost(&mut self, _lines: &mut Lines<'_>, _reason: &Reason, unfinished: &[u8]) {
            self.lost = Some(unfinished.to_vec());
        }
    }

    fn feed(p: &mut LineReceiver<Collect>, t: &mut StringTransport, data: &[u8], cuts: &[usize]) {
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
        fn any_split_gives_the_same_lines(
            lines in prop::collection::vec(prop::collection::vec(prop::sample::select(b"ab\r\n".to_vec()), 0..20), 0..20),
            crlf in any::<bool>(),
            mut cuts in prop::collection::vec(0usize..400, 0..30),
        ) {
            let delim: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            // Lines must not contain the delimiter (nor end in a part of it).
            let lines: Vec<Vec<u8>> = lines
                .into_iter()
                .map(|l| l.into_iter().filter(|&b| b != b'\n').collect::<Vec<u8>>())
                .map(|mut l| { if crlf { while l.last() == Some(&b'\r') { l.pop(); } } l })
                .collect();
            let mut stream = Vec::new();
            for l in &lines {
                stream.extend_from_slice(l);
                stream.extend_from_slice(delim);
            }
            stream.extend_from_slice(b"tail");
            cuts.sort_unstable();
            let mut p = LineReceiver::new(Collect::default()).with_delimiter(delim);
            let mut t = StringTransport::new();
            feed(&mut p, &mut t, &stream, &cuts);
            prop_assert_eq!(&p.handler().lines, &lines);
            p.connection_lost(&mut t, &Reason::PeerClosed);
            prop_assert_eq!(p.handler().lost.as_deref(), Some(&b"tail"[..]));
        }

        #[test]
        fn raw_sections_between_lines_survive_any_split(
            raw in prop::collection::vec(any::<u8>(), 0..300),
            mut cuts in prop::collection::vec(0usize..400, 0..30),
        ) {
            let mut stream = format!("first\r\nRAW {}\r\n", raw.len()).into_bytes();
            stream.extend_from_slice(&raw);
            stream.extend_from_slice(b"after\r\nlast\r\n");
            cuts.sort_unstable();
            let mut p = LineReceiver::new(Collect::default());
            let mut t = StringTransport::new();
            feed(&mut p, &mut t, &stream, &cuts);
            let raw_line = format!("RAW {}", raw.len()).into_bytes();
            let expected = [b"first".to_vec(), raw_line, b"after".to_vec(), b"last".to_vec()];
            prop_assert_eq!(&p.handler().lines, &expected);
            prop_assert_eq!(&p.handler().raw, &raw);
        }
    }

    #[test]
    fn an_overlong_line_closes_by_default_and_nothing_after_it_is_delivered() {
        let mut p = LineReceiver::new(Collect::default()).with_max_length(8);
        let mut t = StringTransport::new();
        p.data_received(&mut t, b"short\r\n0123456789\r\nnever\r\n");
        assert_eq!(p.handler().lines, [b"short".to_vec()]);
        assert_eq!(p.handler().exceeded, [10]);
        assert!(t.is_disconnecting());
    }

    #[test]
    fn the_default_hook_closes_the_connection() {
        struct Plain(Vec<Vec<u8>>, Option<Reason>);
        impl LineHandler for Plain {
            fn line_received(&mut self, _l: &mut Lines<'_>, line: &[u8]) {
                self.0.push(line.to_vec());
            }
            fn connection_lost(&mut self, _l: &mut Lines<'_>, reason: &Reason, _u: &[u8]) {
                self.1 = Some(reason.clone());
            }
        }
        let mut p = LineReceiver::new(Plain(Vec::new(), None)).with_max_length(4);
        let mut t = StringTransport::new();
        // Too long before any delimiter arrives: refused without buffering it all.
        p.data_received(&mut t, b"abcdefgh");
        assert!(t.is_disconnecting());
        p.data_received(&mut t, b"\r\nok\r\n");
        assert!(p.handler().0.is_empty());
        p.connection_lost(&mut t, &Reason::LocalClosed);
        assert_eq!(
            p.handler().1,
            Some(Reason::BadInput(
                "line of 8 bytes exceeds the 4 byte limit".into()
            ))
        );
    }

    #[test]
    fn a_handler_that_keeps_the_connection_skips_the_long_line_and_goes_on() {
        let mut p = LineReceiver::new(Collect {
            keep_open: true,
            ..Collect::default()
        })
        .with_max_length(4);
        let mut t = StringTransport::new();
        for chunk in [
            &b"ok\r\nway too"[..],
            b" long, still",
            b" going\r",
            b"\nfine\r\n",
        ] {
            p.data_received(&mut t, chunk);
        }
        assert_eq!(p.handler().lines, [b"ok".to_vec(), b"fine".to_vec()]);
        assert_eq!(p.handler().exceeded.len(), 1);
        assert!(p.carry.len() < 2, "an overlong line is not buffered");
    }

    #[test]
    fn send_line_appends_the_delimiter() {
        struct Greeter;
        impl LineHandler for Greeter {
            fn connection_made(&mut self, lines: &mut Lines<'_>) {
                lines.send_line(b"hello");
            }
            fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
                lines.send_line(&line.to_ascii_uppercase());
            }
        }
        let mut p = LineReceiver::new(Greeter).with_delimiter(b"\n");
        let mut t = StringTransport::new();
        p.connection_made(&mut t);
        p.data_received(&mut t, b"abc\nde");
        p.data_received(&mut t, b"f\n");
        assert_eq!(t.value(), b"hello\nABC\nDEF\n");
    }

    #[test]
    fn raw_sections_survive_every_split_into_three() {
        for raw_len in 0..5 {
            let raw = vec![b'\n'; raw_len];
            let mut stream = format!("first\r\nRAW {raw_len}\r\n").into_bytes();
            stream.extend_from_slice(&raw);
            stream.extend_from_slice(b"after\r\n\r\n");
            let expected = [
                b"first".to_vec(),
                format!("RAW {raw_len}").into_bytes(),
                b"after".to_vec(),
                Vec::new(),
            ];
            for a in 0..=stream.len() {
                for b in a..=stream.len() {
                    let mut p = LineReceiver::new(Collect::default());
                    let mut t = StringTransport::new();
                    feed(&mut p, &mut t, &stream, &[a, b]);
                    assert_eq!(p.handler().lines, expected, "cuts {a} {b}");
                    assert_eq!(p.handler().raw, raw, "cuts {a} {b}");
                }
            }
        }
    }
}
