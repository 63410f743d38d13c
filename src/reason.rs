//! Why a connection ended, or why a connection attempt failed.

use std::fmt;
use std::io;

/// Why a connection was lost or could not be made.
///
/// Mirrors Twisted's `ConnectionDone` / `ConnectionLost` distinction:
/// [`Reason::is_clean`] is true only for an orderly close by either side.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The peer closed its side of the connection (we read end-of-file).
    PeerClosed,
    /// We closed it with `lose_connection`, after every buffered byte was written.
    LocalClosed,
    /// We closed it with `abort_connection`: buffered bytes were dropped and
    /// the peer got a reset.
    Aborted,
    /// The reactor (or the threaded server) stopped while the connection was
    /// still open.
    ReactorStopped,
    /// A connection attempt did not complete within its timeout.
    TimedOut,
    /// We closed the connection because the peer sent something the protocol
    /// refuses: an over-long line or frame, a malformed netstring. The text
    /// says what. Framing receivers report it to their handler in place of
    /// [`Reason::LocalClosed`] when their own limit or parse check closed the
    /// connection.
    BadInput(String),
    /// A callback of the connection's protocol panicked (the text is the
    /// panic's message): the connection was aborted, and the reactor and
    /// every other connection carried on.
    Panicked(String),
    /// A write would have taken the connection's buffered output past its
    /// hard cap ([`Transport::set_write_buffer_limit`](crate::Transport::set_write_buffer_limit),
    /// [`ListenOptions::write_buffer_limit`](crate::ListenOptions::write_buffer_limit)):
    /// the peer reads too slowly or not at all. The connection was aborted
    /// (the peer got a reset) and its buffer dropped.
    BufferOverflow {
        /// The cap that was in force, in bytes.
        limit: usize,
    },
    /// The connection was closed for `cause` with `unsent` bytes still
    /// buffered (a stop whose grace period ran out, say), or with input
    /// from the peer that the protocol never saw. Those bytes were dropped,
    /// so the peer got a reset rather than a clean end of stream: a
    /// truncated reply never passes for a complete one.
    Discarded {
        /// Bytes written but never handed to the kernel.
        unsent: usize,
        /// Bytes the peer sent that no protocol read.
        unread: usize,
        /// Why the connection was closed.
        cause: Box<Reason>,
    },
    /// The TLS layer ended the connection: a failed handshake (an unknown
    /// certificate authority, a certificate for another name, a peer that
    /// does not speak TLS), a handshake that did not complete within its
    /// timeout, or a corrupt record. The text is rustls's error, or says
    /// which limit passed.
    Tls(String),
    /// The peer closed the connection without TLS's close_notify: what
    /// arrived is intact, but the stream may have been cut short (an
    /// attacker, or a peer that crashed, can end a TCP stream; only
    /// close_notify proves the peer meant to stop there).
    Truncated,
    /// A listener that takes the PROXY protocol
    /// ([`ListenOptions::proxy_protocol`](crate::ListenOptions::proxy_protocol))
    /// closed the connection, before it was made, for its header: malformed,
    /// missing, cut short or late, as the error says. The peer got a reset.
    ProxyHeader(crate::proxy::ProxyHeaderError),
    /// A connect by host name found no address to try: the name does not
    /// resolve (the text is the resolver's error), it resolved to no
    /// address, the resolver was busy, or the destination was not
    /// `HOST:PORT`. See [`Destination`](crate::Destination).
    Unresolved {
        /// The name (or the text) that was to be resolved.
        host: String,
        /// Why it gave no address.
        why: String,
    },
    /// An I/O error: a reset, a broken pipe, a refused or unreachable connect.
    Error {
        /// The error's kind, e.g. `ConnectionReset` or `ConnectionRefused`.
        kind: io::ErrorKind,
        /// The operating system's error number, when there was one.
        os_code: Option<i32>,
    },
}

impl Reason {
    /// True for an orderly close: the peer's FIN or our own `lose_connection`.
    pub fn is_clean(&self) -> bool {
        matches!(self, Reason::PeerClosed | Reason::LocalClosed)
    }

    /// The I/O error kind, for [`Reason::Error`] (and `TimedOut` for [`Reason::TimedOut`]).
    pub fn error_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Reason::Error { kind, .. } => Some(*kind),
            Reason::TimedOut => Some(io::ErrorKind::TimedOut),
            _ => None,
        }
    }
}

impl From<&io::Error> for Reason {
    fn from(e: &io::Error) -> Self {
        Reason::Error {
            kind: e.kind(),
            os_code: e.raw_os_error(),
        }
    }
}

impl From<io::Error> for Reason {
    fn from(e: io::Error) -> Self {
        Reason::from(&e)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::PeerClosed => f.write_str("connection closed cleanly by the peer"),
            Reason::LocalClosed => f.write_str("connection closed cleanly by us"),
            Reason::Aborted => f.write_str("connection aborted by us"),
            Reason::ReactorStopped => f.write_str("connection lost: the server stopped"),
            Reason::TimedOut => f.write_str("connection attempt timed out"),
            Reason::BadInput(why) => write!(f, "closed by us on bad input: {why}"),
            Reason::Panicked(why) => write!(f, "aborted: the protocol panicked: {why}"),
            Reason::BufferOverflow { limit } => {
                write!(f, "aborted: buffered output passed its limit of {limit} bytes (the peer does not read)")
            }
            Reason::Discarded {
                unsent,
                unread,
                cause,
            } => write!(
                f,
                "{cause}; reset, discarding {unsent} unsent and {unread} unread bytes"
            ),
            Reason::Tls(why) => write!(f, "TLS failed: {why}"),
            Reason::Truncated => {
                f.write_str("the peer closed without TLS close_notify: the stream may be truncated")
            }
            Reason::ProxyHeader(why) => write!(f, "closed by us before it was made: {why}"),
            Reason::Unresolved { host, why } => write!(f, "could not resolve {host:?}: {why}"),
            Reason::Error {
                kind,
                os_code: Some(code),
            } => write!(f, "{kind} (os error {code})"),
            Reason::Error {
                kind,
                os_code: None,
            } => write!(f, "{kind}"),
        }
    }
}
