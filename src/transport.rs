//! What a protocol writes through: Twisted's `ITransport`.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::address::Address;
use crate::reactor::Reactor;
use crate::timer::TimerId;

/// Names one connection for as long as it lives.
///
/// It is the connection's slot in the reactor plus a generation, so an id kept
/// after its connection closed never reaches the connection that reuses the
/// slot: writing to it is a logged no-op.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId {
    pub(crate) key: u32,
    pub(crate) generation: u32,
}

impl ConnectionId {
    /// An id made from its two parts; for transports other than the
    /// reactor's (tests, the threaded server).
    pub fn from_parts(key: u32, generation: u32) -> Self {
        ConnectionId { key, generation }
    }

    /// The slot part of the id.
    pub fn key(self) -> u32 {
        self.key
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.key, self.generation)
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One connection's end, as seen from its protocol.
///
/// The reactor's implementation never blocks: what a callback writes is
/// sent with one `write` once the callback returns, and what the socket does
/// not take then waits in the connection's buffer. Other implementations (an in-memory
/// [`StringTransport`](crate::testing::StringTransport), the blocking
/// thread-per-connection one in [`threaded`](crate::threaded)) let the same protocol run elsewhere.
///
/// ```
/// use std::time::Duration;
/// use reactor::testing::StringTransport;
/// use reactor::{Protocol, Transport};
///
/// /// Greets the peer, echoes, says goodbye on `quit`; closes after a quiet minute.
/// struct Session;
/// impl Protocol for Session {
///     fn connection_made(&mut self, transport: &mut dyn Transport) {
///         transport.set_idle_timeout(Some(Duration::from_secs(60)));
///         let greeting = format!("hello {}\n", transport.peer_addr());
///         transport.write(greeting.as_bytes());
///     }
///     fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
///         if data.starts_with(b"quit") {
///             transport.write(b"bye\n");
///             transport.lose_connection(); // after "bye" is flushed
///         } else {
///             transport.write(data);
///         }
///     }
/// }
///
/// // Any transport will do; this one records what was written.
/// let mut transport = StringTransport::new(); // from 127.0.0.1:40000
/// let mut session = Session;
/// session.connection_made(&mut transport);
/// session.data_received(&mut transport, b"hi\n");
/// session.data_received(&mut transport, b"quit\n");
/// assert_eq!(transport.value(), b"hello 127.0.0.1:40000\nhi\nbye\n");
/// assert!(transport.is_disconnecting());
/// ```
pub trait Transport {
    /// Queues `data` for sending. Never blocks and never fails loudly: after
    /// the connection is closed it is a no-op logged at debug level, and an
    /// I/O error closes the connection with that error as the reason. On the
    /// reactor, every write a callback makes goes out together, in one
    /// `write` once the callback returns, so many small writes cost one
    /// syscall; a write that would take the buffered output past its cap
    /// ([`set_write_buffer_limit`](Transport::set_write_buffer_limit)) aborts
    /// the connection with [`Reason::BufferOverflow`](crate::Reason::BufferOverflow).
    fn write(&mut self, data: &[u8]);

    /// Writes several chunks in order, as [`write`](Transport::write) of
    /// each would.
    fn write_vectored(&mut self, chunks: &[&[u8]]);

    /// Closes the connection once every buffered byte has been written.
    /// Reading stops at once; `connection_lost` follows with
    /// [`Reason::LocalClosed`](crate::Reason::LocalClosed).
    fn lose_connection(&mut self);

    /// Closes now: buffered bytes are dropped and the peer gets a reset.
    /// A UNIX socket has no reset: its peer reads what was already sent,
    /// then an error (ECONNRESET) if input we had not read was still queued
    /// on our side, or else end-of-file.
    fn abort_connection(&mut self);

    /// Closes our writing side once every buffered byte is written (the
    /// peer reads end-of-file) and goes on reading: a half-close. Later
    /// writes are logged no-ops. The connection ends when the peer closes
    /// its side too (`connection_lost` with `PeerClosed`), or on
    /// `lose_connection`. Twisted's `loseWriteConnection`.
    fn lose_write_connection(&mut self);

    /// The remote address: an IP address and port, a UNIX socket's name,
    /// or [`Address::Pipe`] for standard I/O.
    fn peer_addr(&self) -> Address;

    /// The local address.
    fn local_addr(&self) -> io::Result<Address>;

    /// Who is at the other end of a UNIX connection: its process, user and
    /// group ids, as the kernel recorded them when the connection was made
    /// (see [`PeerCredentials`](crate::PeerCredentials)). `None` for
    /// anything but a UNIX socket (the default).
    fn peer_credentials(&self) -> Option<crate::PeerCredentials> {
        None
    }

    /// This connection's id, to be written to from other callbacks.
    fn id(&self) -> ConnectionId;

    /// Turns Nagle's algorithm off (`true`) or on. A UNIX socket has no
    /// Nagle algorithm (what is written is queued for the peer at once):
    /// there, nothing to set, and `Ok`.
    fn set_nodelay(&mut self, nodelay: bool) -> io::Result<()>;

    /// Bytes accepted by `write` but not yet handed to the kernel.
    fn buffered(&self) -> usize;

