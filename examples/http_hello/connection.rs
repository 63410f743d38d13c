//! One HTTP connection: the [`Phase`] state machine on a line receiver that
//! reads requests, answers each with a canned response, and keeps the head
//! and idle clocks.

use std::time::Duration;

use log::debug;
use reactor::framing::{LineHandler, LineReceiver, Lines};
use reactor::{OnStop, Protocol, Reason, Timeout, Transport};

use crate::parse::{parse_request_line, Method, Refusal, Request, Version};

/// The connection's two clocks, from the command line.
#[derive(Clone, Copy)]
pub struct Timeouts {
    /// From a request head's first byte to its empty line.
    pub head: Duration,
    /// Nothing read or written, between requests or within a body.
    pub idle: Duration,
}

/// Largest request head: request line, headers and the empty line that ends
/// them, line endings included. Also the line receiver's line limit, so an
/// over-long line is refused without being buffered.
const MAX_HEAD: usize = 8 * 1024;

/// Largest request body read (and discarded).
const MAX_BODY: usize = 64 * 1024;

/// What ends a line; a `\r` before it is stripped.
const DELIMITER: &[u8] = b"\n";

/// A response's status line and headers up to (not including) `Connection`
/// and the empty line, and its body: static bytes, written as they are.
struct Canned {
    head: &'static [u8],
    body: &'static [u8],
}

impl Canned {
    /// The status code: the three digits after `HTTP/1.1 `.
    fn status(&self) -> u16 {
        self.head[9..12]
            .iter()
            .fold(0, |n, &d| n * 10 + u16::from(d - b'0'))
    }
}

/// `canned!(STATUS, EXTRA_HEADERS, LENGTH, BODY)`, a `text/plain` answer,
/// or `canned!(STATUS, EXTRA_HEADERS, LENGTH, BODY, CONTENT_TYPE)`; LENGTH
/// is checked against BODY at compile time.
macro_rules! canned {
    ($status:literal, $extra:literal, $len:literal, $body:literal) => {
        canned!($status, $extra, $len, $body, "text/plain")
    };
    ($status:literal, $extra:literal, $len:literal, $body:literal, $type:literal) => {{
        const _: () = assert!(
            $body.len() == $len,
            "Content-Length does not match the body"
        );
        Canned {
            head: concat!(
                "HTTP/1.1 ",
                $status,
                "\r\n",
                $extra,
                "Content-Type: ",
                $type,
                "\r\nContent-Length: ",
                $len,
                "\r\n"
            )
            .as_bytes(),
            body: $body.as_bytes(),
        }
    }};
}

/// The page: `text/html`, as the seed's server says.
const OK: Canned = canned!("200 OK", "", 12, "hello world\n", "text/html");
const NOT_FOUND: Canned = canned!("404 Not Found", "", 10, "not found\n");
const METHOD_NOT_ALLOWED: Canned = canned!(
    "405 Method Not Allowed",
    "Allow: GET, HEAD\r\n",
    19,
    "method not allowed\n"
);
const BAD_REQUEST: Canned = canned!("400 Bad Request", "", 12, "bad request\n");
const REQUEST_TIMEOUT: Canned = canned!("408 Request Timeout", "", 16, "request timeout\n");
const TOO_LARGE: Canned = canned!("413 Content Too Large", "", 18, "content too large\n");
const NOT_IMPLEMENTED: Canned = canned!(
    "501 Not Implemented",
    "",
    35,
    "transfer codings are not supported\n"
);
const VERSION_NOT_SUPPORTED: Canned = canned!(
    "505 HTTP Version Not Supported",
    "",
    27,
    "HTTP version not supported\n"
);

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How a response's head ends.
const END_KEEP: &[u8] = b"\r\n";
const END_KEEP_ALIVE: &[u8] = b"Connection: keep-alive\r\n\r\n";
const END_CLOSE: &[u8] = b"Connection: close\r\n\r\n";

