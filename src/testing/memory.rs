//! A reactor in memory, for unit tests of protocols that use the reactor
//! (Twisted's `MemoryReactor` with `task.Clock`): connections without
//! sockets, time that moves only when the test says, and what was asked
//! of the network recorded instead of done.
//!
//! A [`MemoryReactor`] owns a real [`Reactor`] that is never polled: its
//! clock is manual ([`Reactor::now`] moves only with
//! [`advance`](MemoryReactor::advance)), its connections live in its slots
//! as memory connections that the test is the peer of, and `listen_tcp`,
//! `connect_tcp` and `stop` are recorded. Protocols see the reactor's own
//! [`Transport`](crate::Transport), so `transport.reactor()` is the reactor,
//! and `write_to`, `call_later`, `call_every`, `register_producer` and the
//! rest work on memory connections as on TCP ones.
//!
//! Callbacks run while the test's call runs: [`connect`](MemoryReactor::connect)
//! runs `connection_made`, [`receive`](MemoryReactor::receive) runs
//! `data_received`, [`advance`](MemoryReactor::advance) runs the timers that
//! came due. What they write reaches [`written`](MemoryReactor::written)
//! once the callback returns, as it reaches the socket on TCP.
//!
//! | module | job |
//! |---|---|
//! | here | `MemoryReactor`: making connections, `advance`, settling after each call |
//! | `conn` | `MemoryConn`, a memory connection's slot; the reactor's arms for it: lending its protocol, writes, the peer's reads, closes |
//! | `open` | making memory connections: directly, on a listener, or from a recorded connect |
//! | `peer` | what the test does as the peer: send, close, reset, read or not |
//! | `flow` | watermarks, producers, read pauses, idle timeouts, deadlines, connect timeouts |
//! | `records` | what is recorded: each connection's bytes and end, listens, connects, a stop |

mod conn;
mod flow;
mod open;
mod peer;
mod records;

use std::io;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use log::error;

use crate::address::Address;
use crate::protocol::{Factory, Protocol};
use crate::reactor::{Reactor, TimeSource};
use crate::reason::Reason;
use crate::tcp::{ListenerHandle, DEAD_ID};
use crate::transport::ConnectionId;

pub(crate) use self::conn::MemoryConn;
pub(crate) use self::records::Memory;
pub use self::records::{ConnectRequest, ListenRequest};

/// A [`Reactor`] in memory, for unit tests: the test is the peer of every
/// connection and the only clock. It dereferences to its reactor, so a
/// test calls `call_later`, `listen_tcp`, `now` and the rest on it directly,
/// and protocols reach it through `transport.reactor()`.
///
/// What it does as the real reactor does: writes are flushed once each
/// callback returns (one read of at most 64 KiB per `data_received`, as
/// from a socket); closes are applied after the callback; the write cap
/// aborts (`Reason::BufferOverflow`); watermarks hold producers while the
/// peer does not read ([`set_peer_reading`](MemoryReactor::set_peer_reading)),
/// with `pause_producing` and flow control's read pause; idle timeouts,
/// deadlines, connect timeouts and protocol timers fire on the manual clock;
/// callbacks run under the panic guard.
///
/// What it does not: it is never run (`run` returns an error), so there is
/// no poll and no time budget; timers, and calls from other threads, run
/// only in [`advance`](MemoryReactor::advance). A stop is recorded, not
/// begun. TLS is not simulated (a TLS listen or connect records `tls` and
/// carries plaintext; `start_tls` fails). UDP endpoints, `add_source`
/// sources and `run_in_thread`'s threads are the real ones (their events
/// are never polled, though `run_in_thread`'s results come back in
/// `advance`).
///
/// ```
/// use std::time::Duration;
/// use reactor::testing::MemoryReactor;
/// use reactor::{Protocol, Transport};
///
/// /// Says "bye" a second after each line, then closes.
/// struct Polite;
/// impl Protocol for Polite {
///     fn data_received(&mut self, t: &mut dyn Transport, _data: &[u8]) {
///         t.call_later(Duration::from_secs(1), 0);
///     }
///     fn timer_fired(&mut self, t: &mut dyn Transport, _tag: u64) {
///         t.write(b"bye\n");
///         t.lose_connection();
///     }
/// }
///
/// let mut memory = MemoryReactor::new()?;
/// let id = memory.connect(Polite, "127.0.0.1:40000".parse().unwrap());
/// memory.receive(id, b"hello\n");
/// memory.advance(Duration::from_millis(999));
/// assert_eq!(memory.written(id), b"");
/// memory.advance(Duration::from_millis(1));
/// assert_eq!(memory.written(id), b"bye\n");
/// assert_eq!(memory.close_reason(id), Some(&reactor::Reason::LocalClosed));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct MemoryReactor {
    reactor: Reactor,
}

impl Deref for MemoryReactor {
    type Target = Reactor;

