//! Outgoing connections: starting a connect (to an address, or a dial by
//! name or to several addresses: `happy.rs`), and finishing or failing it.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use log::{debug, error};
use mio::net::TcpStream;
use mio::Interest;

use super::connection::{ClientOrigin, Conn, Origin};
use super::happy::{Attempts, Dial};
use super::lent::TlsHost;
use super::peer::Peer;
use super::state::ConnState;
use super::stream::Stream;
use crate::protocol::ClientFactory;
use crate::reactor::{key_u32, Reactor, Readiness, Slot, SlotId, Source, TimerAction};
use crate::reason::Reason;
use crate::resolve::{Destination, Target};
use crate::transport::ConnectionId;

/// The id [`Reactor::connect_tcp`] returns when the attempt failed before a
/// socket existed; it never names a live connection.
pub(crate) const DEAD_ID: ConnectionId = ConnectionId {
    key: u32::MAX,
    generation: 0,
};

/// A connect that failed before it had a socket (or while the reactor
/// stops), waiting to be reported to its factory at the next turn.
pub(crate) struct FailedConnect {
    pub(crate) factory: Box<dyn ClientFactory>,
    pub(crate) reason: Reason,
}

impl Reactor {
    /// Connects to `to` without blocking: an address, a host name and port
    /// (`"example.com:80"`, `("example.com", 80)`), or several addresses
    /// (see [`Destination`]). The factory's `started_connecting` runs now;
    /// then either its protocol's `connection_made`, or, once,
    /// `client_connection_failed` with a reason saying refused,
    /// unreachable, [`Reason::Unresolved`] (the name gave no address),
    /// [`Reason::TimedOut`] (after `timeout`, which covers the name's
    /// lookup and every attempt), or [`Reason::ReactorStopped`] (the
    /// reactor is stopping: no new connection is made then). Never calls
    /// back before returning.
    ///
    /// A name is looked up on the reactor's resolver threads, never on the
    /// loop ([`set_resolver`](Reactor::set_resolver)); an IP literal is not
    /// looked up at all. Several addresses (a name's, or a list) are tried
    /// by Happy Eyeballs (RFC 8305, as Twisted's `HostnameEndpoint`):
    /// families interleaved, the first address's first; a new attempt every
    /// [`CONNECTION_ATTEMPT_DELAY`](crate::CONNECTION_ATTEMPT_DELAY), or as
    /// soon as one fails; the first to connect is the connection, the
    /// others are aborted unseen; if all fail, the factory hears the last
    /// one's error.
    ///
    /// The returned id names the connection once made (whichever address
    /// won); `lose_connection` on it before then cancels the attempt, and
    /// what is written to it before then is sent first. Until then its
    /// [`peer_addr`](Reactor::peer_addr) is a placeholder for a name or a
    /// list (`0.0.0.0` and the port).
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::io::Read;
    /// use std::net::TcpListener;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use reactor::{client_factory, Protocol, Reactor, Reason, Transport};
    ///
    /// struct Hello(Rc<Cell<bool>>);
    /// impl Protocol for Hello {
    ///     fn connection_made(&mut self, t: &mut dyn Transport) {
    ///         self.0.set(true);
    ///         t.write(b"hello");
    ///         t.lose_connection();
    ///         if let Some(reactor) = t.reactor() {
    ///             reactor.stop();
    ///         }
    ///     }
    ///     fn data_received(&mut self, _: &mut dyn Transport, _: &[u8]) {}
    /// }
    ///
    /// let server = TcpListener::bind("127.0.0.1:0")?;
    /// let port = server.local_addr()?.port();
    /// let made = Rc::new(Cell::new(false));
    /// let mut reactor = Reactor::new()?;
    /// let made_in = made.clone();
    /// let factory = client_factory(
    ///     move || Hello(made_in.clone()),
    ///     |r: &mut Reactor, why: &Reason| {
    ///         eprintln!("cannot connect: {why}");
    ///         r.stop();
    ///     },
    /// );
    /// // A name, looked up off the loop (or an address: `server.local_addr()?`,
    /// // "127.0.0.1:PORT", a list of addresses).
    /// reactor.connect_tcp(("localhost", port), factory, Duration::from_secs(5));
    /// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case
    /// reactor.run()?;
    /// if made.get() {
    ///     let mut got = String::new();
    ///     server.accept()?.0.read_to_string(&mut got)?;
    ///     assert_eq!(got, "hello");
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_tcp(
        &mut self,
        to: impl Into<Destination>,
        factory: impl ClientFactory,
        timeout: Duration,
    ) -> ConnectionId {
        self.connect(to.into(), Box::new(factory), timeout, TlsHost::plain())
    }