// `Refusal` is parse.rs's; what it is answered with lives here, beside the
// responses.
impl Refusal {
    /// The canned answer a refusal gets.
    fn response(self) -> &'static Canned {
        match self {
            Refusal::BadRequest(_) => &BAD_REQUEST,
            Refusal::TooLarge => &TOO_LARGE,
            Refusal::NotImplemented => &NOT_IMPLEMENTED,
            Refusal::VersionNotSupported => &VERSION_NOT_SUPPORTED,
        }
    }
}

/// The access-log line of the answer `canned` (with `body`) to `request`;
/// `-` stands for a request line not yet read (a refusal or a timeout).
fn access(transport: &mut dyn Transport, request: &Request, canned: &Canned, body: &[u8]) {
    let line = if request.line.is_empty() {
        "-"
    } else {
        &request.line
    };
    crate::common::logs::access(transport.peer_addr(), line, canned.status(), body.len());
}

/// Where the connection is in its current request. The head clock (the
/// transport's deadline) starts on entering `RequestLine` and stops when the
/// head is complete; a refusal leaves it running, so it also bounds the close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Between requests, nothing of the next one read yet: the idle timeout
    /// is what closes the connection.
    KeepAlive,
    /// A head has begun (bytes of it arrived, or the connection is new):
    /// waiting for its request line (empty lines before it are skipped).
    RequestLine,
    /// Reading header lines.
    Headers,
    /// Discarding this many more body bytes, in raw mode.
    Body(usize),
    /// Refused or answered with a close: nothing more is read.
    Done,
}

struct Http {
    phase: Phase,
    /// Bytes of the current request head so far, line endings included.
    head_bytes: usize,
    request: Request,
    timeouts: Timeouts,
    /// Bytes read that no line or body has accounted for yet: the start of a
    /// line the line receiver holds until its end arrives.
    unconsumed: usize,
    /// The server is stopping (a restart handed its socket on): the request
    /// under way is answered with `Connection: close`, then the connection
    /// closes.
    draining: bool,
}

impl Http {
    fn new(timeouts: Timeouts) -> Self {
        Http {
            phase: Phase::KeepAlive,
            head_bytes: 0,
            request: Request::default(),
            timeouts,
            unconsumed: 0,
            draining: false,
        }
    }

    /// The first byte of a request head is here (or the connection is new):
    /// the whole head must follow within the head timeout. Later bytes do
    /// not restart the clock, so trickling them in buys nothing.
    fn begin_head(&mut self, transport: &mut dyn Transport) {
        transport.set_deadline(Some(self.timeouts.head));
        self.phase = Phase::RequestLine;
    }

    /// A read was delivered: a pipelined request's first bytes, after an
    /// answer in the same read and without a line ending yet, begin a head.
    fn read_done(&mut self, transport: &mut dyn Transport) {
        if self.phase == Phase::KeepAlive && self.unconsumed > 0 {
            self.begin_head(transport);
        }
    }

    /// Answers the complete current request and gets ready for the next.
    fn respond(&mut self, lines: &mut Lines<'_>) {
        let request = std::mem::take(&mut self.request);
        self.head_bytes = 0;
        let canned = match (request.root, request.method) {
            (false, _) => &NOT_FOUND,
            (true, Method::Other) => &METHOD_NOT_ALLOWED,
            (true, _) => &OK,
        };
        let body = if request.method == Method::Head {
            &b""[..]
        } else {
            canned.body
        };
        let persistent = request.persistent() && !self.draining;
        let end = match (persistent, request.version) {
            (false, _) => END_CLOSE,
            (true, Version::Http10) => END_KEEP_ALIVE,
            (true, Version::Http11) => END_KEEP,
        };
        let transport = lines.transport();
        transport.write_vectored(&[canned.head, end, body]);
        access(transport, &request, canned, body);
        if persistent {
            self.phase = Phase::KeepAlive;
        } else {
            self.phase = Phase::Done;
            transport.lose_connection();
        }
    }

