//! Running protocols without sockets or real time, as Twisted's
//! `proto_helpers.StringTransport` and `task.Clock`; two protocols
//! talking to each other in memory ([`Pipe`], as Twisted's
//! `iosim.connectedServerAndClient`), e.g. a TLS client and server; and a
//! whole reactor in memory ([`MemoryReactor`], as Twisted's `MemoryReactor`
//! with `task.Clock`) for protocols that use `transport.reactor()`: writing
//! to other connections, timers, listening, connecting, stopping.
//!
//! ```
//! use std::time::Duration;
//! use reactor::testing::StringTransport;
//! use reactor::{Protocol, Transport};
//!
//! /// Closes the connection after 10 quiet seconds.
//! struct Idle;
//! impl Protocol for Idle {
//!     fn connection_made(&mut self, t: &mut dyn Transport) {
//!         t.call_later(Duration::from_secs(10), 0);
//!     }
//!     fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
//!         t.write(data);
//!     }
//!     fn timer_fired(&mut self, t: &mut dyn Transport, _tag: u64) {
//!         t.lose_connection();
//!     }
//! }
//!
//! let mut t = StringTransport::new();
//! let mut p = Idle;
//! p.connection_made(&mut t);
//! p.data_received(&mut t, b"ping");
//! assert_eq!(t.take(), b"ping");
//! t.advance(Duration::from_secs(9), &mut p);
//! assert!(!t.is_disconnecting());
//! t.advance(Duration::from_secs(1), &mut p);
//! assert!(t.is_disconnecting());
//! ```

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::address::Address;
use crate::protocol::Protocol;
use crate::reactor::Reactor;
use crate::timer::{TimerHeap, TimerId};
use crate::transport::{ConnectionId, Transport};

pub(crate) mod memory;
mod pipe;

pub use self::memory::{ConnectRequest, ListenRequest, MemoryReactor};
pub use self::pipe::{Pipe, Side};

/// A manual clock: time moves only when [`advance`](Clock::advance) says so.
pub struct Clock {
    base: Instant,
    elapsed: Duration,
    timers: TimerHeap<u64>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            base: Instant::now(),
            elapsed: Duration::ZERO,
            timers: TimerHeap::new(),
        }
    }
}

impl Clock {
    /// A clock at time zero with nothing scheduled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Time passed since the clock was made.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Schedules `tag` to come due `delay` from now.
    pub fn call_later(&mut self, delay: Duration, tag: u64) -> TimerId {
        self.timers
            .insert(crate::rules::timer_deadline(self.now(), delay), tag)
    }