    /// Whether the connection is closing or closed (`lose_connection`,
    /// `abort_connection`, an error, or the peer's FIN): a framing layer
    /// stops delivering frames then, as Twisted's receivers do.
    fn is_closing(&self) -> bool;

    /// Calls [`Protocol::timeout_connection`](crate::Protocol::timeout_connection)
    /// when nothing was read and no write made progress for `timeout`
    /// (Twisted's `TimeoutMixin.setTimeout`); `None` turns it off. Traffic
    /// resets it with no timer work: a check runs once per period.
    fn set_idle_timeout(&mut self, timeout: Option<Duration>);

    /// Calls `timeout_connection` once `after` has passed from now, however
    /// busy the connection is; `None` cancels it.
    fn set_deadline(&mut self, after: Option<Duration>);

    /// Sets the outgoing-buffer sizes at which producing pauses (`high`,
    /// passed by a write) and resumes (`low`, drained below).
    /// Defaults: 64 KiB and 16 KiB. See [`Protocol::pause_producing`](crate::Protocol::pause_producing).
    fn set_write_watermarks(&mut self, low: usize, high: usize);

    /// Caps the bytes this connection may hold buffered for its peer
    /// (default [`DEFAULT_WRITE_BUFFER_LIMIT`](crate::DEFAULT_WRITE_BUFFER_LIMIT),
    /// 16 MiB, or the listener's [`ListenOptions::write_buffer_limit`](crate::ListenOptions::write_buffer_limit)).
    /// A write that would pass it, by this protocol or by any other
    /// connection's `write_to`, aborts the connection with
    /// [`Reason::BufferOverflow`](crate::Reason::BufferOverflow): the watermarks
    /// ask producers to slow down, the cap is what holds when they do not.
    fn set_write_buffer_limit(&mut self, bytes: usize);

    /// Whether the outgoing buffer crossed its high watermark and has not
    /// drained below the low one since: a producer writes while this is
    /// false and goes on in `resume_producing`.
    fn is_write_buffer_full(&self) -> bool;

    /// Stops delivering `data_received` until [`resume_reading`](Transport::resume_reading);
    /// unread bytes wait in the kernel, whose full buffers slow the peer down.
    fn pause_reading(&mut self);

    /// Delivers data again, starting with what arrived while paused.
    fn resume_reading(&mut self);

    /// Schedules [`Protocol::timer_fired`](crate::Protocol::timer_fired) with
    /// `tag` on this connection's protocol after `delay`. The timer is dropped
    /// silently if the connection is gone by then.
    ///
    /// The tag is a bare `u64` so that scheduling allocates nothing; it is
    /// enough to say which of a protocol's timers fired when the protocol
    /// names its timers with an enum (`as u64` out, `TryFrom<u64>` back), or
    /// keeps what a timer needs in its own slab or map and tags the timer
    /// with the key:
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::testing::StringTransport;
    /// use reactor::{Protocol, TimerId, Transport};
    ///
    /// /// The protocol's timers, one variant each.
    /// #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    /// enum Timer {
    ///     Ping = 1,
    ///     GiveUp = 2,
    /// }
    ///
    /// impl TryFrom<u64> for Timer {
    ///     type Error = u64;
    ///     fn try_from(tag: u64) -> Result<Self, u64> {
    ///         match tag {
    ///             1 => Ok(Timer::Ping),
    ///             2 => Ok(Timer::GiveUp),
    ///             other => Err(other),
    ///         }
    ///     }
    /// }
    ///
    /// /// Pings every 10 s; gives up after 30 s without an answer. Replies
    /// /// waiting to be sent later sit in a `Vec`, their index as the tag
    /// /// (above the enum's range).
    /// struct Keepalive {
    ///     give_up: Option<TimerId>,
    ///     later: Vec<Option<Vec<u8>>>,
    /// }
    ///
    /// const LATER: u64 = 1 << 32;
    ///
    /// impl Protocol for Keepalive {
    ///     fn connection_made(&mut self, t: &mut dyn Transport) {
    ///         t.call_later(Duration::from_secs(10), Timer::Ping as u64);
    ///         self.give_up = Some(t.call_later(Duration::from_secs(30), Timer::GiveUp as u64));
    ///     }
    ///     fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
    ///         if let Some(timer) = self.give_up {
    ///             t.reset_timer(timer, Duration::from_secs(30)); // heard from the peer
    ///         }
    ///         if data == b"later\n" {
    ///             self.later.push(Some(b"as promised\n".to_vec()));
    ///             let index = (self.later.len() - 1) as u64;
    ///             t.call_later(Duration::from_secs(1), LATER + index);
    ///         }
    ///     }
    ///     fn timer_fired(&mut self, t: &mut dyn Transport, tag: u64) {
    ///         if tag >= LATER {
    ///             if let Some(reply) = self.later[(tag - LATER) as usize].take() {
    ///                 t.write(&reply);
    ///             }
    ///             return;
    ///         }
    ///         match Timer::try_from(tag) {
    ///             Ok(Timer::Ping) => {
    ///                 t.write(b"ping\n");
    ///                 t.call_later(Duration::from_secs(10), Timer::Ping as u64);
    ///             }
    ///             Ok(Timer::GiveUp) => t.lose_connection(),
    ///             Err(unknown) => unreachable!("no timer has tag {unknown}"),
    ///         }
    ///     }
    /// }
    ///
    /// let mut t = StringTransport::new();
    /// let mut p = Keepalive { give_up: None, later: Vec::new() };
    /// p.connection_made(&mut t);
    /// t.advance(Duration::from_secs(10), &mut p);
    /// p.data_received(&mut t, b"later\n");
    /// t.advance(Duration::from_secs(1), &mut p);
    /// assert_eq!(t.take(), b"ping\nas promised\n");
    /// t.advance(Duration::from_secs(28), &mut p); // 29 s after "later"
    /// assert!(!t.is_disconnecting());
    /// t.advance(Duration::from_secs(1), &mut p); // 30 s: gives up
    /// assert!(t.is_disconnecting());
    /// ```
    fn call_later(&mut self, delay: Duration, tag: u64) -> TimerId;

