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

mod conn;
mod flow;

use std::io;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use log::error;

use crate::address::Address;
use crate::protocol::{Factory, Protocol};
use crate::reactor::{Reactor, TimeSource};
use crate::reason::Reason;
use crate::tcp::{ListenOptions, ListenerHandle};
use crate::transport::ConnectionId;

pub(crate) use self::conn::{Memory, MemoryConn};

/// A listen a [`MemoryReactor`] recorded instead of binding a socket
/// (Twisted's `MemoryReactor.tcpServers`). Its listener is real, without a
/// socket: [`MemoryReactor::accept`] makes connections on it, under its
/// limits, and it stops as any other.
///
/// ```
/// use std::net::SocketAddr;
/// use reactor::protocols::Echo;
/// use reactor::testing::MemoryReactor;
///
/// let mut memory = MemoryReactor::new()?;
/// let addr: SocketAddr = "127.0.0.1:8000".parse().unwrap();
/// memory.listen_tcp(addr, || Echo)?;
/// let listened = memory.listens()[0];
/// assert_eq!((listened.addr, listened.tls), (addr, false));
/// assert_eq!(listened.handle.local_addr(), addr);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ListenRequest {
    /// The address asked for (port 0 stays 0: nothing is bound).
    pub addr: SocketAddr,
    /// The options it was asked with.
    pub options: ListenOptions,
    /// It was `listen_tls`: the connections it makes carry plaintext all
    /// the same (TLS is not simulated).
    pub tls: bool,
    /// The handle `listen_tcp` returned, for [`MemoryReactor::accept`].
    pub handle: ListenerHandle,
}

/// A connect a [`MemoryReactor`] recorded instead of opening a socket
/// (Twisted's `MemoryReactor.tcpClients`): its connection waits, connecting,
/// until the test completes it ([`MemoryReactor::complete_connect`]), fails
/// it ([`MemoryReactor::fail_connect`]), or its timeout passes on the
/// manual clock.
///
/// ```
/// use std::time::Duration;
/// use reactor::protocols::Echo;
/// use reactor::testing::MemoryReactor;
///
/// let mut memory = MemoryReactor::new()?;
/// let addr = "127.0.0.1:7".parse().unwrap();
/// let id = memory.connect_tcp(addr, || Echo, Duration::from_secs(5));
/// let asked = memory.connects()[0];
/// assert_eq!((asked.addr, asked.timeout, asked.id), (addr, Duration::from_secs(5), id));
/// assert!(!memory.is_connected(id), "still connecting");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ConnectRequest {
    /// Where it was asked to connect.
    pub addr: SocketAddr,
    /// The connect timeout it was given.
    pub timeout: Duration,
    /// It was `connect_tls` (the connection carries plaintext all the same).
    pub tls: bool,
    /// The id `connect_tcp` returned: the connection's once made.
    pub id: ConnectionId,
}

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

