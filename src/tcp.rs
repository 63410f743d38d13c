//! TCP: listening, connecting, and each connection's read and write paths.

use std::collections::HashMap;
use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, error, warn};
use mio::net::{TcpListener, TcpStream};
use mio::Interest;
use socket2::{Domain, SockRef, Socket, Type};

use crate::buffer::WriteBuffer;
use crate::protocol::{ClientFactory, Factory, Protocol, Timeout};
use crate::reactor::{
    interest, Reactor, Readiness, Slot, SlotId, Source, TimerAction, MAX_ACCEPTS_PER_EVENT,
    MAX_READS_PER_EVENT,
};
use crate::reason::Reason;
use crate::rules::{
    concerns_only_this_connection, ACCEPT_RETRY, DEADLINE_GRACE, DEFAULT_HIGH_WATERMARK,
    DEFAULT_LOW_WATERMARK, LINGER_DISCARD_LIMIT, LINGER_TIMEOUT, MAX_IOVECS,
};
use crate::timer::TimerId;
use crate::transport::{ConnectionId, Transport};

/// The id [`Reactor::connect_tcp`] returns when the attempt failed before a
/// socket existed; it never names a live connection.
const DEAD_ID: ConnectionId = ConnectionId {
    key: u32::MAX,
    generation: 0,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// A non-blocking connect is under way; no protocol yet.
    Connecting,
    Open,
    /// `lose_connection` was called: not reading, flushing, then closing.
    Closing,
    /// The peer sent its FIN while replies were still buffered: flushing
    /// them, then closing with `PeerClosed`.
    PeerClosing,
    /// A close is queued and will be applied after the current callback.
    Closed,
}

pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) peer: SocketAddr,
    /// `None` only while one of its own callbacks runs (it is taken out so the
    /// callback can have `&mut Reactor`), and before a client connection is made.
    pub(crate) protocol: Option<Box<dyn Protocol>>,
    pub(crate) client_factory: Option<Box<dyn ClientFactory>>,
    pub(crate) connect_timer: Option<TimerId>,
    pub(crate) out: WriteBuffer,
    pub(crate) state: ConnState,
    /// WRITABLE interest is registered (exactly while `out` is non-empty).
    pub(crate) want_write: bool,
    /// `connection_made` was called, so `connection_lost` is owed.
    pub(crate) made: bool,
    pub(crate) flow: Flow,
    /// Buffer sizes at which producing pauses (`high`) and resumes (`low`).
    pub(crate) low_water: usize,
    pub(crate) high_water: usize,
    /// The protocol asked not to be given data for now.
    pub(crate) reading_paused: bool,
    /// The peer's FIN arrived and the protocol, opted into half-close, was
    /// told (`read_connection_lost`): nothing more is read, writes go on.
    pub(crate) read_closed: bool,
    /// Our writing side: open, to be shut once the buffer drains
    /// (`lose_write_connection`), or shut.
    pub(crate) write_side: WriteSide,
    /// The idle timeout and its pending check, if one is set.
    pub(crate) idle: Option<(Duration, TimerId)>,
    /// The last turn in which a read returned data or a write made progress.
    pub(crate) last_activity: Instant,
    /// The whole-connection deadline's timer, if one is set.
    pub(crate) deadline: Option<TimerId>,
    /// `timeout_connection(Deadline)` ran for the current deadline; when
    /// its grace timer fires the connection is aborted.
    pub(crate) deadline_told: bool,
    /// The listener that accepted it, whose counts it is part of.
    pub(crate) listener: Option<SlotId>,
    /// Closing because the reactor stops: once flushed it ends with
    /// `ReactorStopped`, lingering as a `lose_connection` does.
    pub(crate) stop_close: bool,
    /// It still had bytes buffered when the stop came, so its close waits
    /// for the peer's FIN (within the grace period) even if the peer is
    /// quiet.
    pub(crate) flushed_on_stop: bool,
}

/// Whether we may still write to a connection (see `lose_write_connection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteSide {
    Open,
    ShutWhenFlushed,
    Shut,
}

/// Where a connection stands with its outgoing buffer's watermarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Below the high watermark (or back below the low one).
    Flowing,
    /// Crossed the high watermark during a callback; `pause_producing` runs
    /// once the callback returns.
    PausePending,
    /// `pause_producing` ran; `resume_producing` runs when the buffer drains
    /// below the low watermark.
    Paused,
}

impl Conn {
    fn new(
        stream: TcpStream,
        peer: SocketAddr,
        protocol: Option<Box<dyn Protocol>>,
        client_factory: Option<Box<dyn ClientFactory>>,
        state: ConnState,
    ) -> Self {
        Conn {
            stream,
            peer,
            protocol,
            client_factory,
            connect_timer: None,
            out: WriteBuffer::default(),
            state,
            want_write: state == ConnState::Connecting,
            made: false,
            flow: Flow::Flowing,
            low_water: DEFAULT_LOW_WATERMARK,
            high_water: DEFAULT_HIGH_WATERMARK,
            reading_paused: false,
            read_closed: false,
            write_side: WriteSide::Open,
            idle: None,
            last_activity: Instant::now(),
            deadline: None,
            deadline_told: false,
            listener: None,
            stop_close: false,
            flushed_on_stop: false,
        }
    }
}

/// A cleanly closed connection waiting for the peer's FIN (see
/// [`Source::Lingering`]).
pub(crate) struct Lingering {
    stream: TcpStream,
    peer: SocketAddr,
    timer: TimerId,
    discarded: usize,
}

pub(crate) struct Listener {
    /// `None` once the reactor is stopping: the port is closed at once, so
    /// new clients are refused rather than queued for a server that exits.
    socket: Option<TcpListener>,
    factory: Box<dyn Factory>,
    addr: SocketAddr,
    /// `accept` is failing for want of resources; warned once.
    backing_off: bool,
    /// A retry timer is pending, so new edges must not schedule another.
    retry_scheduled: bool,
    options: ListenOptions,
    stats: ListenerStats,
    /// Open connections per peer address, kept only with a per-peer limit.
    per_peer: HashMap<IpAddr, usize>,
    /// A limit refused a connection since the last warning was logged.
    warned_full: bool,
}