    /// Cancels a timer; returns whether it was still pending.
    fn cancel_timer(&mut self, timer: TimerId) -> bool;

    /// Makes a pending timer of this connection come due `delay` from now
    /// instead, keeping its id and tag (Twisted's `DelayedCall.reset`);
    /// returns whether it was still pending. On the reactor this is
    /// [`Reactor::reset_timer`](crate::Reactor::reset_timer): O(log n) and
    /// no allocation, cheaper than cancelling and scheduling anew.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::testing::StringTransport;
    /// use reactor::Transport;
    ///
    /// let mut t = StringTransport::new();
    /// let timer = t.call_later(Duration::from_secs(5), 7);
    /// assert!(t.reset_timer(timer, Duration::from_secs(60)));
    /// assert_eq!(t.clock().advance(Duration::from_secs(59)), Vec::<u64>::new());
    /// assert_eq!(t.clock().advance(Duration::from_secs(1)), [7]);
    /// assert!(!t.reset_timer(timer, Duration::from_secs(1)), "it fired");
    /// ```
    fn reset_timer(&mut self, timer: TimerId, delay: Duration) -> bool;

    /// Pushes a pending timer's deadline `by` later, keeping its id and tag
    /// (Twisted's `DelayedCall.delay`); returns whether it was still pending.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::testing::StringTransport;
    /// use reactor::Transport;
    ///
    /// let mut t = StringTransport::new();
    /// let timer = t.call_later(Duration::from_secs(5), 7);
    /// t.clock().advance(Duration::from_secs(4));
    /// assert!(t.delay_timer(timer, Duration::from_secs(2))); // due at 7 s
    /// assert_eq!(t.clock().advance(Duration::from_secs(2)), Vec::<u64>::new());
    /// assert_eq!(t.clock().advance(Duration::from_secs(1)), [7]);
    /// ```
    fn delay_timer(&mut self, timer: TimerId, by: Duration) -> bool;

    /// Whether a timer is still pending: not fired, not cancelled
    /// (Twisted's `DelayedCall.active`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::testing::StringTransport;
    /// use reactor::Transport;
    ///
    /// let mut t = StringTransport::new();
    /// let timer = t.call_later(Duration::from_secs(5), 7);
    /// assert!(t.is_timer_active(timer));
    /// t.clock().advance(Duration::from_secs(5));
    /// assert!(!t.is_timer_active(timer));
    /// ```
    fn is_timer_active(&self, timer: TimerId) -> bool;

    /// The reactor running this connection, to write to other connections,
    /// listen, connect or stop. `None` where there is no reactor (an
    /// in-memory test transport).
    fn reactor(&mut self) -> Option<&mut Reactor>;

    /// Upgrades this plain connection to TLS in the middle of the stream
    /// (STARTTLS, as SMTP, IMAP, XMPP and Postgres do), on either side. What
    /// was written before the call goes out in plaintext; what is written
    /// after it is encrypted, and held until the handshake completes. The
    /// protocol stays the same and keeps being called; bytes the peer sends
    /// after its own switch are decrypted before they reach it. The peer
    /// must not send TLS bytes before it has seen our go-ahead (a
    /// STARTTLS protocol waits for it), since bytes already delivered in
    /// plaintext stay so.
    ///
    /// Errors: the transport cannot do it (`Unsupported`: the threaded
    /// model and the in-memory test transport; wrap the protocol in a
    /// [`TlsProtocol`](crate::tls::TlsProtocol) there), the connection is
    /// already TLS (`AlreadyExists`) or closing (`NotConnected`).
    #[cfg(feature = "tls")]
    fn start_tls(&mut self, role: crate::tls::TlsRole) -> io::Result<()> {
        let _ = role;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this transport cannot start TLS mid-stream; wrap the protocol in TlsProtocol",
        ))
    }

    /// What the TLS handshake negotiated (ALPN, the server name asked for,
    /// the version, the peer's certificates), once it completed; `None` on a
    /// plain connection.
    #[cfg(feature = "tls")]
    fn tls_info(&self) -> Option<&crate::tls::TlsInfo> {
        None
    }
}