/// The id a connection gets when its slot could not be had (past 2^32
/// slots): it never names a live connection.
const DEAD_ID: ConnectionId = ConnectionId {
    key: u32::MAX,
    generation: 0,
};

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
    /// [`ListenOptions`] (limits, idle timeout, write cap), and
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
    /// let id = memory.connect_tcp("127.0.0.1:7".parse().unwrap(), || Hello, Duration::from_secs(5));
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
    /// let id = memory.connect_tcp("127.0.0.1:7".parse().unwrap(), factory, Duration::from_secs(5));
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

    /// The peer sends `data`: the protocol's `data_received` runs now (once
    /// per 64 KiB, as reads from a socket), unless its reading is paused;
    /// then the data waits until it resumes. False (and dropped) if the
    /// connection does not read: not made, closing or closed, or the peer
    /// closed already.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// assert!(memory.receive(id, b"ping"));
    /// assert_eq!(memory.take_written(id), b"ping");
    /// memory.close(id);
    /// assert!(!memory.receive(id, b"late"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn receive(&mut self, id: ConnectionId, data: &[u8]) -> bool {
        let taken = self.reactor.memory_receive(id, data);
        self.settle();
        taken
    }

    /// The peer closes its side (its FIN), after what it sent: a protocol
    /// that allows half-close hears `read_connection_lost`; any other
    /// connection closes with `Reason::PeerClosed` once the peer has read
    /// what is buffered for it. False if the connection does not read.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    /// use reactor::Reason;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// assert!(memory.close(id));
    /// assert_eq!(memory.close_reason(id), Some(&Reason::PeerClosed));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(&mut self, id: ConnectionId) -> bool {
        let taken = self.reactor.memory_peer_close(id);
        self.settle();
        taken
    }

    /// The peer resets the connection: it closes at once with a
    /// `ConnectionReset` error, whatever was buffered. False if it is
    /// closed already.
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// assert!(memory.reset(id));
    /// let why = memory.close_reason(id).unwrap();
    /// assert_eq!(why.error_kind(), Some(ErrorKind::ConnectionReset));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn reset(&mut self, id: ConnectionId) -> bool {
        let open = self
            .reactor
            .memory_conn(id)
            .is_some_and(|c| c.state != crate::tcp::ConnState::Closed);
        if open {
            let reset = io::Error::from(io::ErrorKind::ConnectionReset);
            self.reactor.queue_close(id, Reason::from(reset));
        }
        self.settle();
        open
    }

    /// Whether the peer reads what is written to it (it does at first).
    /// While it does not, writes wait in the connection's buffer: past the
    /// high watermark the protocol (and its registered producers) hear
    /// `pause_producing`; past the cap the connection is aborted, as on
    /// TCP. Reading again takes everything that waited, and producers
    /// resume. False if `id` names no open memory connection.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// memory.set_peer_reading(id, false);
    /// memory.receive(id, &[b'x'; 70_000]);
    /// assert_eq!(memory.buffered(id), 70_000);
    /// assert!(memory.is_write_buffer_full(id), "past the 64 KiB watermark");
    /// memory.set_peer_reading(id, true);
    /// assert_eq!(memory.take_written(id).len(), 70_000);
    /// assert!(!memory.is_write_buffer_full(id));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_peer_reading(&mut self, id: ConnectionId, reading: bool) -> bool {
        let done = self.reactor.memory_set_peer_reading(id, reading);
        self.settle();
        done
    }

    /// The peer, not reading otherwise, reads up to `max` bytes of what
    /// waits for it; returns how many it read. Below the low watermark,
    /// producers resume.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// memory.set_peer_reading(id, false);
    /// memory.receive(id, b"abcdef");
    /// assert_eq!(memory.peer_reads(id, 4), 4);
    /// assert_eq!(memory.written(id), b"abcd");
    /// assert_eq!(memory.buffered(id), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peer_reads(&mut self, id: ConnectionId, max: usize) -> usize {
        let n = self.reactor.memory_deliver(id, max);
        self.settle();
        n
    }

    /// Everything the peer of connection `id` has read so far, in order:
    /// what its protocol wrote and what other connections wrote to it
    /// (`write_to`); kept after it closes. Empty for an id that names no
    /// memory connection.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// memory.write_to(id, b"from elsewhere, ");
    /// memory.receive(id, b"echoed");
    /// assert_eq!(memory.written(id), b"from elsewhere, echoed");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn written(&mut self, id: ConnectionId) -> &[u8] {
        self.settle();
        self.reactor
            .memory_mut()
            .records
            .get(&id)
            .map_or(&[], |r| &r.received)
    }

    /// [`written`](MemoryReactor::written), emptied: what the peer read
    /// since the last `take_written`.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// memory.receive(id, b"one");
    /// assert_eq!(memory.take_written(id), b"one");
    /// memory.receive(id, b"two");
    /// assert_eq!(memory.take_written(id), b"two");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn take_written(&mut self, id: ConnectionId) -> Vec<u8> {
        self.settle();
        self.reactor
            .memory_mut()
            .records
            .get_mut(&id)
            .map_or_else(Vec::new, |r| std::mem::take(&mut r.received))
    }

    /// Whether connection `id` has closed (its `connection_lost` ran).
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// memory.lose_connection(id);
    /// assert!(memory.is_closed(id));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_closed(&mut self, id: ConnectionId) -> bool {
        self.close_reason(id).is_some()
    }

    /// Why connection `id` closed, as its `connection_lost` was told;
    /// `None` while it is open (or for an id that names no memory
    /// connection).
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    /// use reactor::Reason;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// assert_eq!(memory.close_reason(id), None);
    /// memory.abort_connection(id);
    /// assert_eq!(memory.close_reason(id), Some(&Reason::Aborted));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close_reason(&mut self, id: ConnectionId) -> Option<&Reason> {
        self.settle();
        self.reactor
            .memory_mut()
            .records
            .get(&id)
            .and_then(|r| r.closed.as_ref())
    }

    /// Whether our side of connection `id` was shut and the peer got its
    /// FIN (`lose_write_connection`, once what was buffered was read).
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// memory.lose_write_connection(id);
    /// assert!(memory.is_write_shut(id));
    /// assert!(!memory.is_closed(id), "it still reads");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_write_shut(&mut self, id: ConnectionId) -> bool {
        self.settle();
        self.reactor
            .memory_mut()
            .records
            .get(&id)
            .is_some_and(|r| r.write_shut)
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

    /// The listens asked for, in order, stopped ones included.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// assert!(memory.listens().is_empty());
    /// let handle = memory.listen_tcp("127.0.0.1:7".parse().unwrap(), || Echo)?;
    /// assert_eq!(memory.listens().len(), 1);
    /// assert!(handle.stop(&mut memory));
    /// assert_eq!(memory.listens().len(), 1, "still recorded");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listens(&self) -> &[ListenRequest] {
        self.reactor
            .memory
            .as_ref()
            .map_or(&[], |m| m.listens.as_slice())
    }

    /// The connects asked for, in order, whatever became of them.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    /// use reactor::Reason;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect_tcp("127.0.0.1:7".parse().unwrap(), || Echo, Duration::from_secs(3));
    /// assert_eq!(memory.connects()[0].id, id);
    /// memory.advance(Duration::from_secs(3));
    /// assert_eq!(memory.close_reason(id), Some(&Reason::TimedOut));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connects(&self) -> &[ConnectRequest] {
        self.reactor
            .memory
            .as_ref()
            .map_or(&[], |m| m.connects.as_slice())
    }

    /// Whether [`Reactor::stop`] was called (from a callback, or by the
    /// test). The stop is only recorded: connections stay open and timers
    /// keep running.
    ///
    /// ```
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// memory.call_later(std::time::Duration::ZERO, |r| r.stop());
    /// assert!(!memory.stop_requested());
    /// memory.advance(std::time::Duration::ZERO);
    /// assert!(memory.stop_requested());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop_requested(&self) -> bool {
        self.reactor
            .memory
            .as_ref()
            .is_some_and(|m| m.stop_requested)
    }

    /// What follows the test's call as it follows a callback on the real
    /// reactor: writes flushed, producers told, closes applied; then the
    /// connections whose reading resumed read what waited for them, as the
    /// leftover queue would serve them.
    fn settle(&mut self) {
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