impl Listener {
    /// Counts a newly accepted connection from `peer`, or says which limit
    /// it is over.
    fn admit(&mut self, peer: SocketAddr) -> Result<(), &'static str> {
        if self
            .options
            .max_connections
            .is_some_and(|max| self.stats.open >= max)
        {
            return Err("the listener's connection limit");
        }
        if let Some(max) = self.options.max_connections_per_peer {
            let count = self.per_peer.entry(peer.ip()).or_insert(0);
            if *count >= max {
                return Err("the per-peer connection limit");
            }
            *count += 1;
        }
        self.stats.open += 1;
        self.warned_full = false;
        Ok(())
    }

    /// Undoes `admit` for a connection that was not kept.
    fn release(&mut self, peer: SocketAddr) {
        self.stats.open -= 1;
        if let Some(count) = self.per_peer.get_mut(&peer.ip()) {
            *count -= 1;
            if *count == 0 {
                self.per_peer.remove(&peer.ip());
            }
        }
    }
}

/// Logs a refused connection: one warning per burst, the rest at debug.
fn continue_or_log(listener: &mut Listener, peer: SocketAddr, why: &str) {
    listener.stats.refused += 1;
    if listener.warned_full {
        debug!("{peer}: over {why} on {}; closed", listener.addr);
    } else {
        listener.warned_full = true;
        warn!(
            "{peer}: over {why} on {}; closed at once (further refusals logged at debug)",
            listener.addr
        );
    }
}

/// Socket settings for [`Reactor::listen_tcp_with`].
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    /// Pending connections the kernel queues before `accept` (default 1024).
    pub backlog: i32,
    /// SO_REUSEADDR, so a restarted server can bind while old connections
    /// linger in TIME_WAIT (default on).
    pub reuse_address: bool,
    /// For IPv6 addresses: accept IPv6 only (`Some(true)`), IPv4 too
    /// (`Some(false)`), or the system default (`None`).
    pub only_v6: Option<bool>,
    /// Most connections open at once from this listener (default: no
    /// limit). Over it, a new connection is accepted and closed at once,
    /// logged and counted ([`Reactor::listener_stats`]).
    pub max_connections: Option<usize>,
    /// Most connections open at once from one peer IP address (default: no
    /// limit), as Twisted's `LimitConnectionsByPeer`; over it, the same.
    pub max_connections_per_peer: Option<usize>,
    /// The idle timeout every accepted connection starts with (default:
    /// none); see [`Transport::set_idle_timeout`].
    pub idle_timeout: Option<Duration>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 1024,
            reuse_address: true,
            only_v6: None,
            max_connections: None,
            max_connections_per_peer: None,
            idle_timeout: None,
        }
    }
}

/// What a listener has done so far ([`Reactor::listener_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerStats {
    /// Connections it accepted that are still open.
    pub open: usize,
    /// Connections closed at once for being over a limit.
    pub refused: u64,
}

/// A listening socket: where it is bound, and how to stop it.
#[derive(Debug, Clone, Copy)]
pub struct ListenerHandle {
    id: SlotId,
    addr: SocketAddr,
}

impl ListenerHandle {
    /// The bound address, with the real port when port 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening (see [`Reactor::stop_listening`]).
    pub fn stop(&self, reactor: &mut Reactor) -> bool {
        reactor.stop_listening(self)
    }
}

/// The reactor's [`Transport`]: a view of one connection while its protocol
/// runs. Every call goes straight to the reactor.
pub(crate) struct ConnTransport<'r> {
    reactor: &'r mut Reactor,
    id: ConnectionId,
    peer: SocketAddr,
}

impl Transport for ConnTransport<'_> {
    fn write(&mut self, data: &[u8]) {
        self.reactor.write_to(self.id, data);
    }

    fn write_vectored(&mut self, chunks: &[&[u8]]) {
        self.reactor.write_vectored_to(self.id, chunks);
    }

    fn lose_connection(&mut self) {
        self.reactor.lose_connection(self.id);
    }

    fn abort_connection(&mut self) {
        self.reactor.abort_connection(self.id);
    }

    fn lose_write_connection(&mut self) {
        self.reactor.lose_write_connection(self.id);
    }

    fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.reactor.set_idle_timeout(self.id, timeout);
    }

    fn set_deadline(&mut self, after: Option<Duration>) {
        self.reactor.set_deadline(self.id, after);
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self.reactor.conn(self.id) {
            Some(conn) => conn.stream.local_addr(),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn id(&self) -> ConnectionId {
        self.id
    }

    fn set_nodelay(&mut self, nodelay: bool) -> io::Result<()> {
        self.reactor.set_nodelay(self.id, nodelay)
    }

    fn buffered(&self) -> usize {
        self.reactor.buffered(self.id)
    }

    fn is_closing(&self) -> bool {
        !self.reactor.is_connected(self.id)
    }

    fn set_write_watermarks(&mut self, low: usize, high: usize) {
        self.reactor.set_write_watermarks(self.id, low, high);
    }

    fn set_write_buffer_limit(&mut self, bytes: usize) {
        let _ = bytes; // TODO(issue 12): the cap
    }

    fn is_write_buffer_full(&self) -> bool {
        self.reactor.is_write_buffer_full(self.id)
    }

    fn pause_reading(&mut self) {
        self.reactor.pause_reading(self.id);
    }

    fn resume_reading(&mut self) {
        self.reactor.resume_reading(self.id);
    }

    fn call_later(&mut self, delay: Duration, tag: u64) -> TimerId {
        self.reactor
            .schedule(delay, TimerAction::Protocol { conn: self.id, tag })
    }

    fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.reactor.cancel(timer)
    }

    fn reactor(&mut self) -> Option<&mut Reactor> {
        Some(self.reactor)
    }
}

