//! Lines over a byte stream: Twisted's `LineReceiver`.

use super::receiver::{Context, Event, Handles, Mode, Next, Receiver, Splitter};
use crate::reason::Reason;

/// Twisted's `LineReceiver.MAX_LENGTH`.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 16 * 1024;

/// What a line-oriented protocol implements; [`LineReceiver`] turns the
/// byte stream into calls of these.
pub trait LineHandler: 'static {
    /// The connection is made.
    fn connection_made(&mut self, lines: &mut Lines<'_>) {
        let _ = lines;
    }

    /// One complete line, without its line ending.
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
    /// [`Protocol::pause_producing`](crate::Protocol::pause_producing). The
    /// default stops reading.
    fn pause_producing(&mut self, lines: &mut Lines<'_>) {
        lines.transport().pause_reading();
    }

    /// Every buffer that paused this producer drained below its low
    /// watermark; a producer writes on here. Reading paused by
    /// `pause_producing` has already resumed: see
    /// [`Protocol::resume_producing`](crate::Protocol::resume_producing).
    fn resume_producing(&mut self, lines: &mut Lines<'_>) {
        let _ = lines;
    }

    /// A graceful stop began; see [`Protocol::stopping`](crate::Protocol::stopping).
    /// The default closes the connection once what is buffered is flushed.
    fn stopping(&mut self, lines: &mut Lines<'_>) -> crate::OnStop {
        let _ = lines;
        crate::OnStop::Close
    }

    /// The idle timeout or deadline passed; see
    /// [`Protocol::timeout_connection`](crate::Protocol::timeout_connection).
    /// The default closes the connection.
    fn timeout_connection(&mut self, lines: &mut Lines<'_>, timeout: crate::Timeout) {
        let _ = timeout;
        lines.transport().lose_connection();
    }

    /// Whether the peer's FIN should leave the connection open for writing;
    /// see [`Protocol::allows_half_close`](crate::Protocol::allows_half_close).
    fn allows_half_close(&self) -> bool {
        false
    }

    /// The peer closed its writing side (with `allows_half_close`).
    fn read_connection_lost(&mut self, lines: &mut Lines<'_>) {
        let _ = lines;
    }

    /// A timer scheduled through [`Context::call_later`] fired.
    fn timer_fired(&mut self, lines: &mut Lines<'_>, tag: u64) {
        let _ = (lines, tag);
    }
}

/// What a [`LineHandler`] callback gets: the transport, plus line sending
/// and mode switching.
pub type Lines<'a> = Context<'a, LineSplitter>;

impl Lines<'_> {
    /// Writes `line` followed by the line ending (`\r\n` by default, the
    /// delimiter if one was set), in one vectored write.
    pub fn send_line(&mut self, line: &[u8]) {
        self.transport
            .write_vectored(&[line, self.format.ending.written()]);
    }

    /// Back to lines from the next byte on.
    pub fn set_line_mode(&mut self) {
        self.set_message_mode_with(&[]);
    }

    /// Back to lines, starting with `rest`: from `raw_data_received`, the
    /// part of its data that belongs to the lines after the raw section
    /// (Twisted's `setLineMode(extra)`). Copied once.
    pub fn set_line_mode_with(&mut self, rest: &[u8]) {
        self.set_message_mode_with(rest);
    }
}

/// What ends a line.
enum Ending {
    /// `\n`, with a `\r` right before it dropped from the line (tokio's
    /// `LinesCodec`): what `nc`, Python's `sendall(b"...\n")` and telnet send.
    /// Lines are written with `\r\n`.
    Newline,
    /// Exactly these bytes, written and expected alike (Twisted's
    /// `delimiter`).
    Exact(Vec<u8>),
}

impl Ending {
    /// The bytes searched for: a line is complete when they arrive.
    fn searched(&self) -> &[u8] {
        match self {
            Ending::Newline => b"\n",
            Ending::Exact(delimiter) => delimiter,
        }
    }

    /// What `send_line` appends.
    fn written(&self) -> &[u8] {
        match self {
            Ending::Newline => b"\r\n",
            Ending::Exact(delimiter) => delimiter,
        }
    }

    /// Where the line ends in `input`, whose searched bytes start at `end`.
    fn line_end(&self, input: &[u8], end: usize) -> usize {
        match self {
            Ending::Newline if end > 0 && input[end - 1] == b'\r' => end - 1,
            _ => end,
        }
    }