    /// Cancels a pending timer; returns whether it was pending.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id).is_some()
    }

    /// The clock's present time, as the `Instant` its deadlines are on.
    fn now(&self) -> Instant {
        self.base + self.elapsed
    }

    /// Makes a pending timer come due `delay` from now, keeping its id;
    /// returns whether it was pending. As [`Reactor::reset_timer`]: among
    /// equal deadlines it ranks as scheduled now.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::testing::Clock;
    ///
    /// let mut clock = Clock::new();
    /// let id = clock.call_later(Duration::from_secs(1), 1);
    /// clock.call_later(Duration::from_secs(2), 2);
    /// assert!(clock.reset(id, Duration::from_secs(3)));
    /// assert_eq!(clock.advance(Duration::from_secs(3)), [2, 1]);
    /// assert!(!clock.reset(id, Duration::ZERO), "it fired");
    /// ```
    pub fn reset(&mut self, id: TimerId, delay: Duration) -> bool {
        let deadline = crate::rules::timer_deadline(self.now(), delay);
        self.timers.reschedule(id, deadline)
    }

    /// Pushes a pending timer's deadline `by` later, keeping its id;
    /// returns whether it was pending. As [`Reactor::delay_timer`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::testing::Clock;
    ///
    /// let mut clock = Clock::new();
    /// let id = clock.call_later(Duration::from_secs(1), 1);
    /// assert!(clock.delay(id, Duration::from_secs(1)));
    /// assert_eq!(clock.advance(Duration::from_secs(1)), Vec::<u64>::new());
    /// assert_eq!(clock.advance(Duration::from_secs(1)), [1]);
    /// ```
    pub fn delay(&mut self, id: TimerId, by: Duration) -> bool {
        match self.timers.deadline(id) {
            Some(due) => self
                .timers
                .reschedule(id, crate::rules::timer_deadline(due, by)),
            None => false,
        }
    }

    /// Whether a timer is still pending. As [`Reactor::is_timer_active`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::testing::Clock;
    ///
    /// let mut clock = Clock::new();
    /// let id = clock.call_later(Duration::from_secs(1), 1);
    /// assert!(clock.is_active(id));
    /// assert!(clock.cancel(id));
    /// assert!(!clock.is_active(id));
    /// ```
    pub fn is_active(&self, id: TimerId) -> bool {
        self.timers.is_active(id)
    }

    /// How long until a pending timer comes due; `None` once it is not
    /// pending.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::testing::Clock;
    ///
    /// let mut clock = Clock::new();
    /// let id = clock.call_later(Duration::from_secs(5), 1);
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(clock.remaining(id), Some(Duration::from_secs(3)));
    /// ```
    pub fn remaining(&self, id: TimerId) -> Option<Duration> {
        self.timers
            .deadline(id)
            .map(|due| due.saturating_duration_since(self.now()))
    }

    /// Timers still pending.
    pub fn pending(&self) -> usize {
        self.timers.len()
    }

    /// Moves time forward by `by` and returns the tags that came due, in
    /// deadline order (equal deadlines in scheduling order).
    pub fn advance(&mut self, by: Duration) -> Vec<u64> {
        self.elapsed += by;
        let now = self.now();
        let before = self.timers.next_seq();
        std::iter::from_fn(|| self.timers.pop_due(now, before).map(|(_, tag)| tag)).collect()
    }
}

/// An in-memory [`Transport`] that records what its protocol wrote and
/// whether it asked to close. Timers go to a manual [`Clock`].
pub struct StringTransport {
    written: Vec<u8>,
    disconnecting: bool,
    aborted: bool,
    nodelay: bool,
    peer: SocketAddr,
    local: SocketAddr,
    id: ConnectionId,
    clock: Clock,
    watermarks: (usize, usize),
    write_buffer_limit: usize,
    buffer_full: bool,
    reading_paused: bool,
    write_closed: bool,
    idle_timeout: Option<Duration>,
    deadline: Option<Duration>,
}

impl Default for StringTransport {
    fn default() -> Self {
        StringTransport::with_addrs(
            SocketAddr::from(([127, 0, 0, 1], 40000)),
            SocketAddr::from(([127, 0, 0, 1], 8000)),
        )
    }
}

impl StringTransport {
    /// A transport from 127.0.0.1:40000 to 127.0.0.1:8000.
    pub fn new() -> Self {
        Self::default()
    }

    /// A transport with the given peer and local addresses.
    pub fn with_addrs(peer: SocketAddr, local: SocketAddr) -> Self {
        StringTransport {
            written: Vec::new(),
            disconnecting: false,
            aborted: false,
            nodelay: false,
            peer,
            local,
            id: ConnectionId::from_parts(0, 1),
            clock: Clock::new(),
            watermarks: (
                crate::rules::DEFAULT_LOW_WATERMARK,
                crate::rules::DEFAULT_HIGH_WATERMARK,
            ),
            write_buffer_limit: crate::rules::DEFAULT_WRITE_BUFFER_LIMIT,
            buffer_full: false,
            reading_paused: false,
            write_closed: false,
            idle_timeout: None,
            deadline: None,
        }
    }

    /// Everything written so far.
    pub fn value(&self) -> &[u8] {
        &self.written
    }