impl Reactor {
    /// Listens on `addr` (port 0 picks a free port) with default
    /// [`ListenOptions`], building a protocol from `factory` for every
    /// accepted connection. Calls the factory's `start_factory` first.
    pub fn listen_tcp(
        &mut self,
        addr: SocketAddr,
        factory: impl Factory,
    ) -> io::Result<ListenerHandle> {
        self.listen_tcp_with(addr, factory, ListenOptions::default())
    }

    /// [`listen_tcp`](Reactor::listen_tcp) with explicit socket options.
    pub fn listen_tcp_with(
        &mut self,
        addr: SocketAddr,
        factory: impl Factory,
        options: ListenOptions,
    ) -> io::Result<ListenerHandle> {
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        if options.reuse_address {
            socket.set_reuse_address(true)?;
        }
        if let (SocketAddr::V6(_), Some(only)) = (addr, options.only_v6) {
            socket.set_only_v6(only)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(options.backlog)?;
        let mut socket = TcpListener::from_std(socket.into());
        let local = socket.local_addr()?;

        let generation = self.next_generation();
        let entry = self.slots.vacant_entry();
        let id = SlotId {
            key: key_u32(entry.key())?,
            generation,
        };
        self.poll
            .registry()
            .register(&mut socket, id.token(), Interest::READABLE)?;
        let mut factory: Box<dyn Factory> = Box::new(factory);
        factory.start_factory();
        entry.insert(Slot {
            generation,
            source: Source::Listener(Listener {
                socket: Some(socket),
                factory,
                addr: local,
                backing_off: false,
                retry_scheduled: false,
                options,
                stats: ListenerStats::default(),
                per_peer: HashMap::new(),
                warned_full: false,
            }),
        });
        debug!("listening on {local}");
        Ok(ListenerHandle { id, addr: local })
    }

    /// What a listener has accepted and refused, while it listens.
    pub fn listener_stats(&self, listener: &ListenerHandle) -> Option<ListenerStats> {
        match self.slots.get(listener.id.key as usize) {
            Some(Slot {
                generation,
                source: Source::Listener(l),
            }) if *generation == listener.id.generation => Some(l.stats),
            _ => None,
        }
    }

    /// Stops accepting on a listener and calls its factory's `stop_factory`.
    /// Connections it accepted stay open. Returns false if it had stopped already.
    pub fn stop_listening(&mut self, listener: &ListenerHandle) -> bool {
        self.remove_listener(listener.id)
    }

    pub(crate) fn remove_listener(&mut self, id: SlotId) -> bool {
        if !matches!(self.slot_mut(id), Some(Source::Listener(_))) {
            return false;
        }
        if let Source::Listener(mut listener) = self.slots.remove(id.key as usize).source {
            debug!("stopped listening on {}", listener.addr);
            if let Err(why) = crate::panic::catch(|| listener.factory.stop_factory()) {
                error!("stop_factory panicked: {why}");
            }
        }
        true
    }

    /// Connects to `addr` without blocking. The factory's `started_connecting`
    /// runs now; then either its protocol's `connection_made`, or
    /// `client_connection_failed` with a reason saying refused, unreachable
    /// or [`Reason::TimedOut`] (after `timeout`). Never calls back before
    /// returning.
    ///
    /// The returned id names the connection once made; `lose_connection` on
    /// it before then cancels the attempt.
    pub fn connect_tcp(
        &mut self,
        addr: SocketAddr,
        factory: impl ClientFactory,
        timeout: Duration,
    ) -> ConnectionId {
        let mut factory: Box<dyn ClientFactory> = Box::new(factory);
        factory.start_factory();
        factory.started_connecting(self);
        let stream = TcpStream::connect(addr).and_then(|mut stream| {
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
                let conn = ConnectionId::from(id);
                let timer = self.schedule(timeout, TimerAction::ConnectTimeout(conn));
                let key = self.slots.insert(Slot {
                    generation: id.generation,
                    source: Source::Conn(Conn {
                        connect_timer: Some(timer),
                        ..Conn::new(stream, addr, None, Some(factory), ConnState::Connecting)
                    }),
                });
                debug_assert_eq!(key, id.key as usize, "vacant_key names the next insert");
                conn
            }
            Err(e) => {
                debug!("connect to {addr} failed at once: {e}");
                let reason = Reason::from(e);
                self.call_later(Duration::ZERO, move |reactor| {
                    factory.client_connection_failed(reactor, &reason);
                    factory.stop_factory();
                });
                DEAD_ID
            }
        }
    }

    /// Writes `data` to connection `id` (see [`Transport::write`]).
    pub fn write_to(&mut self, id: ConnectionId, data: &[u8]) {
        self.write_vectored_to(id, &[data]);
    }

    /// Writes several chunks to connection `id`, in order.
    pub fn write_vectored_to(&mut self, id: ConnectionId, chunks: &[&[u8]]) {
        let now = self.turn_now;
        let Some((conn, registry)) = self.conn_and_registry(id) else {
            debug!("write to closed connection {id} ignored");
            return;
        };
        if conn.state == ConnState::Closed {
            debug!("write to closed connection {id} ignored");
            return;
        }
        if conn.write_side != WriteSide::Open {
            debug!("write to {id} after lose_write_connection ignored");
            return;
        }
        let mut written = 0;
        if conn.out.is_empty() && conn.state != ConnState::Connecting {
            match write_direct(&conn.stream, chunks) {
                Ok(n) => {
                    written = n;
                    conn.last_activity = now;
                }
                Err(e) => {
                    debug!("write to {id} failed: {e}");
                    self.queue_close(id, Reason::from(e));
                    return;
                }
            }
        }
        for chunk in chunks {
            if written >= chunk.len() {
                written -= chunk.len();
            } else {
                conn.out.push(&chunk[written..]);
                written = 0;
            }
        }
        let crossed = conn.out.len() >= conn.high_water && conn.flow == Flow::Flowing;
        if crossed {
            conn.flow = Flow::PausePending;
        }
        if !conn.out.is_empty() && !conn.want_write {
            if let Err(e) =
                registry.reregister(&mut conn.stream, SlotId::from(id).token(), interest(true))
            {
                self.queue_close(id, Reason::from(e));
                return;
            }
            conn.want_write = true;
        }
        if crossed {
            // Told after the current callback returns: the protocol may be
            // the one writing.
            self.pauses.push(id);
        }
    }

    /// Sets the outgoing-buffer sizes at which connection `id`'s producing
    /// pauses (`high`, reached or passed) and resumes (`low`, drained below);
    /// see [`Transport::set_write_watermarks`].
    pub fn set_write_watermarks(&mut self, id: ConnectionId, low: usize, high: usize) {
        if let Some(conn) = self.conn_mut(id) {
            conn.high_water = high.max(1);
            conn.low_water = low.min(conn.high_water);
        }
    }

    /// Whether connection `id`'s outgoing buffer crossed its high watermark
    /// and has not drained below the low one since.
    pub fn is_write_buffer_full(&self, id: ConnectionId) -> bool {
        self.conn(id).is_some_and(|c| c.flow != Flow::Flowing)
    }

    /// Stops giving connection `id`'s protocol data until
    /// [`resume_reading`](Reactor::resume_reading): the kernel's buffers fill
    /// and TCP slows the peer down.
    pub fn pause_reading(&mut self, id: ConnectionId) {
        if let Some(conn) = self.conn_mut(id) {
            conn.reading_paused = true;
        }
    }

    /// Reads connection `id` again, starting with what arrived meanwhile.
    pub fn resume_reading(&mut self, id: ConnectionId) {
        if let Some(conn) = self.conn_mut(id) {
            if conn.reading_paused {
                conn.reading_paused = false;
                // Edges that came while paused were ignored, and none may come
                // again: read in this turn's leftover phase.
                self.again.push(id.into());
            }
        }
    }

    /// Delivers `pause_producing` to the connections whose buffers crossed
    /// their high watermark during the callbacks that just ran.
    pub(crate) fn apply_pauses(&mut self) {
        while let Some(id) = self.pauses.pop() {
            let Some(conn) = self.conn_mut(id) else {
                continue;
            };
            // Drained meanwhile, or closing: nothing to tell.
            if conn.flow != Flow::PausePending || conn.state != ConnState::Open {
                continue;
            }
            conn.flow = Flow::Paused;
            self.with_protocol(id, |p, t| p.pause_producing(t));
        }
    }

    /// Closes connection `id` once its buffer is flushed (see
    /// [`Transport::lose_connection`]). Cancels a connection attempt still under way.
    pub fn lose_connection(&mut self, id: ConnectionId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        match conn.state {
            ConnState::Open => {
                conn.state = ConnState::Closing;
                // Closed once the callback returns, so writes later in the
                // same callback are still sent (as in Twisted), whether or
                // not something was buffered before.
                if conn.out.is_empty() {
                    self.empty_closing.push(id);
                }
            }
            ConnState::Connecting => self.queue_close(id, Reason::Aborted),
            ConnState::Closing | ConnState::PeerClosing | ConnState::Closed => {}
        }
    }

    /// Shuts our writing side of connection `id` once its buffer is flushed,
    /// and goes on reading (see [`Transport::lose_write_connection`]).
    pub fn lose_write_connection(&mut self, id: ConnectionId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.state != ConnState::Open || conn.write_side != WriteSide::Open {
            return;
        }
        if conn.out.is_empty() {
            self.shut_write_side(id);
        } else {
            conn.write_side = WriteSide::ShutWhenFlushed;
        }
    }

    /// Sends our FIN; if the peer's came already, the connection is done.
    fn shut_write_side(&mut self, id: ConnectionId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.write_side = WriteSide::Shut;
        if let Err(e) = conn.stream.shutdown(Shutdown::Write) {
            self.queue_close(id, Reason::from(e));
        } else if conn.read_closed {
            self.queue_close(id, Reason::PeerClosed);
        }
    }

    /// Sets connection `id`'s idle timeout (see [`Transport::set_idle_timeout`]).
    pub fn set_idle_timeout(&mut self, id: ConnectionId, timeout: Option<Duration>) {
        let now = self.turn_now;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let old = conn.idle.take();
        conn.last_activity = now;
        if let Some((_, timer)) = old {
            self.cancel(timer);
        }
        if let Some(timeout) = timeout {
            let timer = self.schedule(timeout, TimerAction::IdleCheck(id));
            if let Some(conn) = self.conn_mut(id) {
                conn.idle = Some((timeout, timer));
            }
        }
    }

    /// Sets connection `id`'s deadline, `after` from now (see
    /// [`Transport::set_deadline`]).
    pub fn set_deadline(&mut self, id: ConnectionId, after: Option<Duration>) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.deadline_told = false;
        if let Some(timer) = conn.deadline.take() {
            self.cancel(timer);
        }
        if let Some(after) = after {
            let timer = self.schedule(after, TimerAction::Deadline(id));
            if let Some(conn) = self.conn_mut(id) {
                conn.deadline = Some(timer);
            }
        }
    }