    /// The fewest bytes of `input`, which holds no searched bytes, that
    /// belong to the line whatever follows: all but the start of a line
    /// ending that may be finished by the next read.
    fn at_least_in_line(&self, input: &[u8]) -> usize {
        match self {
            Ending::Newline => input.len() - usize::from(input.last() == Some(&b'\r')),
            // As Twisted: a delimiter's worth minus one byte is allowed.
            Ending::Exact(delimiter) => input.len().saturating_sub(delimiter.len() - 1),
        }
    }
}

/// Where lines end: at a line ending.
pub struct LineSplitter {
    ending: Ending,
    /// A line exceeded the limit: its bytes are skipped up to the next
    /// line ending, and only what could start one is carried.
    discarding: bool,
}

impl Splitter for LineSplitter {
    type Format = LineSplitter;

    fn format(&self) -> &LineSplitter {
        self
    }

    fn wants(&self, carried: &[u8], data: &[u8], _max_length: usize) -> usize {
        // The carried bytes hold no delimiter, but one may straddle.
        let delimiter = self.ending.searched();
        let tail = carried.len().saturating_sub(delimiter.len() - 1);
        line_end(&carried[tail..], data, delimiter).unwrap_or(data.len())
    }

    fn next(&mut self, input: &[u8], seen: usize, max_length: usize, mode: Mode) -> Next {
        if mode == Mode::Raw && !self.discarding {
            return Next::Raw;
        }
        let delimiter = self.ending.searched();
        let delim_len = delimiter.len();
        // A delimiter may straddle what was seen and what is new.
        let from = seen.saturating_sub(delim_len - 1);
        let found = find(&input[from..], delimiter).map(|i| from + i);
        if self.discarding {
            // An overlong line's bytes go first, whatever the mode, up to its
            // delimiter; only what could start one is kept meanwhile.
            return match found {
                Some(end) => {
                    self.discarding = false;
                    Next::Skip(end + delim_len)
                }
                None => match input.len() - input.len().min(delim_len - 1) {
                    0 => Next::Wait,
                    n => Next::Skip(n),
                },
            };
        }
        match found {
            Some(found) => match self.ending.line_end(input, found) {
                end if end <= max_length => Next::Message {
                    body: 0..end,
                    len: found + delim_len,
                },
                end => {
                    self.discarding = true;
                    Next::TooLong(end as u64)
                }
            },
            // A line of `max` bytes may still be waiting for the rest of its
            // line ending.
            None if self.ending.at_least_in_line(input) > max_length => {
                self.discarding = true;
                Next::TooLong(input.len() as u64)
            }
            None => Next::Wait,
        }
    }

    fn unfinished<'c>(&self, carried: &'c [u8]) -> &'c [u8] {
        if self.discarding {
            &[]
        } else {
            carried
        }
    }
}

impl<H: LineHandler> Handles<LineSplitter> for H {
    fn handle(&mut self, lines: &mut Lines<'_>, event: Event<'_>) {
        match event {
            Event::Made => self.connection_made(lines),
            Event::Message(line) => self.line_received(lines, line),
            Event::Raw(data) => self.raw_data_received(lines, data),
            Event::TooLong(pending) => {
                let pending = usize::try_from(pending).unwrap_or(usize::MAX);
                self.line_length_exceeded(lines, pending);
            }
            // The line splitter finds nothing malformed; were it to, the
            // connection would close with the reason.
            Event::Malformed(what) => lines.close_because(format!("malformed line: {what}")),
            Event::Lost { reason, unfinished } => self.connection_lost(lines, reason, unfinished),
            Event::PauseProducing => self.pause_producing(lines),
            Event::ResumeProducing => self.resume_producing(lines),
            Event::Timeout(timeout) => self.timeout_connection(lines, timeout),
            Event::ReadConnectionLost => self.read_connection_lost(lines),
            Event::TimerFired(tag) => self.timer_fired(lines, tag),
        }
    }

    fn allows_half_close(&self) -> bool {
        LineHandler::allows_half_close(self)
    }

    fn stopping(&mut self, lines: &mut Lines<'_>) -> crate::OnStop {
        LineHandler::stopping(self, lines)
    }
}

