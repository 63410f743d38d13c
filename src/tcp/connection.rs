//! A connection: its state, its read path, and how it closes.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use super::admission::Admission;
use super::flow::{Producers, WriteLimits};
use super::happy::Dial;
use super::lent::TlsHost;
use super::peer::Peer;
use super::state::{ConnState, Deadline, Ending, Flow, ReadPause, ReadSide, WriteSide};
use super::stream::Stream;
use super::transport::ConnTransport;
use crate::address::Address;
use crate::buffer::WriteBuffer;
use crate::protocol::{ClientFactory, Protocol};
use crate::reactor::{Reactor, Readiness, Slot, Source, LEFTOVER_READ_SIZE, MAX_READS_PER_EVENT};
use crate::reason::Reason;
use crate::timer::TimerId;
use crate::transport::{ConnectionId, Transport};
use log::{debug, error};

pub(crate) struct Conn {
    pub(crate) stream: Stream,
    pub(crate) peer: Peer,
    /// `None` while one of its own callbacks runs (it is taken out so the
    /// callback can have `&mut Reactor`), and before a client connection is
    /// made. A connection is *made* exactly when it has a protocol outside
    /// its callbacks, so `connection_lost` is owed exactly then.
    pub(crate) protocol: Option<Box<dyn Protocol>>,
    pub(crate) state: ConnState,
    pub(crate) out: WriteBuffer,
    /// WRITABLE interest is registered: while connecting, and while `out`
    /// is non-empty.
    pub(crate) want_write: bool,
    pub(crate) read_pause: ReadPause,
    pub(crate) flow: Flow,
    pub(crate) limits: WriteLimits,
    /// Connections registered as producers for this one
    /// ([`Reactor::register_producer`]); ids of closed ones are skipped.
    pub(crate) producers: Producers,
    /// The idle timeout and its pending check, if one is set.
    pub(crate) idle: Option<(Duration, TimerId)>,
    /// The last turn in which a read returned data or a write made progress.
    pub(crate) last_activity: Instant,
    pub(crate) deadline: Deadline,
    pub(crate) origin: Origin,
    /// Its TLS layer, if it speaks TLS.
    pub(crate) tls: TlsHost,
}

/// Where a connection came from, and what it owes there when it ends.
pub(crate) enum Origin {
    /// Accepted by a listener: part of its counts until the descriptor
    /// closes (lingering included).
    Accepted(Admission),
    /// Made by `connect_tcp` or `connect_unix` (boxed: accepted
    /// connections, the many, stay small).
    Client(Box<ClientOrigin>),
    /// One of a dial's connection attempts (Happy Eyeballs, `happy.rs`),
    /// for the dial with this id: it reports to the dial, never to a
    /// factory, and is never made itself (the winner's socket moves into
    /// the dial's slot).
    Attempt(ConnectionId),
    /// The process's stdin and stdout ([`Reactor::open_stdio`]): owes nobody.
    Stdio,
}

/// What a client connection owes its factory.
pub(crate) struct ClientOrigin {
    /// Hears how the connection ended.
    pub(crate) factory: Box<dyn ClientFactory>,
    /// Bounds the connect while it is under way.
    pub(crate) connect_timer: Option<TimerId>,
    /// While a connect by name or to several addresses looks for its
    /// socket: where it stands (`happy.rs`).
    pub(crate) dial: Option<Dial>,
}

impl Conn {
    pub(crate) fn new(
        stream: impl Into<Stream>,
        peer: Peer,
        protocol: Option<Box<dyn Protocol>>,
        state: ConnState,
        origin: Origin,
    ) -> Self {
        Conn {
            stream: stream.into(),
            peer,
            protocol,
            state,
            out: WriteBuffer::default(),
            want_write: state == ConnState::Connecting,
            read_pause: ReadPause::default(),
            flow: Flow::default(),
            limits: WriteLimits::default(),
            producers: Producers::default(),
            idle: None,
            last_activity: Instant::now(),
            deadline: Deadline::None,
            origin,
            tls: TlsHost::plain(),
        }
    }
}