    fn deref(&self) -> &Reactor {
        &self.reactor
    }
}

impl DerefMut for MemoryReactor {
    fn deref_mut(&mut self) -> &mut Reactor {
        &mut self.reactor
    }
}

impl MemoryReactor {
    /// A reactor in memory: no connections, nothing recorded, its clock
    /// standing at the moment it was made. Fails only if the reactor's
    /// epoll instance cannot be made (it is never polled; no socket is).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let t = memory.now();
    /// let real = Instant::now();
    /// while Instant::now() == real {} // real time passes...
    /// assert_eq!(memory.now(), t, "...the clock moves only with advance");
    /// memory.advance(Duration::from_millis(1500));
    /// assert_eq!(memory.now() - t, Duration::from_millis(1500));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<MemoryReactor> {
        let mut reactor = Reactor::new()?;
        let now = Instant::now();
        reactor.time = TimeSource::Manual(now);
        reactor.turn_now = now;
        reactor.memory = Some(Box::default());
        Ok(MemoryReactor { reactor })
    }

    /// The reactor itself, as a callback would get it (the same as
    /// dereferencing).
    ///
    /// ```
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let reactor: &mut reactor::Reactor = memory.reactor();
    /// assert!(reactor.run().is_err(), "a reactor in memory is not run");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn reactor(&mut self) -> &mut Reactor {
        &mut self.reactor
    }

    /// Makes a connection from `peer` to `protocol` (as if accepted) and
    /// runs its `connection_made`. Its local address is the unspecified
    /// one of `peer`'s family.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let peer = "127.0.0.1:40000".parse().unwrap();
    /// let id = memory.connect(Echo, peer);
    /// assert!(memory.is_connected(id));
    /// assert_eq!(memory.peer_addr(id), Some(peer.into()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect(&mut self, protocol: impl Protocol, peer: SocketAddr) -> ConnectionId {
        let made = self
            .reactor
            .memory_open(Box::new(protocol), peer, None, None);
        self.settle();
        made.unwrap_or_else(|e| {
            error!("connection from {peer} in memory not made: {e}");
            DEAD_ID
        })
    }

    /// Makes a connection from `peer` to a protocol `factory` builds (for
    /// `peer`, under the panic guard) and runs its `connection_made`: as
    /// [`connect`](MemoryReactor::connect), for a factory the test holds.
    /// `None` if `build_protocol` panicked.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    /// use reactor::{Factory, Protocol};
    ///
    /// /// Every connection gets an echo.
    /// struct Echoes;
    /// impl Factory for Echoes {
    ///     fn build_protocol(&mut self, _peer: SocketAddr) -> Box<dyn Protocol> {
    ///         Box::new(Echo)
    ///     }
    /// }
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let mut factory = Echoes;
    /// let a = memory.connect_from(&mut factory, "127.0.0.1:40001".parse().unwrap()).unwrap();
    /// let b = memory.connect_from(&mut factory, "127.0.0.1:40002".parse().unwrap()).unwrap();
    /// memory.receive(a, b"a");
    /// memory.receive(b, b"b");
    /// assert_eq!(memory.take_written(a), b"a");
    /// assert_eq!(memory.take_written(b), b"b");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_from(
        &mut self,
        factory: &mut dyn Factory,
        peer: SocketAddr,
    ) -> Option<ConnectionId> {
        let protocol = match crate::panic::catch(|| factory.build_protocol(peer)) {
            Ok(protocol) => protocol,
            Err(why) => {
                error!("{peer}: build_protocol panicked: {why}; connection not made");
                return None;
            }
        };
        let made = self.reactor.memory_open(protocol, peer, None, None);
        self.settle();
        match made {
            Ok(id) => Some(id),
            Err(e) => {
                error!("connection from {peer} in memory not made: {e}");
                None
            }
        }
    }

    /// Makes a connection from `peer` on a listener (one of
    /// [`listens`](MemoryReactor::listens), or any the test made on this
    /// reactor): its factory builds the protocol, under its
    /// [`ListenOptions`](crate::ListenOptions) (limits, idle timeout, write cap), and
    /// `connection_made` runs. An error if it stopped listening, a limit
    /// refused `peer` (counted in its stats), or `build_protocol` panicked.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    /// use reactor::ListenOptions;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let options = ListenOptions { max_connections: Some(1), ..ListenOptions::default() };
    /// let listener = memory.listen_tcp_with("127.0.0.1:7".parse().unwrap(), || Echo, options)?;
    /// let peer = "127.0.0.1:40000".parse().unwrap();
    /// let id = memory.accept(&listener, peer)?;
    /// assert_eq!(memory.local_addr_of(id)?, listener.local_addr());
    /// assert!(memory.accept(&listener, peer).is_err(), "over the limit");
    /// assert_eq!(memory.listener_stats(&listener).unwrap().refused, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn accept(
        &mut self,
        listener: &ListenerHandle,
        peer: SocketAddr,
    ) -> io::Result<ConnectionId> {
        let (protocol, options) = self.reactor.accept_in_memory(listener.slot(), peer)?;
        let local = Some(listener.local_addr());
        let made =
            self.reactor
                .memory_open(protocol, peer, local, Some((listener.slot(), options)));
        self.settle();
        made
    }

    /// The local address of memory connection `id` (what its protocol's
    /// `transport.local_addr()` says).
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "[::1]:40000".parse().unwrap());
    /// let any: SocketAddr = "[::]:0".parse().unwrap();
    /// assert_eq!(memory.local_addr_of(id)?, any);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr_of(&self, id: ConnectionId) -> io::Result<Address> {
        self.reactor.memory_local_addr(id).map(Address::Ip)
    }

    /// Completes a recorded connect ([`connects`](MemoryReactor::connects)):
    /// the factory builds the protocol, what was written to the connection
    /// meanwhile goes to the peer, then `connection_made` runs. False if
    /// `id` is not a connect waiting.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::testing::MemoryReactor;
    /// use reactor::{Protocol, Transport};
    ///
    /// struct Hello;
    /// impl Protocol for Hello {
    ///     fn connection_made(&mut self, t: &mut dyn Transport) {
    ///         t.write(b"hello\n");
    ///     }
    ///     fn data_received(&mut self, _: &mut dyn Transport, _: &[u8]) {}
    /// }
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect_tcp("127.0.0.1:7", || Hello, Duration::from_secs(5));
    /// assert!(memory.complete_connect(id));
    /// assert_eq!(memory.written(id), b"hello\n");
    /// assert!(!memory.complete_connect(id), "made already");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn complete_connect(&mut self, id: ConnectionId) -> bool {
        let done = self.reactor.memory_complete_connect(id);
        self.settle();
        done
    }

    /// Fails a recorded connect: its factory hears
    /// `client_connection_failed` with `reason`. False if `id` is not a
    /// connect waiting.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::io::ErrorKind;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    /// use reactor::{client_factory, Reason};
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let heard = Rc::new(RefCell::new(None));
    /// let said = heard.clone();
    /// let factory = client_factory(|| Echo, move |_, why: &Reason| *said.borrow_mut() = Some(why.clone()));
    /// let id = memory.connect_tcp("127.0.0.1:7", factory, Duration::from_secs(5));
    /// let refused = Reason::from(std::io::Error::from(ErrorKind::ConnectionRefused));
    /// assert!(memory.fail_connect(id, refused.clone()));
    /// assert_eq!(*heard.borrow(), Some(refused));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn fail_connect(&mut self, id: ConnectionId, reason: Reason) -> bool {
        let waiting = self
            .reactor
            .memory_conn(id)
            .is_some_and(|c| c.state == crate::tcp::ConnState::Connecting);
        if waiting {
            self.reactor.queue_close(id, reason);
        }
        self.settle();
        waiting
    }

    /// Moves the clock `by` forward and runs what came due at the new
    /// time, as a turn would after its poll: calls queued from other
    /// threads ([`ReactorHandle::call_from_thread`](crate::ReactorHandle::call_from_thread),
    /// and so `run_in_thread`'s results that are back), connects that
    /// failed before having a connection, then every timer due
    /// (`call_later`, protocol timers, `call_every` ticks, idle checks,
    /// deadlines, connect timeouts) in deadline order, equal deadlines in
    /// scheduling order. The clock jumps: a repeating call that missed
    /// ticks runs once and counts them, as after a busy turn. A timer
    /// scheduled while they run waits for the next `advance`, even with
    /// delay 0 (`advance(Duration::ZERO)` is the next turn's timers).
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let start = memory.now();
    /// let missed = Rc::new(RefCell::new(Vec::new()));
    /// let log = missed.clone();
    /// memory.call_every(Duration::from_secs(1), move |_, tick| log.borrow_mut().push(tick.missed));
    /// memory.advance(Duration::from_secs(10));
    /// assert_eq!(memory.now() - start, Duration::from_secs(10));
    /// assert_eq!(*missed.borrow(), [9], "one call for ten ticks");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn advance(&mut self, by: Duration) {
        self.settle();
        self.reactor.advance_clock(by);
        self.reactor.run_remote_calls();
        self.settle();
        self.reactor.report_failed_connects();
        self.reactor.fire_due_timers();
        self.settle();
    }

    /// What follows the test's call as it follows a callback on the real
    /// reactor: writes flushed, producers told, closes applied; then the
    /// connections whose reading resumed read what waited for them, as the
    /// leftover queue would serve them.
    pub(super) fn settle(&mut self) {
        self.reactor.apply_closes();
        loop {
            let ready = std::mem::take(&mut self.reactor.memory_mut().ready);
            if ready.is_empty() {
                break;
            }
            for id in ready {
                self.reactor.memory_read(id);
                self.reactor.apply_closes();
            }
        }
    }
}