    /// An idle check came due: quiet for the whole timeout means the
    /// protocol's `timeout_connection`, or an abort for a connection that
    /// has been closing (flushing to a peer that does not read) that long.
    pub(crate) fn idle_check(&mut self, id: ConnectionId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let Some((timeout, _)) = conn.idle else {
            return;
        };
        let quiet = Instant::now().saturating_duration_since(conn.last_activity);
        let state = conn.state;
        let due = quiet >= timeout;
        // Checked again one timeout after the last activity, or after this
        // check if the protocol keeps the connection.
        let next = if due { timeout } else { timeout - quiet };
        let timer = self.schedule(next, TimerAction::IdleCheck(id));
        if let Some(conn) = self.conn_mut(id) {
            conn.idle = Some((timeout, timer));
        }
        if !due {
            return;
        }
        match state {
            ConnState::Open => {
                self.with_protocol(id, |p, t| p.timeout_connection(t, Timeout::Idle));
            }
            ConnState::Closing | ConnState::PeerClosing => {
                debug!("connection {id} made no progress closing for {timeout:?}; aborting");
                self.queue_close(id, Reason::Aborted);
            }
            ConnState::Connecting | ConnState::Closed => {}
        }
    }

    pub(crate) fn deadline_passed(&mut self, id: ConnectionId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.deadline = None;
        let already_told = std::mem::replace(&mut conn.deadline_told, true);
        match conn.state {
            ConnState::Open if !already_told => {
                self.with_protocol(id, |p, t| p.timeout_connection(t, Timeout::Deadline));
                match self.conn_mut(id) {
                    // The hook set a new deadline: that one stands.
                    Some(conn) if conn.deadline.is_some() => {}
                    // Otherwise the connection is over soon, whatever the hook did.
                    Some(conn) if conn.state != ConnState::Closed => {
                        let timer = self.schedule(DEADLINE_GRACE, TimerAction::Deadline(id));
                        if let Some(conn) = self.conn_mut(id) {
                            conn.deadline = Some(timer);
                        }
                    }
                    _ => {}
                }
            }
            ConnState::Open | ConnState::Closing | ConnState::PeerClosing => {
                debug!(
                    "connection {id} still open {DEADLINE_GRACE:?} after its deadline; aborting"
                );
                self.queue_close(id, Reason::Aborted);
            }
            ConnState::Connecting | ConnState::Closed => {}
        }
    }