impl Reactor {
    pub(crate) fn conn_ready(&mut self, id: ConnectionId, readiness: Readiness) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.state == ConnState::Connecting {
            if matches!(conn.stream, Stream::Stdio(_)) {
                // Made by its own timer, which reads what came meanwhile.
                return;
            }
            if readiness.writable || readiness.error || readiness.read_closed {
                self.finish_connect(id, readiness);
            }
            return;
        }
        if conn.state == ConnState::AwaitingProxyHeader {
            self.proxy_header_ready(id, readiness);
            return;
        }
        if readiness.writable && conn.want_write {
            self.flush(id);
        }
        if readiness.readable || readiness.must_drain() {
            self.read(id, readiness);
        }
        if readiness.error {
            if let Some(conn) = self.conn(id) {
                if let Ok(Some(e)) | Err(e) = conn.stream.take_error() {
                    self.queue_close(id, Reason::from(e));
                }
            }
        }
    }

    /// Reads until the socket is drained, the fairness cap is hit, or the
    /// turn's time budget is spent.
    ///
    /// Edge-triggered: a read shorter than the buffer emptied the socket at
    /// that moment and new data raises a new edge, so it counts as drained,
    /// unless `must_drain` (the event carried FIN or an error, or this is a
    /// leftover whose edge is long gone), when a further read must follow.
    ///
    /// A leftover (a source that already had its share this round) reads in
    /// slices of [`LEFTOVER_READ_SIZE`]: under load, the work one callback
    /// is handed, and so what every other source waits behind, stays small.
    pub(crate) fn read(&mut self, id: ConnectionId, readiness: Readiness) {
        let must_drain = readiness.must_drain();
        let mut buf = std::mem::take(&mut self.read_buf);
        let slice = if readiness.leftover {
            LEFTOVER_READ_SIZE.min(buf.len())
        } else {
            buf.len()
        };
        let now = self.turn_now;
        let mut reads = 0;
        while let Some(conn) = self.conn_mut(id) {
            if !conn.state.reads() || conn.read_pause.any() {
                break;
            }
            match (&conn.stream).read(&mut buf[..slice]) {
                Ok(0) => {
                    self.peer_finished(id);
                    break;
                }
                Ok(n) => {
                    conn.last_activity = now;
                    let data = &buf[..n];
                    self.with_protocol(id, |p, t| p.data_received(t, data));
                    // Before the next read: what the callback wrote goes out
                    // in one write, and the producers it filled are paused
                    // (the default pause_producing stops reading, which
                    // bounds the buffer at one read past the high watermark).
                    self.after_callback();
                    reads += 1;
                    let full = n == slice;
                    if !full && !must_drain {
                        break;
                    }
                    if reads >= MAX_READS_PER_EVENT || (full && self.budget.spent_now()) {
                        self.defer(id.into(), Readiness::LEFTOVER);
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("read from {id} failed: {e}");
                    self.queue_close(id, Reason::from(e));
                    break;
                }
            }
        }
        self.read_buf = buf;
    }

    /// The peer's FIN: a half-closing protocol is told and may go on
    /// writing; otherwise the connection ends, once what is buffered for the
    /// peer is flushed (`printf … | nc -N` gets its whole answer; Twisted
    /// drops it).
    fn peer_finished(&mut self, id: ConnectionId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let ConnState::Open { write, .. } = conn.state else {
            return;
        };
        let half_close = write == WriteSide::Open && self.allows_half_close(id);
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.state == ConnState::Closed {
            return; // allows_half_close panicked
        }
        if half_close {
            conn.state = ConnState::Open {
                read: ReadSide::Finished,
                write,
            };
            self.with_protocol(id, |p, t| p.read_connection_lost(t));
        } else if conn.out.is_empty() {
            self.queue_close(id, Reason::PeerClosed);
        } else {
            conn.state = ConnState::Flushing(Ending::Peer);
        }
    }

    /// Asks the protocol whether it handles half-close, under the panic
    /// guard like every call into user code.
    fn allows_half_close(&mut self, id: ConnectionId) -> bool {
        // The protocol's answer (a TLS layer passes its protocol's on).
        let Some(Some(protocol)) = self.conn(id).map(|c| c.protocol.as_ref()) else {
            return false;
        };
        match crate::panic::catch(|| protocol.allows_half_close()) {
            Ok(allows) => allows,
            Err(why) => {
                let peer = self
                    .conn(id)
                    .map(|c| c.peer.to_string())
                    .unwrap_or_default();
                error!("{peer}: allows_half_close of connection {id} panicked: {why}; aborting it");
                self.queue_close(id, Reason::Panicked(why));
                false
            }
        }
    }

    /// Runs `f` with connection `id`'s protocol taken out of its slot, so `f`
    /// may use the whole reactor. What it wrote is flushed by
    /// [`after_callback`](Self::after_callback). Returns false if there is no
    /// such protocol (closed, not yet made, or already inside one of its
    /// callbacks).
    pub(crate) fn with_protocol(
        &mut self,
        id: ConnectionId,
        f: impl FnOnce(&mut dyn Protocol, &mut dyn Transport),
    ) -> bool {
        let Some(peer) = self.conn(id).map(|c| c.peer.clone()) else {
            return self.memory_with_protocol(id, f);
        };
        let Some(mut lent) = self.lend(id) else {
            return false;
        };
        // A TLS layer writes ciphertext: straight to the socket.
        let raw = lent.is_layer();
        let outcome = crate::panic::catch(|| {
            f(
                lent.callee(),
                &mut ConnTransport::with_route(self, id, &peer, raw),
            )
        });
        // Closes are applied only after callbacks return, so the slot is still ours.
        self.give_back(id, lent);
        if let Err(why) = outcome {
            error!("{peer}: protocol of connection {id} panicked: {why}; aborting it");
            self.queue_close(id, Reason::Panicked(why));
        }
        true
    }

    /// What follows every callback (the caller runs it, since callbacks
    /// also run inside this very step): producers are told about buffers
    /// the callback filled, then its writes are flushed, one `write` per
    /// connection, then producers are told about buffers the flush drained.
    /// Telling before flushing means a producer that saw its buffer full
    /// always gets a `resume_producing` after its `pause_producing`.
    ///
    /// A producer resumed here writes again, so this goes on until nothing
    /// is left to flush (the socket takes no more, or nobody is resumed),
    /// or until the turn's time budget is spent: then the producers still
    /// owed a resume wait in the leftover queue, and are resumed when it
    /// serves them, so one fast producer cannot hold the loop for a whole
    /// stream.
    pub(crate) fn after_callback(&mut self) {
        loop {
            self.apply_flow();
            #[cfg(feature = "tls")]
            self.flush_tls_layers();
            if !self.stage.is_pending() && self.dirty.is_empty() {
                break;
            }
            self.flush_writes();
            if !self.flow_changed.is_empty() && self.budget.spent_now() {
                for i in 0..self.flow_changed.len() {
                    let id = self.flow_changed[i];
                    self.defer(id.into(), Readiness::LEFTOVER);
                }
                break;
            }
        }
    }

    pub(crate) fn protocol_timer(&mut self, id: ConnectionId, tag: u64) {
        self.with_protocol(id, |p, t| p.timer_fired(t, tag));
    }

    /// Closes connection `id` at once, dropping its buffer and resetting the peer.
    pub fn abort_connection(&mut self, id: ConnectionId) {
        self.queue_close(id, Reason::Aborted);
    }

    /// Sets TCP_NODELAY on connection `id` (on a UNIX connection, which has
    /// no Nagle algorithm, does nothing).
    pub fn set_nodelay(&mut self, id: ConnectionId, nodelay: bool) -> io::Result<()> {
        match self.conn(id) {
            Some(conn) => conn.stream.set_nodelay(nodelay),
            None if self.memory_conn(id).is_some() => Ok(()),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Whether `id` names a connection that is open (made, and not closed or closing).
    pub fn is_connected(&self, id: ConnectionId) -> bool {
        match self.conn(id) {
            Some(conn) => conn.state.is_open(),
            None => self.memory_conn(id).is_some_and(|m| m.state.is_open()),
        }
    }

    /// The peer address of connection `id`, while it exists.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::protocols::{Discard, Echo};
    /// use reactor::{Reactor, UnixAddress};
    ///
    /// // An abstract name: no file to create or clean up.
    /// let name = format!("@reactor-doc-peer-addr-{}", std::process::id());
    /// let mut reactor = Reactor::new()?;
    /// reactor.listen_unix(&name, || Echo)?;
    /// let id = reactor.connect_unix(&name, || Discard, Duration::from_secs(5));
    /// let peer = reactor.peer_addr(id).expect("the connection exists");
    /// assert_eq!(peer.unix(), Some(&UnixAddress::new(&name)));
    /// reactor.abort_connection(id);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peer_addr(&self, id: ConnectionId) -> Option<Address> {
        match self.conn(id) {
            Some(conn) => Some(conn.peer.address()),
            None => self.memory_conn(id).map(|m| Address::Ip(m.peer)),
        }
    }

    /// The credentials of the process at the other end of UNIX connection
    /// `id` (see [`Transport::peer_credentials`]); `None` for a TCP one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::protocols::{Discard, Echo};
    /// use reactor::Reactor;
    ///
    /// // An abstract name: no file to create or clean up.
    /// let name = format!("@reactor-doc-peer-credentials-{}", std::process::id());
    /// let mut reactor = Reactor::new()?;
    /// reactor.listen_unix(&name, || Echo)?;
    /// let id = reactor.connect_unix(&name, || Discard, Duration::from_secs(5));
    /// // The server's, known once the connect returns: this very process.
    /// let server = reactor.peer_credentials(id).expect("a UNIX connection");
    /// assert_eq!(server.pid, Some(std::process::id()));
    /// reactor.abort_connection(id);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peer_credentials(&self, id: ConnectionId) -> Option<crate::PeerCredentials> {
        self.conn(id).and_then(|c| c.peer.credentials())
    }

    /// Number of connections, including attempts under way.
    pub fn connection_count(&self) -> usize {
        self.slots
            .iter()
            .filter(|(_, s)| matches!(s.source, Source::Conn(_) | Source::Memory(_)))
            .count()
    }

    pub(crate) fn conn(&self, id: ConnectionId) -> Option<&Conn> {
        match self.slots.get(id.key as usize) {
            Some(Slot {
                generation,
                source: Source::Conn(conn),
                ..
            }) if *generation == id.generation => Some(conn),
            _ => None,
        }
    }

    pub(crate) fn conn_mut(&mut self, id: ConnectionId) -> Option<&mut Conn> {
        match self.slot_mut(id.into()) {
            Some(Source::Conn(conn)) => Some(conn),
            _ => None,
        }
    }

    /// The connection and the registry, borrowed together.
    pub(crate) fn conn_and_registry(
        &mut self,
        id: ConnectionId,
    ) -> Option<(&mut Conn, &mio::Registry)> {
        match self.slots.get_mut(id.key as usize) {
            Some(Slot {
                generation,
                source: Source::Conn(conn),
                ..
            }) if *generation == id.generation => Some((conn, self.poll.registry())),
            _ => None,
        }
    }
}
