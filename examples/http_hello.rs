//! A browser asks, the server answers `hello world`: the HTTP server of
//! section 四 ("TCP套接字之HTTP传输") of seed `000_52dec2213283d72d.txt`,
//! done properly on the reactor's [`LineReceiver`].
//!
//! The seed's server reads one `recv(4096)`, sends a fixed reply and closes.
//! This one speaks enough HTTP/1.1 for browsers and `curl`:
//!
//! - `GET /` answers `200 OK`, `Content-Type: text/plain`, `Content-Length: 12`
//!   and the body `hello world\n` (with a newline, so `curl` leaves the shell
//!   prompt on a line of its own); `HEAD /` the same head without the body.
//! - Any other path: `404 Not Found`. Other methods on `/`: `405 Method Not
//!   Allowed` with `Allow: GET, HEAD`.
//! - Connections are kept alive (HTTP/1.1 by default, HTTP/1.0 with
//!   `Connection: keep-alive`) and pipelined requests are answered in order;
//!   `Connection: close`, or HTTP/1.0 without keep-alive, gets its answer with
//!   `Connection: close` and then the connection is closed.
//! - A malformed request line or header, a missing or repeated `Host` in
//!   HTTP/1.1, or a request head (request line, headers and the empty line,
//!   line endings included) over 8 KiB: `400 Bad Request`, then close.
//!   `Transfer-Encoding` (chunked bodies): `501`, then close. A body is read
//!   (`Content-Length`, at most 64 KiB; more is `413`, then close) and
//!   discarded; `Expect: 100-continue` gets its `100 Continue` first. An HTTP
//!   version other than 1.0 and 1.1: `505`, then close.
//! - A request head must arrive in full within `--head-timeout` (10 s) of its
//!   first byte (of the connection's start, for the first request), however
//!   slowly it trickles in: a slowloris client gets `408 Request Timeout`,
//!   then close. A keep-alive connection that waits `--idle-timeout` (60 s)
//!   for its next request with nothing read or written is closed without an
//!   answer, as nginx's `keepalive_timeout` does; a body that stalls that long
//!   gets the `408`.
//!
//! Lines may end with `\r\n` or a bare `\n`. Every response is written with
//! one vectored write of static byte strings: nothing is allocated per
//! request.
//!
//! ```text
//! cargo run --release --example http_hello              # port 8000, as the seed
//! curl -v http://127.0.0.1:8000/ http://127.0.0.1:8000/ # two requests, one connection
//! ```
//!
//! or open <http://127.0.0.1:8000/> in a browser. Prints `listening on ADDR`
//! on stdout once bound; logs go to stderr (`RUST_LOG=debug` for each
//! connection and refused request).

mod common;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use log::debug;
use reactor::framing::{LineHandler, LineReceiver, Lines};
use reactor::{Protocol, Reason, Timeout, Transport};

#[derive(Parser, Debug)]
#[command(about = "HTTP/1.1 server that answers GET / with `hello world`")]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); 8000 is the seed's.
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Seconds a request head (request line, headers and the empty line) may
    /// take to arrive in full, counted from its first byte (from the
    /// connection's start, for the first request) however slowly the bytes
    /// trickle in; then `408 Request Timeout` and close. Fractions allowed.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = positive_seconds)]
    head_timeout: Duration,
    /// Seconds a keep-alive connection may wait for its next request with
    /// nothing read or written before it is closed (without an answer); a
    /// request body that stalls this long gets `408`. Fractions allowed.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = positive_seconds)]
    idle_timeout: Duration,
}

/// A timeout flag: seconds, fractions allowed, more than zero.
fn positive_seconds(s: &str) -> Result<Duration, String> {
    let timeout = common::parse_duration(s)?;
    if timeout.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(timeout)
}

/// The connection's two clocks, from the command line.
#[derive(Clone, Copy)]
struct Timeouts {
    /// From a request head's first byte to its empty line.
    head: Duration,
    /// Nothing read or written, between requests or within a body.
    idle: Duration,
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

/// `canned!(STATUS, EXTRA_HEADERS, LENGTH, BODY)`; LENGTH is checked against
/// BODY at compile time.
macro_rules! canned {
    ($status:literal, $extra:literal, $len:literal, $body:literal) => {{
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
                "Content-Type: text/plain\r\nContent-Length: ",
                $len,
                "\r\n"
            )
            .as_bytes(),
            body: $body.as_bytes(),
        }
    }};
}