    /// Everything written since the last `take`, removing it.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.written)
    }

    /// Whether the protocol called `lose_connection` or `abort_connection`.
    pub fn is_disconnecting(&self) -> bool {
        self.disconnecting
    }

    /// Makes [`Transport::is_write_buffer_full`] answer `full`, to drive a
    /// producer: set it, then call the protocol's `pause_producing`; clear
    /// it, then call `resume_producing`.
    pub fn set_write_buffer_full(&mut self, full: bool) {
        self.buffer_full = full;
    }

    /// Whether the protocol paused reading and has not resumed.
    pub fn is_reading_paused(&self) -> bool {
        self.reading_paused
    }

    /// The watermarks the protocol set, `(low, high)`.
    pub fn write_watermarks(&self) -> (usize, usize) {
        self.watermarks
    }

    /// The cap on buffered output the protocol set (see
    /// [`Transport::set_write_buffer_limit`]).
    pub fn write_buffer_limit(&self) -> usize {
        self.write_buffer_limit
    }

    /// The idle timeout and deadline the protocol set, as given; a test
    /// calls the protocol's `timeout_connection` itself to see what it does.
    pub fn timeouts(&self) -> (Option<Duration>, Option<Duration>) {
        (self.idle_timeout, self.deadline)
    }

    /// Whether the protocol called `lose_write_connection`.
    pub fn is_write_closed(&self) -> bool {
        self.write_closed
    }

    /// Whether the protocol called `abort_connection`.
    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    /// Whether the protocol turned Nagle's algorithm off.
    pub fn nodelay(&self) -> bool {
        self.nodelay
    }

    /// The clock the protocol's timers run on.
    pub fn clock(&mut self) -> &mut Clock {
        &mut self.clock
    }

    /// Advances the clock and calls `protocol.timer_fired` for each timer
    /// that came due, in order. Timers those calls schedule wait for the next
    /// advance.
    pub fn advance(&mut self, by: Duration, protocol: &mut dyn Protocol) {
        for tag in self.clock.advance(by) {
            protocol.timer_fired(self, tag);
        }
    }
}

impl Transport for StringTransport {
    fn write(&mut self, data: &[u8]) {
        if !self.aborted && !self.write_closed {
            self.written.extend_from_slice(data);
        }
    }

    fn write_vectored(&mut self, chunks: &[&[u8]]) {
        for chunk in chunks {
            self.write(chunk);
        }
    }

    fn lose_connection(&mut self) {
        self.disconnecting = true;
    }

    fn abort_connection(&mut self) {
        self.disconnecting = true;
        self.aborted = true;
    }

    fn lose_write_connection(&mut self) {
        self.write_closed = true;
    }

    fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.idle_timeout = timeout;
    }

    fn set_deadline(&mut self, after: Option<Duration>) {
        self.deadline = after;
    }

    fn peer_addr(&self) -> Address {
        Address::Ip(self.peer)
    }

    fn local_addr(&self) -> io::Result<Address> {
        Ok(Address::Ip(self.local))
    }

    fn id(&self) -> ConnectionId {
        self.id
    }

    fn set_nodelay(&mut self, nodelay: bool) -> io::Result<()> {
        self.nodelay = nodelay;
        Ok(())
    }

    fn buffered(&self) -> usize {
        0
    }

    fn is_closing(&self) -> bool {
        self.disconnecting
    }

    fn set_write_watermarks(&mut self, low: usize, high: usize) {
        self.watermarks = (low, high);
    }

    fn set_write_buffer_limit(&mut self, bytes: usize) {
        self.write_buffer_limit = bytes;
    }

    fn is_write_buffer_full(&self) -> bool {
        self.buffer_full
    }

    fn pause_reading(&mut self) {
        self.reading_paused = true;
    }

    fn resume_reading(&mut self) {
        self.reading_paused = false;
    }

    fn call_later(&mut self, delay: Duration, tag: u64) -> TimerId {
        self.clock.call_later(delay, tag)
    }

    fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.clock.cancel(timer)
    }

    fn reset_timer(&mut self, timer: TimerId, delay: Duration) -> bool {
        self.clock.reset(timer, delay)
    }

    fn delay_timer(&mut self, timer: TimerId, by: Duration) -> bool {
        self.clock.delay(timer, by)
    }

    fn is_timer_active(&self, timer: TimerId) -> bool {
        self.clock.is_active(timer)
    }

    fn reactor(&mut self) -> Option<&mut Reactor> {
        None
    }
}