    /// Answers with `refusal`'s response and closes.
    fn refuse(&mut self, lines: &mut Lines<'_>, refusal: Refusal) {
        debug!(
            "{}: refused: {}",
            lines.transport().peer_addr(),
            refusal.why()
        );
        self.close_with(lines.transport(), refusal.response());
    }

    /// Answers with `canned` and `Connection: close`, then closes.
    fn close_with(&mut self, transport: &mut dyn Transport, canned: &Canned) {
        let body = if self.phase == Phase::Headers && self.request.method == Method::Head {
            &b""[..]
        } else {
            canned.body
        };
        transport.write_vectored(&[canned.head, END_CLOSE, body]);
        access(transport, &self.request, canned, body);
        transport.lose_connection();
        self.phase = Phase::Done;
    }

    /// `what` took too long: `408`, then close.
    fn time_out(&mut self, transport: &mut dyn Transport, what: &str) {
        debug!(
            "{}: {what} timed out in {:?}; closing",
            transport.peer_addr(),
            self.phase
        );
        // Answers still queued mean a peer that is not reading: one more
        // would only wait behind them.
        if transport.buffered() == 0 {
            self.close_with(transport, &REQUEST_TIMEOUT);
        } else {
            transport.lose_connection();
            self.phase = Phase::Done;
        }
    }

    /// The empty line ended the head: check it, then read the body or answer.
    fn head_done(&mut self, lines: &mut Lines<'_>) -> Result<(), Refusal> {
        // The head is complete: its clock stops (a body has the idle timeout).
        lines.transport().set_deadline(None);
        let request = &self.request;
        if request.hosts > 1 || (request.version == Version::Http11 && request.hosts == 0) {
            return Err(Refusal::BadRequest("a missing or repeated Host header"));
        }
        if request.transfer_encoding {
            return Err(Refusal::NotImplemented);
        }
        match request.content_length.unwrap_or(0) {
            0 => self.respond(lines),
            n if n > MAX_BODY => return Err(Refusal::TooLarge),
            n => {
                if request.expect_continue && request.version == Version::Http11 {
                    lines.transport().write(CONTINUE);
                }
                self.phase = Phase::Body(n);
                lines.set_raw_mode();
            }
        }
        Ok(())
    }

    fn line(&mut self, lines: &mut Lines<'_>, line: &[u8]) -> Result<(), Refusal> {
        if self.phase == Phase::KeepAlive {
            // A pipelined request: its head begins with this line.
            self.begin_head(lines.transport());
        }
        self.head_bytes += line.len() + DELIMITER.len();
        if self.head_bytes > MAX_HEAD {
            return Err(Refusal::BadRequest("a request head over 8 KiB"));
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match self.phase {
            // RFC 9112 2.2: empty lines before a request line are ignored.
            Phase::RequestLine if line.is_empty() => {}
            Phase::RequestLine => {
                self.request = parse_request_line(line)?;
                self.phase = Phase::Headers;
            }
            Phase::Headers if line.is_empty() => self.head_done(lines)?,
            Phase::Headers => self.request.header(line)?,
            Phase::KeepAlive | Phase::Body(_) | Phase::Done => {}
        }
        Ok(())
    }
}

impl LineHandler for Http {
    fn connection_made(&mut self, lines: &mut Lines<'_>) {
        let transport = lines.transport();
        crate::common::logs::connected(transport.peer_addr());
        transport.set_idle_timeout(Some(self.timeouts.idle));
        self.begin_head(transport);
        // Pipelined answers are separate small writes: Nagle would hold the
        // second until the first is acknowledged.
        if let Err(e) = transport.set_nodelay(true) {
            debug!("{}: cannot set TCP_NODELAY: {e}", transport.peer_addr());
        }
    }

    fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
        self.unconsumed = self.unconsumed.saturating_sub(line.len() + DELIMITER.len());
        if let Err(refusal) = self.line(lines, line) {
            self.refuse(lines, refusal);
        }
    }