/// A [`Protocol`](crate::Protocol) that splits the stream into lines for a
/// [`LineHandler`].
///
/// # Line endings
///
/// By default a line ends at `\n`, and a `\r` right before it is dropped
/// (as tokio's `LinesCodec` does): what `nc`, telnet, Python's
/// `sock.sendall(b"hi\n")` and Windows programs send all arrive as the same
/// line. A `\r` anywhere else stays part of the line.
/// [`send_line`](Lines::send_line) appends `\r\n`: every peer that reads
/// lines accepts it, strict ones included (a Twisted `LineReceiver`, an
/// HTTP or SMTP parser, this receiver with `\r\n`), whereas a bare `\n`
/// would leave a Twisted peer waiting for ever; a lenient reader drops the
/// `\r` as this one does, and a terminal does not show it.
///
/// [`with_delimiter`](LineReceiver::with_delimiter) makes the ending exactly
/// the given bytes, expected and written alike: `b"\r\n"` is Twisted's
/// `LineReceiver` (a line sent with a bare `\n` is not a line), `b"\n"`
/// keeps a `\r` before the `\n` in the line and writes bare `\n`s.
///
/// ```
/// use reactor::framing::{LineHandler, LineReceiver, Lines};
/// use reactor::testing::StringTransport;
/// use reactor::Protocol;
///
/// /// Answers each line in upper case.
/// struct Upper;
///
/// impl LineHandler for Upper {
///     fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
///         lines.send_line(&line.to_ascii_uppercase());
///     }
/// }
///
/// // The default: `\n` ends a line, with or without a `\r` before it.
/// let mut lenient = LineReceiver::new(Upper);
/// let mut t = StringTransport::new();
/// lenient.data_received(&mut t, b"from nc\nfrom telnet\r\n");
/// assert_eq!(t.value(), b"FROM NC\r\nFROM TELNET\r\n");
///
/// // Twisted's strict `\r\n`: a bare `\n` does not end a line.
/// let mut strict = LineReceiver::new(Upper).with_delimiter(b"\r\n");
/// let mut t = StringTransport::new();
/// strict.data_received(&mut t, b"from nc\nfrom telnet\r\n");
/// assert_eq!(t.value(), b"FROM NC\nFROM TELNET\r\n");
/// ```
///
/// # Lengths and copies
///
/// A line is at most [`DEFAULT_MAX_LINE_LENGTH`] bytes without its ending
/// unless [`with_max_length`](Receiver::with_max_length) says otherwise;
/// past it, [`LineHandler::line_length_exceeded`] is called and the line's
/// bytes are skipped, never buffered. A line is copied at most once: lines
/// wholly inside one read are passed straight from the read buffer; an
/// unfinished line is kept, and what completes it is appended to it. Lines
/// stop being delivered once the transport is closing.
pub type LineReceiver<H> = Receiver<LineSplitter, H>;

impl<H: LineHandler> Receiver<LineSplitter, H> {
    /// Wraps `handler` with lines ending at `\n` (a `\r` before it dropped),
    /// written with `\r\n`, of at most 16 KiB.
    pub fn new(handler: H) -> Self {
        let splitter = LineSplitter {
            ending: Ending::Newline,
            discarding: false,
        };
        Receiver::with_splitter(splitter, handler, DEFAULT_MAX_LINE_LENGTH)
    }