    /// Starts a connect whose connection speaks TLS if `tls` says so.
    pub(crate) fn connect(
        &mut self,
        to: Destination,
        factory: Box<dyn ClientFactory>,
        timeout: Duration,
        tls: TlsHost,
    ) -> ConnectionId {
        let Some(factory) = self.start_connecting(factory, &to) else {
            return DEAD_ID;
        };
        let port = to.port();
        let dial = match to.0 {
            Target::Addrs(addrs) if addrs.is_empty() => {
                debug!("connect refused: no address to connect to");
                let why = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
                self.fail_connect(factory, Reason::from(why));
                return DEAD_ID;
            }
            Target::Malformed { text, why } => {
                debug!("connect to {text:?} refused: {why}");
                let why = format!("not HOST:PORT ({why})");
                self.fail_connect(factory, Reason::Unresolved { host: text, why });
                return DEAD_ID;
            }
            _ if self.memory.is_some() => {
                // A reactor in memory records the connect; its test
                // completes it. Nothing is looked up: a list is recorded as
                // its first address, a name as the unspecified address.
                let addr = match &to.0 {
                    Target::Addrs(addrs) => addrs[0],
                    _ => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
                };
                #[cfg(feature = "tls")]
                let tls = tls.is_tls();
                #[cfg(not(feature = "tls"))]
                let tls = false;
                return self.memory_connect(addr, factory, timeout, tls);
            }
            Target::Addrs(addrs) if addrs.len() == 1 => {
                let stream = TcpStream::connect(addrs[0]).map(Stream::Tcp);
                return self.add_connecting(stream, Peer::Ip(addrs[0]), factory, timeout, tls);
            }
            Target::Addrs(addrs) => Dial::Attempting(Attempts::new(addrs)),
            Target::Host { host, port } => Dial::Resolving { host, port },
        };
        match self.dial(dial, port, factory, timeout, tls) {
            Ok(id) => id,
            Err((factory, e)) => {
                debug!("connect failed at once: {e}");
                self.fail_connect(factory, Reason::from(e));
                DEAD_ID
            }
        }
    }

    /// Runs a client factory's hooks for a connect to `target` about to
    /// start. `None` if the connect must not start (a hook panicked, or the
    /// reactor is stopping): the factory hears why at the next turn.
    pub(crate) fn start_connecting(
        &mut self,
        mut factory: Box<dyn ClientFactory>,
        target: &dyn fmt::Display,
    ) -> Option<Box<dyn ClientFactory>> {
        let started = crate::panic::catch(|| {
            factory.start_factory();
            factory.started_connecting(self);
        });
        if let Err(why) = started {
            error!("connecting to {target}: a client factory hook panicked: {why}");
            self.fail_connect(factory, Reason::Panicked(why));
            return None;
        }
        if self.is_stopping() {
            debug!("connect to {target} refused: the reactor is stopping");
            self.fail_connect(factory, Reason::ReactorStopped);
            return None;
        }
        Some(factory)
    }