const OK: Canned = canned!("200 OK", "", 12, "hello world\n");
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Method {
    #[default]
    Get,
    Head,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Version {
    Http10,
    #[default]
    Http11,
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

/// What the current request said that matters to the answer.
#[derive(Default)]
struct Request {
    method: Method,
    /// The path is `/` (query ignored).
    root: bool,
    version: Version,
    /// `Connection: close` / `Connection: keep-alive` seen.
    close: bool,
    keep_alive: bool,
    content_length: Option<usize>,
    transfer_encoding: bool,
    hosts: u32,
    expect_continue: bool,
}

impl Request {
    /// Whether the connection stays open after the answer.
    fn persistent(&self) -> bool {
        match self.version {
            Version::Http11 => !self.close,
            Version::Http10 => self.keep_alive && !self.close,
        }
    }
}

/// Why a request is refused; each is answered and the connection closed.
#[derive(Clone, Copy)]
enum Refusal {
    BadRequest(&'static str),
    TooLarge,
    NotImplemented,
    VersionNotSupported,
}

impl Refusal {
    /// What was wrong, for the log.
    fn why(self) -> &'static str {
        match self {
            Refusal::BadRequest(why) => why,
            Refusal::TooLarge => "a body over 64 KiB",
            Refusal::NotImplemented => "Transfer-Encoding",
            Refusal::VersionNotSupported => "an HTTP version other than 1.0 and 1.1",
        }
    }

    fn response(self) -> &'static Canned {
        match self {
            Refusal::BadRequest(_) => &BAD_REQUEST,
            Refusal::TooLarge => &TOO_LARGE,
            Refusal::NotImplemented => &NOT_IMPLEMENTED,
            Refusal::VersionNotSupported => &VERSION_NOT_SUPPORTED,
        }
    }
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
}

impl Http {
    fn new(timeouts: Timeouts) -> Self {
        Http {
            phase: Phase::KeepAlive,
            head_bytes: 0,
            request: Request::default(),
            timeouts,
            unconsumed: 0,
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
        let persistent = request.persistent();
        let end = match (persistent, request.version) {
            (false, _) => END_CLOSE,
            (true, Version::Http10) => END_KEEP_ALIVE,
            (true, Version::Http11) => END_KEEP,
        };
        let transport = lines.transport();
        transport.write_vectored(&[canned.head, end, body]);
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

    fn header(&mut self, line: &[u8]) -> Result<(), Refusal> {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(Refusal::BadRequest("a header line without a colon"))?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        // Also refuses obsolete line folding (a line starting with a space)
        // and whitespace before the colon, as RFC 9112 asks.
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(Refusal::BadRequest("a malformed header name"));
        }
        let value = value.trim_ascii();
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(Refusal::BadRequest("a control character in a header value"));
        }
        let request = &mut self.request;
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_length(value).ok_or(Refusal::BadRequest("a malformed Content-Length"))?;
            if request.content_length.is_some_and(|m| m != n) {
                return Err(Refusal::BadRequest("conflicting Content-Length headers"));
            }
            request.content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            request.transfer_encoding = true;
        } else if name.eq_ignore_ascii_case(b"host") {
            request.hosts += 1;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if option.eq_ignore_ascii_case(b"close") {
                    request.close = true;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    request.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            // Other expectations are ignored, as RFC 9110 allows.
            request.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
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
            Phase::Headers => self.header(line)?,
            Phase::KeepAlive | Phase::Body(_) | Phase::Done => {}
        }
        Ok(())
    }
}

impl LineHandler for Http {
    fn connection_made(&mut self, lines: &mut Lines<'_>) {
        let transport = lines.transport();
        debug!("{}: connected", transport.peer_addr());
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
        debug!(
            "{}: closed ({reason}), {} bytes of an unfinished line, in {:?}",
            lines.transport().peer_addr(),
            unfinished.len(),
            self.phase
        );
    }
}

/// RFC 9110's `tchar`: what a method or a header name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `METHOD SP request-target SP HTTP-version`, single spaces.
fn parse_request_line(line: &[u8]) -> Result<Request, Refusal> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::BadRequest("a malformed request line"));
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(Refusal::BadRequest("a malformed method"));
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(Refusal::VersionNotSupported)
        }
        _ => return Err(Refusal::BadRequest("a malformed HTTP version")),
    };
    let path = path_of(target).ok_or(Refusal::BadRequest("a malformed request target"))?;
    Ok(Request {
        method: match method {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            _ => Method::Other,
        },
        root: path == b"/",
        version,
        ..Request::default()
    })
}

/// The path of an origin-form (`/a?b`) or absolute-form (`http://h/a?b`)
/// target, without its query; `None` for anything else (`*`, `h:80`) or a
/// target with spaces, controls or non-ASCII bytes.
fn path_of(target: &[u8]) -> Option<&[u8]> {
    if target.is_empty() || !target.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let path = if target.starts_with(b"/") {
        target
    } else {
        let scheme_len = [&b"http://"[..], b"https://"]
            .iter()
            .find(|s| target.len() >= s.len() && target[..s.len()].eq_ignore_ascii_case(s))?
            .len();
        let rest = &target[scheme_len..];
        match rest.iter().position(|&b| b == b'/' || b == b'?') {
            Some(i) if rest[i] == b'/' => &rest[i..],
            // `http://host` and `http://host?q` name the root.
            _ => b"/",
        }
    };
    Some(match path.iter().position(|&b| b == b'?') {
        Some(i) => &path[..i],
        None => path,
    })
}

/// A `Content-Length` value: digits only; too large a number saturates (and
/// is refused as too large).
fn parse_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0usize, |n, &d| {
        n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
    }))
}

/// The HTTP handler under its line receiver, told also what the receiver
/// keeps from a handler: that bytes arrived which no line accounts for yet.
/// A request line still in transit has begun a head as surely as a whole one.
struct HttpConnection(LineReceiver<Http>);

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
}

fn serve(args: &Args) -> Result<(), String> {
    let timeouts = Timeouts {
        head: args.head_timeout,
        idle: args.idle_timeout,
    };
    common::serve(&args.host, args.port, |reactor, addr| {
        let factory = move || {
            HttpConnection(
                LineReceiver::new(Http::new(timeouts))
                    .with_delimiter(DELIMITER)
                    .with_max_length(MAX_HEAD),
            )
        };
        Ok(reactor.listen_tcp(addr, factory)?.local_addr())
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("http_hello", serve(&args))
}