    /// Ends lines with exactly `delimiter`, received and sent: `b"\r\n"`
    /// for Twisted's strict lines.
    ///
    /// # Panics
    /// If `delimiter` is empty: a programming error, caught at construction.
    pub fn with_delimiter(mut self, delimiter: &[u8]) -> Self {
        assert!(!delimiter.is_empty(), "a line delimiter cannot be empty");
        self.splitter.ending = Ending::Exact(delimiter.to_vec());
        self
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

#[cfg(test)]
// The property tests (any split, raw sections) are in
// `tools/tests/framing_properties.rs`, so that the root package does not
// depend on proptest.
mod tests {
    use super::*;
    use crate::testing::StringTransport;
    use crate::Protocol;

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
    fn overlong_lines_are_skipped_under_every_split_into_three() {
        // Delimiters of one to three bytes and the default ending (sent as
        // `\n` and as `\r\n`), lines holding the start of one, a line of
        // exactly the limit and one holding a lone `\r`, and overlong lines
        // ending in the start of a delimiter: what is kept while skipping
        // may straddle reads.
        let endings: [(Option<&[u8]>, &[u8]); 5] = [
            (Some(b"\n"), b"\n"),
            (Some(b"\r\n"), b"\r\n"),
            (Some(b"<->"), b"<->"),
            (None, b"\n"),
            (None, b"\r\n"),
        ];
        for (exact, sent) in endings {
            let lines: [&[u8]; 8] = [
                b"ok",
                b"far too long",
                b"<-",
                b"",
                b"toolong<-",
                b"four",
                b"a\rb",
                b"fine",
            ];
            let mut stream = Vec::new();
            for line in lines {
                stream.extend_from_slice(line);
                stream.extend_from_slice(sent);
            }
            stream.extend_from_slice(b"tail");
            let expected: [&[u8]; 6] = [b"ok", b"<-", b"", b"four", b"a\rb", b"fine"];
            for a in 0..=stream.len() {
                for b in a..=stream.len() {
                    let mut p = LineReceiver::new(Collect {
                        keep_open: true,
                        ..Collect::default()
                    })
                    .with_max_length(4);
                    if let Some(delimiter) = exact {
                        p = p.with_delimiter(delimiter);
                    }
                    let mut t = StringTransport::new();
                    feed(&mut p, &mut t, &stream, &[a, b]);
                    let at = format!("{exact:?} sent as {sent:?}, cuts {a} {b}");
                    assert_eq!(p.handler().lines, expected, "{at}");
                    assert_eq!(p.handler().exceeded.len(), 2, "{at}");
                    p.connection_lost(&mut t, &Reason::PeerClosed);
                    assert_eq!(p.handler().lost.as_deref(), Some(&b"tail"[..]), "{at}");
                }
            }
        }
    }

    #[test]
    fn by_default_a_line_ends_at_newline_and_a_cr_before_it_is_dropped() {
        let mut p = LineReceiver::new(Collect::default());
        let mut t = StringTransport::new();
        // `\n` alone, `\r\n` split between two reads, a lone `\r` inside a
        // line, a `\r` just before a read ends that turns out not to end it.
        for chunk in [
            &b"nc\npython\r"[..],
            b"\nlone\rcr\r\nhalf\r",
            b"way\n\r\n\n",
        ] {
            p.data_received(&mut t, chunk);
        }
        let expected: [&[u8]; 6] = [b"nc", b"python", b"lone\rcr", b"half\rway", b"", b""];
        assert_eq!(p.handler().lines, expected);
    }

    #[test]
    fn by_default_the_limit_counts_the_line_without_its_cr() {
        let mut p = LineReceiver::new(Collect::default()).with_max_length(4);
        let mut t = StringTransport::new();
        // Exactly the limit, then its `\r`, then the `\n` in the next read.
        p.data_received(&mut t, b"four\r");
        assert!(p.handler().exceeded.is_empty());
        p.data_received(&mut t, b"\nfive\rx");
        assert_eq!(p.handler().lines, [b"four".to_vec()]);
        // `five\rx` cannot end within the limit any more.
        assert_eq!(p.handler().exceeded, [6]);
    }

    #[test]
    fn a_strict_crlf_receiver_keeps_bare_newlines_in_the_line() {
        let mut p = LineReceiver::new(Collect::default()).with_delimiter(b"\r\n");
        let mut t = StringTransport::new();
        p.data_received(&mut t, b"one\ntwo\r");
        assert!(p.handler().lines.is_empty());
        p.data_received(&mut t, b"\n");
        assert_eq!(p.handler().lines, [b"one\ntwo".to_vec()]);
    }

    #[test]
    fn send_line_writes_crlf_by_default() {
        struct Echo;
        impl LineHandler for Echo {
            fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
                lines.send_line(line);
            }
        }
        let mut p = LineReceiver::new(Echo);
        let mut t = StringTransport::new();
        p.data_received(&mut t, b"a\nb\r\n");
        assert_eq!(t.value(), b"a\r\nb\r\n");
    }

    #[test]
    fn bytes_handed_back_when_the_peer_stops_sending_are_delivered_at_once() {
        /// Holds raw bytes until the peer's FIN, then hands them back.
        #[derive(Default)]
        struct HoldUntilEof {
            held: Vec<u8>,
            lines: Vec<Vec<u8>>,
        }
        impl LineHandler for HoldUntilEof {
            fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
                if line == b"hold" {
                    lines.set_raw_mode();
                }
                self.lines.push(line.to_vec());
            }
            fn raw_data_received(&mut self, _lines: &mut Lines<'_>, data: &[u8]) {
                self.held.extend_from_slice(data);
            }
            fn allows_half_close(&self) -> bool {
                true
            }
            fn read_connection_lost(&mut self, lines: &mut Lines<'_>) {
                let held = std::mem::take(&mut self.held);
                lines.set_line_mode_with(&held);
            }
        }
        let mut p = LineReceiver::new(HoldUntilEof::default());
        let mut t = StringTransport::new();
        p.data_received(&mut t, b"hold\r\na\r\nb\r\n");
        assert!(p.allows_half_close());
        // No read follows a FIN: the lines are delivered now or never.
        p.read_connection_lost(&mut t);
        assert_eq!(
            p.handler().lines,
            [b"hold".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
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