    /// Registers `stream`, whose connect to `peer` is under way (or failed
    /// at once), as a connection of `factory`'s, bounded by `timeout`.
    pub(crate) fn add_connecting(
        &mut self,
        stream: io::Result<Stream>,
        peer: Peer,
        factory: Box<dyn ClientFactory>,
        timeout: Duration,
        tls: TlsHost,
    ) -> ConnectionId {
        let stream = stream.and_then(|mut stream| {
            let generation = self.next_generation();
            let id = SlotId {
                key: key_u32(self.slots.vacant_key())?,
                generation,
            };
            self.poll.registry().register(
                &mut stream,
                id.token(),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok((stream, id))
        });
        match stream {
            Ok((stream, id)) => {
                let conn_id = ConnectionId::from(id);
                let timer = self.schedule(timeout, TimerAction::ConnectTimeout(conn_id));
                let origin = Origin::Client(Box::new(ClientOrigin {
                    factory,
                    connect_timer: Some(timer),
                    dial: None,
                }));
                let mut conn = Conn::new(stream, peer, None, ConnState::Connecting, origin);
                conn.tls = tls;
                #[cfg(feature = "tls")]
                if conn.tls.is_tls() {
                    super::tls::no_delay(&conn.stream, &conn.peer);
                }
                let key = self.slots.insert(Slot {
                    generation: id.generation,
                    queued: false,
                    source: Source::Conn(conn),
                });
                debug_assert_eq!(key, id.key as usize, "vacant_key names the next insert");
                conn_id
            }
            Err(e) => {
                debug!("connect to {peer} failed at once: {e}");
                self.fail_connect(factory, Reason::from(e));
                DEAD_ID
            }
        }
    }

    /// A connect that fails before it starts (its arguments were invalid):
    /// the factory starts, then hears `reason` at the next turn.
    pub(crate) fn connect_failing(
        &mut self,
        mut factory: Box<dyn ClientFactory>,
        reason: Reason,
    ) -> ConnectionId {
        let started = crate::panic::catch(|| {
            factory.start_factory();
            factory.started_connecting(self);
        });
        if let Err(why) = started {
            error!("a client factory hook panicked: {why}");
        }
        debug!("connect refused: {reason}");
        self.fail_connect(factory, reason);
        DEAD_ID
    }

    /// Queues a failure report for the next turn, so `connect_tcp` never
    /// calls back before it returns, and a factory that reconnects from
    /// `client_connection_failed` retries once per turn, not in a loop.
    fn fail_connect(&mut self, factory: Box<dyn ClientFactory>, reason: Reason) {
        self.failed_connects.push(FailedConnect { factory, reason });
    }

    /// Reports the connects that failed before having a socket.
    pub(crate) fn report_failed_connects(&mut self) {
        for failed in std::mem::take(&mut self.failed_connects) {
            self.end_client_factory(failed.factory, false, &failed.reason);
            self.apply_closes();
        }
    }

    /// A connect under way had an event: it completed, failed, or is
    /// still under way. An attempt of a dial that completes wins the dial
    /// (`tcp/happy.rs`).
    pub(crate) fn finish_connect(&mut self, id: ConnectionId, readiness: Readiness) {
        if self.is_dialing(id) {
            // Its socket is a placeholder: only an attempt completes a dial.
            return;
        }
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let Some(outcome) = connect_outcome(&conn.stream, readiness) else {
            return;
        };
        if let Err(e) = outcome {
            debug!("connect to {} failed: {e}", conn.peer);
            self.queue_close(id, Reason::from(e));
            return;
        }
        if let Origin::Attempt(dial) = conn.origin {
            self.attempt_won(id, dial, readiness);
            return;
        }
        let peer = conn.peer.address();
        let Origin::Client(client) = &mut conn.origin else {
            return;
        };
        let timer = client.connect_timer.take();
        let factory = &mut client.factory;
        let protocol = match crate::panic::catch(|| factory.build_protocol_for(&peer)) {
            Ok(protocol) => protocol,
            Err(why) => {
                // Not made after all: the factory hears of a failed attempt.
                error!("{peer}: build_protocol panicked: {why}; aborting the connection");
                self.queue_close(id, Reason::Panicked(why));
                return;
            }
        };
        conn.protocol = Some(protocol);
        conn.state = ConnState::OPEN;
        if let Some(timer) = timer {
            self.cancel(timer);
        }
        // Bytes written before the connect completed go first, so the
        // protocol's view of its buffer in `connection_made` is current.
        self.flush(id);
        debug!("connected {id} to {peer}");
        self.with_protocol(id, |p, t| p.connection_made(t));
        self.after_callback();
        // A buffer still over its watermark is told now that there is a
        // protocol to tell.
        self.flow_changed.push(id);
        if readiness.readable || readiness.must_drain() {
            self.read(id, readiness);
        }
    }

    pub(crate) fn connect_timed_out(&mut self, id: ConnectionId) {
        let Some(conn) = self.conn_mut(id) else {
            return self.memory_connect_timed_out(id);
        };
        if conn.state != ConnState::Connecting {
            return;
        }
        if let Origin::Client(client) = &mut conn.origin {
            client.connect_timer = None;
        }
        self.queue_close(id, Reason::TimedOut);
    }
}

/// What a connect under way came to, from an event on its socket: `None`
/// while it is still under way.
fn connect_outcome(stream: &Stream, readiness: Readiness) -> Option<io::Result<()>> {
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => Some(Err(e)),
        Ok(None) => match stream.check_connected() {
            Ok(()) => Some(Ok(())),
            // Only an event that said error or hang-up turns "not
            // connected yet" into a refusal; anything else (a spurious
            // wake-up, a leftover pass) means still connecting.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                if !(readiness.error || readiness.read_closed) {
                    return None;
                }
                Some(Err(io::Error::from(io::ErrorKind::ConnectionRefused)))
            }
            Err(e) => Some(Err(e)),
        },
    }
}