    /// Closes connection `id` at once, dropping its buffer and resetting the peer.
    pub fn abort_connection(&mut self, id: ConnectionId) {
        self.queue_close(id, Reason::Aborted);
    }

    /// Sets TCP_NODELAY on connection `id`.
    pub fn set_nodelay(&mut self, id: ConnectionId, nodelay: bool) -> io::Result<()> {
        match self.conn(id) {
            Some(conn) => conn.stream.set_nodelay(nodelay),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Bytes buffered for connection `id` (0 for a closed one).
    pub fn buffered(&self, id: ConnectionId) -> usize {
        self.conn(id).map_or(0, |c| c.out.len())
    }

    /// Whether `id` names a connection that is open (made, and not closed or closing).
    pub fn is_connected(&self, id: ConnectionId) -> bool {
        self.conn(id).is_some_and(|c| c.state == ConnState::Open)
    }

    /// The peer address of connection `id`, while it exists.
    pub fn peer_addr(&self, id: ConnectionId) -> Option<SocketAddr> {
        self.conn(id).map(|c| c.peer)
    }

    /// Number of connections, including attempts under way.
    pub fn connection_count(&self) -> usize {
        self.slots
            .iter()
            .filter(|(_, s)| matches!(s.source, Source::Conn(_)))
            .count()
    }

    pub(crate) fn conn(&self, id: ConnectionId) -> Option<&Conn> {
        match self.slots.get(id.key as usize) {
            Some(Slot {
                generation,
                source: Source::Conn(conn),
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
    fn conn_and_registry(&mut self, id: ConnectionId) -> Option<(&mut Conn, &mio::Registry)> {
        match self.slots.get_mut(id.key as usize) {
            Some(Slot {
                generation,
                source: Source::Conn(conn),
            }) if *generation == id.generation => Some((conn, self.poll.registry())),
            _ => None,
        }
    }

    /// Marks `id` closed and queues its `connection_lost`; the first reason wins.
    pub(crate) fn queue_close(&mut self, id: ConnectionId, reason: Reason) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.state == ConnState::Closed {
            return;
        }
        conn.state = ConnState::Closed;
        conn.out.clear();
        self.closes.push((id, reason));
    }

    /// Applies the closes queued by the callbacks that just ran.
    pub(crate) fn apply_closes(&mut self) {
        // pause_producing and connection_lost may write or close anything,
        // queueing more of either; both are applied in this pass.
        loop {
            while let Some(id) = self.empty_closing.pop() {
                if let Some(conn) = self.conn_mut(id) {
                    if conn.state == ConnState::Closing && conn.out.is_empty() {
                        self.queue_close(id, Reason::LocalClosed);
                    }
                }
            }
            self.apply_pauses();
            if self.closes.is_empty() {
                break;
            }
            let mut i = 0;
            while i < self.closes.len() {
                let (id, reason) = self.closes[i].clone();
                i += 1;
                self.finish_close(id, reason);
            }
            self.closes.clear();
        }
        self.apply_udp_refusals();
    }

    fn finish_close(&mut self, id: ConnectionId, reason: Reason) {
        if self.conn(id).is_none() {
            return;
        }
        let Source::Conn(conn) = self.slots.remove(id.key as usize).source else {
            return;
        };
        let Conn {
            stream,
            peer,
            protocol,
            client_factory,
            connect_timer,
            made,
            idle,
            deadline,
            listener,
            stop_close,
            flushed_on_stop,
            ..
        } = conn;
        if let Some(Source::Listener(listener)) = listener.and_then(|l| self.slot_mut(l)) {
            listener.release(peer);
        }
        for timer in idle.map(|(_, timer)| timer).into_iter().chain(deadline) {
            self.cancel(timer);
        }
        match reason {
            Reason::Aborted | Reason::Panicked(_) => {
                let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                drop(stream);
            }
            Reason::LocalClosed => self.linger(id, stream, peer, true),
            Reason::ReactorStopped if stop_close => self.linger(id, stream, peer, flushed_on_stop),
            // Closing the descriptor also removes it from epoll: no deregister call needed.
            _ => drop(stream),
        }
        if let Some(timer) = connect_timer {
            self.cancel(timer);
        }
        debug!("connection {id} to {peer} closed: {reason}");
        // Each under its own catch: a panicking protocol must not cost the
        // client factory its hooks (a reconnecting factory would stop).
        if made {
            if let Some(mut protocol) = protocol {
                let lost = crate::panic::catch(|| {
                    let mut transport = ConnTransport {
                        reactor: self,
                        id,
                        peer,
                    };
                    protocol.connection_lost(&mut transport, &reason);
                });
                if let Err(why) = lost {
                    error!("{peer}: connection_lost of connection {id} panicked: {why}");
                }
            }
        }
        if let Some(mut factory) = client_factory {
            let hooks = crate::panic::catch(|| {
                if made {
                    factory.client_connection_lost(self, &reason);
                } else {
                    factory.client_connection_failed(self, &reason);
                }
            });
            if let Err(why) = hooks {
                error!("{peer}: a client factory hook panicked: {why}");
            }
            if let Err(why) = crate::panic::catch(|| factory.stop_factory()) {
                error!("{peer}: stop_factory panicked: {why}");
            }
        }
    }

    /// Runs `f` with connection `id`'s protocol taken out of its slot, so `f`
    /// may use the whole reactor. Returns false if there is no such protocol
    /// (closed, not yet made, or already inside one of its callbacks).
    pub(crate) fn with_protocol(
        &mut self,
        id: ConnectionId,
        f: impl FnOnce(&mut dyn Protocol, &mut dyn Transport),
    ) -> bool {
        let Some(conn) = self.conn_mut(id) else {
            return false;
        };
        let Some(mut protocol) = conn.protocol.take() else {
            return false;
        };
        let peer = conn.peer;
        let outcome = crate::panic::catch(|| {
            f(
                &mut *protocol,
                &mut ConnTransport {
                    reactor: self,
                    id,
                    peer,
                },
            )
        });
        // Closes are applied only after callbacks return, so the slot is still ours.
        if let Some(conn) = self.conn_mut(id) {
            conn.protocol = Some(protocol);
        }
        if let Err(why) = outcome {
            error!("{peer}: protocol of connection {id} panicked: {why}; aborting it");
            self.queue_close(id, Reason::Panicked(why));
        }
        true
    }

    /// Shuts our writing side and keeps the descriptor, in the same slot,
    /// until the peer's FIN: closing a socket with unread input sends a
    /// reset, which can destroy the tail of our reply at the peer (an HTTP
    /// 400 sent while the client is still sending, say). Bounded by
    /// [`LINGER_TIMEOUT`] and [`LINGER_DISCARD_LIMIT`].
    ///
    /// With `wait_if_quiet` false (a stopping reactor closing a connection
    /// with nothing buffered), a peer that has sent nothing unread is not
    /// waited for: its socket is closed once drained, which sends a FIN, not
    /// a reset, and an idle keep-alive peer does not hold up the stop.
    fn linger(
        &mut self,
        id: ConnectionId,
        stream: TcpStream,
        peer: SocketAddr,
        wait_if_quiet: bool,
    ) {
        if stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let slot = SlotId::from(id);
        let timer = self.schedule(LINGER_TIMEOUT, TimerAction::LingerTimeout(slot));
        let lingering = Lingering {
            stream,
            peer,
            timer,
            discarded: 0,
        };
        // The slot was just vacated, so it gets the same key back, and the
        // descriptor keeps its registration and token.
        let key = self.slots.insert(Slot {
            generation: id.generation,
            source: Source::Lingering(lingering),
        });
        debug_assert_eq!(key, id.key as usize);
        // Input that arrived before the close raised no edge we will see again.
        self.linger_ready(slot);
        if !wait_if_quiet {
            if let Some(Source::Lingering(lingering)) = self.slot_mut(slot) {
                if lingering.discarded == 0 {
                    self.end_linger(slot, "nothing unread at stop");
                }
            }
        }
    }

    /// Discards what a lingering connection's peer sent; closes it at the
    /// peer's FIN, an error, or the discard limit.
    pub(crate) fn linger_ready(&mut self, id: SlotId) {
        let mut buf = std::mem::take(&mut self.read_buf);
        let end = match self.slot_mut(id) {
            Some(Source::Lingering(lingering)) => loop {
                match (&lingering.stream).read(&mut buf) {
                    Ok(0) => break Some("the peer closed"),
                    Ok(n) => {
                        lingering.discarded += n;
                        if lingering.discarded > LINGER_DISCARD_LIMIT {
                            break Some("discard limit reached");
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break Some("error"),
                }
            },
            _ => None,
        };
        self.read_buf = buf;
        if let Some(why) = end {
            self.end_linger(id, why);
        }
    }

    /// Closes a lingering connection's descriptor.
    pub(crate) fn end_linger(&mut self, id: SlotId, why: &str) {
        if !matches!(self.slot_mut(id), Some(Source::Lingering(_))) {
            return;
        }
        if let Source::Lingering(lingering) = self.slots.remove(id.key as usize).source {
            self.cancel(lingering.timer);
            debug!(
                "closed lingering connection to {} ({why}, {} bytes discarded)",
                lingering.peer, lingering.discarded
            );
        }
    }

    pub(crate) fn protocol_timer(&mut self, id: ConnectionId, tag: u64) {
        self.with_protocol(id, |p, t| p.timer_fired(t, tag));
    }

    pub(crate) fn conn_ready(&mut self, id: ConnectionId, readiness: Readiness) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.state == ConnState::Connecting {
            if readiness.writable || readiness.error || readiness.must_drain {
                self.finish_connect(id, readiness);
            }
            return;
        }
        if readiness.writable && !conn.out.is_empty() {
            self.flush(id);
        }
        if readiness.readable || readiness.must_drain {
            self.read(id, readiness.must_drain);
        }
        if readiness.error {
            if let Some(conn) = self.conn(id) {
                if let Ok(Some(e)) | Err(e) = conn.stream.take_error() {
                    self.queue_close(id, Reason::from(e));
                }
            }
        }
    }

    /// Reads until the socket is drained or the fairness cap is hit.
    ///
    /// Edge-triggered: a read shorter than the buffer emptied the socket at
    /// that moment and new data raises a new edge, so it counts as drained,
    /// unless the event carried FIN or an error (`must_drain`), which a
    /// further read must pick up.
    fn read(&mut self, id: ConnectionId, must_drain: bool) {
        let mut buf = std::mem::take(&mut self.read_buf);
        let now = self.turn_now;
        let mut reads = 0;
        loop {
            if self.is_stopping() {
                break;
            }
            let Some(conn) = self.conn_mut(id) else {
                break;
            };
            if conn.state != ConnState::Open || conn.reading_paused || conn.read_closed {
                break;
            }
            match (&conn.stream).read(&mut buf) {
                Ok(0) => {
                    let half_close = conn.write_side == WriteSide::Open
                        && conn
                            .protocol
                            .as_ref()
                            .is_some_and(|p| p.allows_half_close());
                    if half_close {
                        // The protocol answers, then closes when it likes.
                        conn.read_closed = true;
                        self.with_protocol(id, |p, t| p.read_connection_lost(t));
                    } else if conn.out.is_empty() {
                        self.queue_close(id, Reason::PeerClosed);
                    } else {
                        // Replies still buffered are flushed first (Twisted
                        // drops them): `printf … | nc -N` gets its whole answer.
                        conn.state = ConnState::PeerClosing;
                    }
                    break;
                }
                Ok(n) => {
                    conn.last_activity = now;
                    let data = &buf[..n];
                    self.with_protocol(id, |p, t| p.data_received(t, data));
                    // Before the next read: the default pause_producing stops
                    // reading, which bounds the buffer at one read past the
                    // high watermark.
                    if !self.pauses.is_empty() {
                        self.apply_pauses();
                    }
                    reads += 1;
                    if n < buf.len() && !must_drain {
                        break;
                    }
                    if reads >= MAX_READS_PER_EVENT {
                        self.again.push(id.into());
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

    fn flush(&mut self, id: ConnectionId) {
        let now = self.turn_now;
        let Some((conn, registry)) = self.conn_and_registry(id) else {
            return;
        };
        let before = conn.out.len();
        let flushed = conn.out.flush_into(&conn.stream);
        if conn.out.len() < before {
            conn.last_activity = now;
        }
        match flushed {
            Ok(false) => {}
            Ok(true) => {
                if conn.want_write {
                    conn.want_write = false;
                    if let Err(e) = registry.reregister(
                        &mut conn.stream,
                        SlotId::from(id).token(),
                        interest(false),
                    ) {
                        self.queue_close(id, Reason::from(e));
                        return;
                    }
                }
                match conn.state {
                    ConnState::Closing | ConnState::PeerClosing if conn.stop_close => {
                        self.queue_close(id, Reason::ReactorStopped)
                    }
                    ConnState::Closing => self.queue_close(id, Reason::LocalClosed),
                    ConnState::PeerClosing => self.queue_close(id, Reason::PeerClosed),
                    _ if conn.write_side == WriteSide::ShutWhenFlushed => self.shut_write_side(id),
                    _ => {}
                }
            }
            Err(e) => {
                debug!("write to {id} failed: {e}");
                self.queue_close(id, Reason::from(e));
                return;
            }
        }
        // Last, so what resume_producing writes takes the ordinary write path.
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        // An empty buffer is below any low watermark, 0 included.
        if (conn.out.is_empty() || conn.out.len() < conn.low_water) && conn.flow != Flow::Flowing {
            let paused = conn.flow == Flow::Paused;
            conn.flow = Flow::Flowing;
            if paused && conn.state == ConnState::Open {
                self.with_protocol(id, |p, t| p.resume_producing(t));
            }
        }
    }

    fn finish_connect(&mut self, id: ConnectionId, readiness: Readiness) {
        let Some((conn, registry)) = self.conn_and_registry(id) else {
            return;
        };
        let outcome = match conn.stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match conn.stream.peer_addr() {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    if !(readiness.error || readiness.must_drain) {
                        return; // spurious wake-up: still connecting
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
        conn.state = ConnState::Open;
        conn.made = true;
        let timer = conn.connect_timer.take();
        let peer = conn.peer;
        // A client connection always carries the factory it was made from.
        let factory = conn
            .client_factory
            .as_mut()
            .expect("client connection has a factory");
        match crate::panic::catch(|| factory.build_protocol(peer)) {
            Ok(protocol) => conn.protocol = Some(protocol),
            Err(why) => {
                error!("{peer}: build_protocol panicked: {why}; aborting the connection");
                // Not made after all: the factory hears of a failed attempt.
                conn.made = false;
                self.queue_close(id, Reason::Panicked(why));
                return;
            }
        }
        let pending_writes = !conn.out.is_empty();
        if !pending_writes {
            conn.want_write = false;
            if let Err(e) =
                registry.reregister(&mut conn.stream, SlotId::from(id).token(), interest(false))
            {
                self.queue_close(id, Reason::from(e));
                return;
            }
        }
        if let Some(timer) = timer {
            self.cancel(timer);
        }
        debug!("connected {id} to {peer}");
        self.with_protocol(id, |p, t| p.connection_made(t));
        if pending_writes {
            self.flush(id);
        }
        if readiness.readable || readiness.must_drain {
            self.read(id, readiness.must_drain);
        }
    }

    pub(crate) fn connect_timed_out(&mut self, id: ConnectionId) {
        if self
            .conn(id)
            .is_some_and(|c| c.state == ConnState::Connecting)
        {
            if let Some(conn) = self.conn_mut(id) {
                conn.connect_timer = None;
            }
            self.queue_close(id, Reason::TimedOut);
        }
    }

    pub(crate) fn retry_accept(&mut self, id: SlotId) {
        if let Some(Source::Listener(listener)) = self.slot_mut(id) {
            listener.retry_scheduled = false;
            self.accept_ready(id);
        }
    }

    pub(crate) fn accept_ready(&mut self, id: SlotId) {
        for _ in 0..MAX_ACCEPTS_PER_EVENT {
            let Some(Source::Listener(listener)) = self.slot_mut(id) else {
                return;
            };
            let Some(socket) = &listener.socket else {
                return;
            };
            match socket.accept() {
                Ok((stream, peer)) => {
                    if listener.backing_off {
                        listener.backing_off = false;
                        warn!("accepting on {} again", listener.addr);
                    }
                    if let Err(why) = listener.admit(peer) {
                        // Accepted and closed at once: the client learns at
                        // once, rather than waiting in the backlog.
                        drop(stream);
                        continue_or_log(listener, peer, why);
                        continue;
                    }
                    let idle_timeout = listener.options.idle_timeout;
                    let factory = &mut listener.factory;
                    match crate::panic::catch(|| factory.build_protocol(peer)) {
                        Ok(protocol) => {
                            self.add_connection(stream, peer, protocol, id, idle_timeout)
                        }
                        Err(why) => {
                            error!("{peer}: build_protocol panicked: {why}; connection dropped");
                            if let Some(Source::Listener(listener)) = self.slot_mut(id) {
                                listener.release(peer);
                            }
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if concerns_only_this_connection(&e) => {
                    debug!("accept on {} skipped a connection: {e}", listener.addr);
                }
                Err(e) => {
                    // Out of descriptors or memory: the pending connection stays
                    // in the backlog. Polling again would spin, so wait a little.
                    if !listener.backing_off {
                        listener.backing_off = true;
                        warn!(
                            "accept on {} failed: {e}; retrying every {} ms",
                            listener.addr,
                            ACCEPT_RETRY.as_millis()
                        );
                    }
                    if !listener.retry_scheduled {
                        listener.retry_scheduled = true;
                        self.schedule(ACCEPT_RETRY, TimerAction::RetryAccept(id));
                    }
                    return;
                }
            }
        }
        self.again.push(id);
    }

    fn add_connection(
        &mut self,
        mut stream: TcpStream,
        peer: SocketAddr,
        protocol: Box<dyn Protocol>,
        listener: SlotId,
        idle_timeout: Option<Duration>,
    ) {
        let generation = self.next_generation();
        let entry = self.slots.vacant_entry();
        let Ok(key) = key_u32(entry.key()) else {
            warn!("connection from {peer} dropped: too many connections");
            if let Some(Source::Listener(l)) = self.slot_mut(listener) {
                l.release(peer);
            }
            return;
        };
        let id = ConnectionId { key, generation };
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, SlotId::from(id).token(), Interest::READABLE)
        {
            warn!("connection from {peer} dropped: cannot register it: {e}");
            if let Some(Source::Listener(l)) = self.slot_mut(listener) {
                l.release(peer);
            }
            return;
        }
        entry.insert(Slot {
            generation,
            source: Source::Conn(Conn {
                made: true,
                listener: Some(listener),
                ..Conn::new(stream, peer, Some(protocol), None, ConnState::Open)
            }),
        });
        debug!("accepted {id} from {peer}");
        if idle_timeout.is_some() {
            self.set_idle_timeout(id, idle_timeout);
        }
        self.with_protocol(id, |p, t| p.connection_made(t));
    }

    /// Closes every listening socket (their factories stop later, after the
    /// connections they built).
    pub(crate) fn close_listening_sockets(&mut self) {
        for (_, slot) in self.slots.iter_mut() {
            if let Source::Listener(listener) = &mut slot.source {
                listener.socket = None;
            }
        }
    }

    /// Starts closing connection `id` because the reactor stops: as
    /// `lose_connection`, but the reason will be `ReactorStopped`.
    pub(crate) fn close_for_stop(&mut self, id: ConnectionId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        match conn.state {
            ConnState::Connecting => self.queue_close(id, Reason::ReactorStopped),
            ConnState::Closed => {}
            // Nothing buffered: closed now. Unread input is drained first
            // (closing over it would reset the peer and destroy what the
            // kernel still holds for it); a quiet peer is not waited for.
            _ if conn.out.is_empty() => {
                conn.stop_close = true;
                self.queue_close(id, Reason::ReactorStopped);
            }
            _ => {
                conn.stop_close = true;
                conn.flushed_on_stop = true;
                if conn.state == ConnState::Open {
                    conn.state = ConnState::Closing;
                }
                // Its writable edge may have been in the batch the stop cut
                // short, and will not come again: write until it would block.
                self.flush(id);
            }
        }
    }

    /// Flushes what the socket takes now and queues the close that `stop` owes.
    pub(crate) fn close_on_stop(&mut self, id: ConnectionId) {
        if let Some(conn) = self.conn_mut(id) {
            if !conn.out.is_empty() {
                let _ = conn.out.flush_into(&conn.stream);
            }
        }
        self.queue_close(id, Reason::ReactorStopped);
    }
}

/// One write of `chunks` straight to the socket. Returns how many bytes the
/// kernel took (0 if it would block).
fn write_direct(stream: &TcpStream, chunks: &[&[u8]]) -> io::Result<usize> {
    let mut stream = stream;
    loop {
        let result = match chunks {
            [] => return Ok(0),
            [one] => stream.write(one),
            many => {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let n = many.len().min(MAX_IOVECS);
                for (slice, chunk) in slices.iter_mut().zip(many) {
                    *slice = IoSlice::new(chunk);
                }
                stream.write_vectored(&slices[..n])
            }
        };
        match result {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn key_u32(key: usize) -> io::Result<u32> {
    u32::try_from(key).map_err(|_| io::Error::other("too many sources in one reactor"))
}
