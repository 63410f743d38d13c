//! Outgoing connections: starting a connect, and finishing or failing it.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use log::{debug, error};
use mio::net::TcpStream;
use mio::Interest;

use super::connection::{ClientOrigin, Conn, Origin};
use super::lent::TlsHost;
use super::peer::Peer;
use super::state::ConnState;
use super::stream::Stream;
use crate::protocol::ClientFactory;
use crate::reactor::{key_u32, Reactor, Readiness, Slot, SlotId, Source, TimerAction};
use crate::reason::Reason;
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
    /// Connects to `addr` without blocking. The factory's `started_connecting`
    /// runs now; then either its protocol's `connection_made`, or
    /// `client_connection_failed` with a reason saying refused, unreachable,
    /// [`Reason::TimedOut`] (after `timeout`), or [`Reason::ReactorStopped`]
    /// (the reactor is stopping: no new connection is made then). Never
    /// calls back before returning.
    ///
    /// The returned id names the connection once made; `lose_connection` on
    /// it before then cancels the attempt.
    pub fn connect_tcp(
        &mut self,
        addr: SocketAddr,
        factory: impl ClientFactory,
        timeout: Duration,
    ) -> ConnectionId {
        self.connect(addr, Box::new(factory), timeout, TlsHost::plain())
    }

    /// Starts a connect whose connection speaks TLS if `tls` says so.
    pub(crate) fn connect(
        &mut self,
        addr: SocketAddr,
        factory: Box<dyn ClientFactory>,
        timeout: Duration,
        tls: TlsHost,
    ) -> ConnectionId {
        let Some(factory) = self.start_connecting(factory, &addr) else {
            return DEAD_ID;
        };
        if self.memory.is_some() {
            // A reactor in memory records the connect; its test completes it.
            #[cfg(feature = "tls")]
            let tls = tls.is_tls();
            #[cfg(not(feature = "tls"))]
            let tls = false;
            return self.memory_connect(addr, factory, timeout, tls);
        }
        let stream = TcpStream::connect(addr).map(Stream::Tcp);
        self.add_connecting(stream, Peer::Ip(addr), factory, timeout, tls)
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

    pub(crate) fn finish_connect(&mut self, id: ConnectionId, readiness: Readiness) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let outcome = match conn.stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match conn.stream.check_connected() {
                Ok(()) => Ok(()),
                // Only an event that said error or hang-up turns "not
                // connected yet" into a refusal; anything else (a spurious
                // wake-up, a leftover pass) means still connecting.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    if !(readiness.error || readiness.read_closed) {
                        return;
                    }
                    Err(io::Error::from(io::ErrorKind::ConnectionRefused))
                }
                Err(e) => Err(e),
            },
        };
        if let Err(e) = outcome {
            debug!("connect to {} failed: {e}", conn.peer);
            self.queue_close(id, Reason::from(e));
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