    fn raw_data_received(&mut self, lines: &mut Lines<'_>, data: &[u8]) {
        let Phase::Body(left) = self.phase else {
            return;
        };
        let take = left.min(data.len());
        self.unconsumed = self.unconsumed.saturating_sub(take);
        if take < left {
            self.phase = Phase::Body(left - take);
            return;
        }
        // The body is complete: what follows is the next request's lines.
        lines.set_line_mode_with(&data[take..]);
        self.respond(lines);
    }

    fn line_length_exceeded(&mut self, lines: &mut Lines<'_>, _pending: usize) {
        self.refuse(lines, Refusal::BadRequest("a line over 8 KiB"));
    }

    fn timeout_connection(&mut self, lines: &mut Lines<'_>, timeout: Timeout) {
        let transport = lines.transport();
        match (timeout, self.phase) {
            // Only the head clock sets a deadline.
            (Timeout::Deadline, _) => self.time_out(transport, "request head"),
            (Timeout::Idle, Phase::KeepAlive) => {
                debug!(
                    "{}: idle for {:?} between requests; closing",
                    transport.peer_addr(),
                    self.timeouts.idle
                );
                transport.lose_connection();
                self.phase = Phase::Done;
            }
            (Timeout::Idle, Phase::Body(_)) => self.time_out(transport, "request body"),
            // A head in progress has its own clock; the reactor asks again
            // after another idle period.
            (Timeout::Idle, Phase::RequestLine | Phase::Headers | Phase::Done) => {}
        }
    }

    fn connection_lost(&mut self, lines: &mut Lines<'_>, reason: &Reason, unfinished: &[u8]) {
        crate::common::logs::closed(lines.transport().peer_addr(), reason);
        debug!(
            "{}: closed ({reason}), {} bytes of an unfinished line, in {:?}",
            lines.transport().peer_addr(),
            unfinished.len(),
            self.phase
        );
    }
}

/// The HTTP handler under its line receiver, told also what the receiver
/// keeps from a handler: that bytes arrived which no line accounts for yet.
/// A request line still in transit has begun a head as surely as a whole one.
pub struct HttpConnection(LineReceiver<Http>);

impl HttpConnection {
    /// A new connection's protocol: lines end with `\n` (a `\r` before it is
    /// stripped), and none may be longer than a whole head.
    pub fn new(timeouts: Timeouts) -> Self {
        HttpConnection(
            LineReceiver::new(Http::new(timeouts))
                .with_delimiter(DELIMITER)
                .with_max_length(MAX_HEAD),
        )
    }
}

impl Protocol for HttpConnection {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        self.0.connection_made(transport);
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        let http = self.0.handler_mut();
        http.unconsumed += data.len();
        if http.phase == Phase::KeepAlive {
            http.begin_head(transport);
        }
        self.0.data_received(transport, data);
        self.0.handler_mut().read_done(transport);
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        self.0.connection_lost(transport, reason);
    }

    fn timeout_connection(&mut self, transport: &mut dyn Transport, timeout: Timeout) {
        self.0.timeout_connection(transport, timeout);
    }

    fn pause_producing(&mut self, transport: &mut dyn Transport) {
        self.0.pause_producing(transport);
    }

    fn resume_producing(&mut self, transport: &mut dyn Transport) {
        self.0.resume_producing(transport);
    }

    /// A graceful stop (after a restart handed the socket on): a connection
    /// idle between requests closes now, as nginx's do (a keep-alive client
    /// retries on a new connection, RFC 9112 section 9.3.1); one whose
    /// request has begun, or that has sent none yet (a client that just
    /// connected is about to), is answered first, with `Connection: close`.
    fn stopping(&mut self, _transport: &mut dyn Transport) -> OnStop {
        let http = self.0.handler_mut();
        match http.phase {
            Phase::KeepAlive if http.unconsumed == 0 => OnStop::Close,
            Phase::Done => OnStop::Close,
            _ => {
                http.draining = true;
                OnStop::KeepOpen
            }
        }
    }
}
