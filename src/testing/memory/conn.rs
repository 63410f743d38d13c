//! A connection in memory: its slot, and the reactor's arms for it.
//!
//! The reactor's methods that take a [`ConnectionId`] look up a TCP
//! connection first; when the id names none, they fall through to the arms
//! here (`memory_*`), so the TCP path costs nothing more. A memory
//! connection keeps the same state as a TCP one ([`ConnState`], the write
//! limits, [`Flow`], [`ReadPause`], [`Deadline`]) and follows the same rules,
//! written once more for a peer that is the test instead of a socket:
//! writes wait in `out` until the callback returns, then go to the peer
//! if it reads; closes are queued and applied after the callback; the cap
//! aborts.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, error, warn};

use super::{ConnectRequest, ListenRequest};
use crate::protocol::{ClientFactory, Protocol};
use crate::reactor::{key_u32, Reactor, Slot, SlotId, Source, TimerAction, READ_BUFFER_SIZE};
use crate::reason::Reason;
use crate::tcp::{
    ClientOrigin, ConnState, ConnTransport, Deadline, Ending, Flow, ListenerHandle, Origin,
    Producers, QueuedClose, ReadPause, ReadSide, WriteLimits, WriteSide,
};
use crate::timer::TimerId;
use crate::transport::{ConnectionId, Transport};

/// What a reactor in memory keeps besides its slots.
#[derive(Default)]
pub(crate) struct Memory {
    /// Every memory connection made, open or closed: what its peer got.
    pub(crate) records: HashMap<ConnectionId, Record>,
    pub(crate) listens: Vec<ListenRequest>,
    pub(crate) connects: Vec<ConnectRequest>,
    pub(crate) stop_requested: bool,
    /// Connections whose reading resumed while input or the peer's close
    /// waited for them: served after the current callback, as the real
    /// reactor's leftover queue does.
    pub(crate) ready: Vec<ConnectionId>,
    /// The next local port a client connection gets.
    next_port: u16,
}

/// What the test sees of one memory connection, kept after it closes.
#[derive(Default)]
pub(crate) struct Record {
    /// Everything its peer read, in order.
    pub(crate) received: Vec<u8>,
    /// Our FIN reached the peer (`lose_write_connection`, flushed).
    pub(crate) write_shut: bool,
    /// Why it closed, once `connection_lost` ran.
    pub(crate) closed: Option<Reason>,
}

/// A connection made in memory, in its slot.
pub(crate) struct MemoryConn {
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    /// `None` while one of its callbacks runs, and before a client
    /// connection is made: made exactly when it has one outside them.
    pub(crate) protocol: Option<Box<dyn Protocol>>,
    pub(crate) state: ConnState,
    /// Written, not yet read by the peer (everything, while it does not read).
    pub(crate) out: Vec<u8>,
    /// The peer reads what is written to it once each callback returns.
    pub(crate) peer_reading: bool,
    /// What the peer sent that the protocol was not given yet (reading is
    /// paused, or it came in more than one read's worth).
    pub(crate) inbox: Vec<u8>,
    /// The peer closed its side, after `inbox`.
    pub(crate) peer_fin: bool,
    pub(crate) read_pause: ReadPause,
    pub(crate) flow: Flow,
    pub(crate) limits: WriteLimits,
    pub(crate) producers: Producers,
    pub(crate) idle: Option<(Duration, TimerId)>,
    pub(crate) last_activity: Instant,
    pub(crate) deadline: Deadline,
    /// A listener's (accepted), a client factory's, or the test's own.
    pub(crate) origin: Option<Origin>,
}

impl MemoryConn {
    fn new(peer: SocketAddr, local: SocketAddr, state: ConnState, now: Instant) -> Self {
        MemoryConn {
            peer,
            local,
            protocol: None,
            state,
            out: Vec::new(),
            peer_reading: true,
            inbox: Vec::new(),
            peer_fin: false,
            read_pause: ReadPause::default(),
            flow: Flow::default(),
            limits: WriteLimits::default(),
            producers: Producers::default(),
            idle: None,
            last_activity: now,
            deadline: Deadline::None,
            origin: None,
        }
    }

    /// Whether input or the peer's close waits for reading to resume.
    pub(crate) fn has_input(&self) -> bool {
        !self.inbox.is_empty() || self.peer_fin
    }
}

/// The address family's "any" address: a connection the test made
/// directly has no local address of its own.
fn unspecified_like(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}

impl Reactor {
    pub(crate) fn memory_conn(&self, id: ConnectionId) -> Option<&MemoryConn> {
        match self.slots.get(id.key as usize) {
            Some(Slot {
                generation,
                source: Source::Memory(m),
                ..
            }) if *generation == id.generation => Some(m),
            _ => None,
        }
    }

    pub(crate) fn memory_conn_mut(&mut self, id: ConnectionId) -> Option<&mut MemoryConn> {
        match self.slot_mut(id.into()) {
            Some(Source::Memory(m)) => Some(m),
            _ => None,
        }
    }

    pub(crate) fn memory_mut(&mut self) -> &mut Memory {
        self.memory.get_or_insert_with(Box::default)
    }

    fn record_mut(&mut self, id: ConnectionId) -> &mut Record {
        self.memory_mut().records.entry(id).or_default()
    }

    /// Puts `conn` in a slot and opens its record.
    fn insert_memory(&mut self, conn: MemoryConn) -> io::Result<ConnectionId> {
        let generation = self.next_generation();
        let entry = self.slots.vacant_entry();
        let id = ConnectionId {
            key: key_u32(entry.key())?,
            generation,
        };
        entry.insert(Slot {
            generation,
            queued: false,
            source: Source::Memory(Box::new(conn)),
        });
        self.record_mut(id);
        Ok(id)
    }

    /// A connection from `peer` to `protocol`, made now: `connection_made`
    /// runs before this returns. `origin` is the listener that accepted it
    /// (its limits were applied) or nothing.
    pub(crate) fn memory_open(
        &mut self,
        protocol: Box<dyn Protocol>,
        peer: SocketAddr,
        local: Option<SocketAddr>,
        accepted: Option<(SlotId, crate::ListenOptions)>,
    ) -> io::Result<ConnectionId> {
        let local = local.unwrap_or_else(|| unspecified_like(peer));
        let mut conn = MemoryConn::new(peer, local, ConnState::OPEN, self.now());
        conn.protocol = Some(protocol);
        if let Some((listener, options)) = accepted {
            conn.origin = Some(Origin::Accepted(listener));
            conn.limits.cap = options.write_buffer_limit;
        }
        let id = match self.insert_memory(conn) {
            Ok(id) => id,
            Err(e) => {
                if let Some((listener, _)) = accepted {
                    self.release_admission(Some(listener), peer);
                }
                return Err(e);
            }
        };
        debug!("made {id} from {peer} in memory");
        if let Some((_, options)) = accepted {
            if options.idle_timeout.is_some() {
                self.set_idle_timeout(id, options.idle_timeout);
            }
        }
        self.with_protocol(id, |p, t| p.connection_made(t));
        self.apply_closes();
        Ok(id)
    }

    /// `connect_tcp` (or `connect_tls`) on a reactor in memory: the
    /// connection waits, connecting, until its test completes or fails it,
    /// or its timeout passes.
    pub(crate) fn memory_connect(
        &mut self,
        addr: SocketAddr,
        factory: Box<dyn ClientFactory>,
        timeout: Duration,
        tls: bool,
    ) -> ConnectionId {
        let memory = self.memory_mut();
        let port = 49152 + memory.next_port % 16384;
        memory.next_port = memory.next_port.wrapping_add(1);
        let local = SocketAddr::new(
            match addr {
                SocketAddr::V4(_) => [127, 0, 0, 1].into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            },
            port,
        );
        let mut conn = MemoryConn::new(addr, local, ConnState::Connecting, self.now());
        conn.origin = Some(Origin::Client(Box::new(ClientOrigin {
            factory,
            connect_timer: None,
        })));
        let id = match self.insert_memory(conn) {
            Ok(id) => id,
            Err(e) => {
                // Only a slab past 2^32 entries: nothing to give back.
                error!("connect to {addr} in memory failed: {e}");
                return ConnectionId::from_parts(u32::MAX, 0);
            }
        };
        let timer = self.schedule(timeout, TimerAction::ConnectTimeout(id));
        if let Some(MemoryConn {
            origin: Some(Origin::Client(client)),
            ..
        }) = self.memory_conn_mut(id)
        {
            client.connect_timer = Some(timer);
        }
        self.memory_mut().connects.push(ConnectRequest {
            addr,
            timeout,
            tls,
            id,
        });
        debug!("connect {id} to {addr} recorded in memory");
        id
    }

    /// Records a listen made on a reactor in memory.
    pub(crate) fn record_listen(
        &mut self,
        handle: ListenerHandle,
        options: crate::ListenOptions,
        tls: bool,
    ) {
        self.memory_mut().listens.push(ListenRequest {
            addr: handle.local_addr(),
            options,
            tls,
            handle,
        });
    }

    /// Makes memory connection `id`, connecting, connected: its factory
    /// builds the protocol, what was written meanwhile goes first, then
    /// `connection_made`. False if it is not connecting.
    pub(crate) fn memory_complete_connect(&mut self, id: ConnectionId) -> bool {
        let Some(conn) = self.memory_conn_mut(id) else {
            return false;
        };
        if conn.state != ConnState::Connecting {
            return false;
        }
        let peer = conn.peer;
        let Some(Origin::Client(client)) = &mut conn.origin else {
            return false;
        };
        let timer = client.connect_timer.take();
        let factory = &mut client.factory;
        match crate::panic::catch(|| factory.build_protocol(peer)) {
            Ok(protocol) => {
                conn.protocol = Some(protocol);
                conn.state = ConnState::OPEN;
            }
            Err(why) => {
                error!("{peer}: build_protocol panicked: {why}; aborting the connection");
                self.queue_close(id, Reason::Panicked(why));
                self.apply_closes();
                return true;
            }
        }
        if let Some(timer) = timer {
            self.cancel(timer);
        }
        self.memory_flush(id);
        debug!("connected {id} to {peer} in memory");
        self.with_protocol(id, |p, t| p.connection_made(t));
        self.after_callback();
        // A buffer still over its watermark is told now that there is a
        // protocol to tell.
        self.flow_changed.push(id);
        self.apply_closes();
        true
    }

    /// `with_protocol` for a memory connection: its protocol lent to `f`
    /// with the reactor's own transport, under the panic guard.
    pub(crate) fn memory_with_protocol(
        &mut self,
        id: ConnectionId,
        f: impl FnOnce(&mut dyn Protocol, &mut dyn Transport),
    ) -> bool {
        let Some(conn) = self.memory_conn_mut(id) else {
            return false;
        };
        let peer = conn.peer;
        let Some(mut protocol) = conn.protocol.take() else {
            return false;
        };
        let outcome = crate::panic::catch(|| {
            f(
                &mut *protocol,
                &mut ConnTransport::with_route(self, id, peer, false),
            )
        });
        match self.memory_conn_mut(id) {
            Some(conn) => conn.protocol = Some(protocol),
            None => crate::panic::drop_caught(protocol, "a protocol"),
        }
        if let Err(why) = outcome {
            error!("{peer}: protocol of connection {id} panicked: {why}; aborting it");
            self.queue_close(id, Reason::Panicked(why));
        }
        true
    }

    /// The local address of memory connection `id`.
    pub(crate) fn memory_local_addr(&self, id: ConnectionId) -> io::Result<SocketAddr> {
        match self.memory_conn(id) {
            Some(conn) => Ok(conn.local),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// `write_to` a memory connection: the bytes wait in its buffer, under
    /// its cap and watermarks, and reach the peer once the callback returns.
    pub(crate) fn memory_write(&mut self, id: ConnectionId, chunks: &[&[u8]]) {
        let Some(conn) = self.memory_conn_mut(id) else {
            debug!("write to closed connection {id} ignored");
            return;
        };
        if !conn.state.accepts_writes() {
            debug!("write to {id}, closed for writing, ignored");
            return;
        }
        let total: usize = chunks.iter().map(|c| c.len()).sum();
        if total == 0 {
            return;
        }
        let buffered = conn.out.len();
        let limit = conn.limits.cap;
        if total > limit - buffered.min(limit) {
            warn!(
                "{}: connection {id} would buffer {} bytes, over its limit of {limit}; aborting it (the peer does not read)",
                conn.peer,
                buffered + total
            );
            self.queue_close(id, Reason::BufferOverflow { limit });
            return;
        }
        let was_empty = conn.out.is_empty();
        for chunk in chunks {
            conn.out.extend_from_slice(chunk);
        }
        let now_full = !conn.flow.full && buffered + total > conn.limits.high();
        // Flushed once the callback returns; a connecting one once made.
        if was_empty && conn.state != ConnState::Connecting {
            self.dirty.push(id);
        }
        if now_full {
            self.set_full(id, true);
        }
    }

    /// The flush of a memory connection: the peer takes everything if it
    /// reads, nothing if not.
    pub(crate) fn memory_flush(&mut self, id: ConnectionId) {
        let reading = self.memory_conn(id).is_some_and(|c| c.peer_reading);
        self.memory_deliver(id, if reading { usize::MAX } else { 0 });
    }

    /// The peer of memory connection `id` reads up to `max` bytes of what
    /// waits for it; then the connection settles as after a flush (the
    /// close or FIN a drained buffer waited for, producers resumed below
    /// the low watermark). Returns how many bytes it read.
    pub(crate) fn memory_deliver(&mut self, id: ConnectionId, max: usize) -> usize {
        let now = self.now();
        let Some(conn) = self.memory_conn_mut(id) else {
            return 0;
        };
        if matches!(conn.state, ConnState::Closed | ConnState::Connecting) {
            return 0;
        }
        let n = max.min(conn.out.len());
        let taken: Vec<u8> = conn.out.drain(..n).collect();
        if n > 0 {
            conn.last_activity = now;
        }
        let waiting = !conn.out.is_empty();
        let unfull = conn.flow.full && (!waiting || conn.out.len() < conn.limits.low());
        let state = conn.state;
        self.record_mut(id).received.extend_from_slice(&taken);
        if !waiting {
            match state {
                ConnState::Flushing(Ending::Local) => self.queue_close(id, Reason::LocalClosed),
                ConnState::Flushing(Ending::Peer) => self.queue_close(id, Reason::PeerClosed),
                ConnState::Flushing(Ending::Stop) => self.queue_close(id, Reason::ReactorStopped),
                ConnState::Open {
                    read,
                    write: WriteSide::ShutWhenFlushed,
                } => self.memory_shut_write_side(id, read),
                _ => {}
            }
        }
        if unfull {
            self.set_full(id, false);
        }
        n
    }

    /// Our FIN reaches the peer; if the peer's came already, the connection
    /// is done.
    fn memory_shut_write_side(&mut self, id: ConnectionId, read: ReadSide) {
        if let Some(conn) = self.memory_conn_mut(id) {
            conn.state = ConnState::Open {
                read,
                write: WriteSide::Shut,
            };
        }
        self.record_mut(id).write_shut = true;
        if read == ReadSide::Finished {
            self.queue_close(id, Reason::PeerClosed);
        }
    }

    /// `lose_connection` on a memory connection: closed once the peer has
    /// read what is buffered; a connect still waiting is cancelled.
    pub(crate) fn memory_lose_connection(&mut self, id: ConnectionId) {
        let Some(conn) = self.memory_conn_mut(id) else {
            return;
        };
        match conn.state {
            ConnState::Open { .. } => {
                conn.state = ConnState::Flushing(Ending::Local);
                self.dirty.push(id);
            }
            ConnState::Connecting => self.queue_close(id, Reason::Aborted),
            ConnState::Flushing(_) | ConnState::Closed => {}
        }
    }

    /// `lose_write_connection` on a memory connection.
    pub(crate) fn memory_lose_write_connection(&mut self, id: ConnectionId) {
        let Some(conn) = self.memory_conn_mut(id) else {
            return;
        };
        let ConnState::Open {
            read,
            write: WriteSide::Open,
        } = conn.state
        else {
            return;
        };
        conn.state = ConnState::Open {
            read,
            write: WriteSide::ShutWhenFlushed,
        };
        self.dirty.push(id);
    }

    /// `queue_close` for a memory connection: the first reason wins.
    pub(crate) fn memory_queue_close(&mut self, id: ConnectionId, reason: Reason) {
        let Some(conn) = self.memory_conn_mut(id) else {
            return;
        };
        if conn.state == ConnState::Closed {
            return;
        }
        conn.state = ConnState::Closed;
        self.closes.push(QueuedClose {
            id,
            reason,
            unsent_staged: 0,
            after_stop_flush: false,
        });
    }

    /// Ends memory connection `id`: what it held is released, its record
    /// says why it closed, its protocol hears `connection_lost` and its
    /// client factory how it ended. A close that left bytes unread by the
    /// peer is reported as [`Reason::Discarded`], as a TCP one would be.
    pub(crate) fn memory_finish_close(&mut self, id: ConnectionId, reason: Reason) {
        if self.memory_conn(id).is_none() {
            return;
        }
        let Source::Memory(conn) = self.slots.remove(id.key as usize).source else {
            return;
        };
        let MemoryConn {
            peer,
            protocol,
            out,
            flow,
            producers,
            idle,
            deadline,
            origin,
            ..
        } = *conn;
        if flow.full {
            for producer in producers.into_iter() {
                self.hold(producer, false);
            }
        }
        for timer in idle.map(|(_, t)| t).into_iter().chain(deadline.timer()) {
            self.cancel(timer);
        }
        let mut client = None;
        match origin {
            Some(Origin::Accepted(listener)) => self.release_admission(Some(listener), peer),
            Some(Origin::Client(origin)) => {
                let ClientOrigin {
                    factory,
                    connect_timer,
                } = *origin;
                if let Some(timer) = connect_timer {
                    self.cancel(timer);
                }
                client = Some(factory);
            }
            None => {}
        }
        let resets = matches!(
            reason,
            Reason::Aborted | Reason::Panicked(_) | Reason::BufferOverflow { .. }
        );
        let reason = if out.is_empty() || resets || matches!(reason, Reason::Error { .. }) {
            reason
        } else {
            Reason::Discarded {
                unsent: out.len(),
                unread: 0,
                cause: Box::new(reason),
            }
        };
        debug!("connection {id} to {peer} closed in memory: {reason}");
        self.record_mut(id).closed = Some(reason.clone());
        let made = protocol.is_some();
        if let Some(mut protocol) = protocol {
            let lost = crate::panic::catch(|| {
                protocol.connection_lost(
                    &mut ConnTransport::with_route(self, id, peer, false),
                    &reason,
                );
            });
            if let Err(why) = lost {
                error!("{peer}: connection_lost of connection {id} panicked: {why}");
            }
            crate::panic::drop_caught(protocol, "a protocol");
        }
        if let Some(factory) = client {
            self.end_client_factory(factory, made, &reason);
        }
    }

    /// The peer of memory connection `id` sent `data`: the protocol is given
    /// it now, a read's worth at a time, unless reading is paused; then it
    /// waits. False if the connection does not read (not made, closed or
    /// closing, or the peer closed already).
    pub(crate) fn memory_receive(&mut self, id: ConnectionId, data: &[u8]) -> bool {
        let Some(conn) = self.memory_conn_mut(id) else {
            return false;
        };
        if !conn.state.reads() || conn.peer_fin {
            debug!("data for {id}, which does not read, dropped");
            return false;
        }
        conn.inbox.extend_from_slice(data);
        self.memory_read(id);
        true
    }

    /// The peer of memory connection `id` closed its side: the protocol
    /// hears it after any input still waiting. False if it does not read.
    pub(crate) fn memory_peer_close(&mut self, id: ConnectionId) -> bool {
        let Some(conn) = self.memory_conn_mut(id) else {
            return false;
        };
        if !conn.state.reads() || conn.peer_fin {
            return false;
        }
        conn.peer_fin = true;
        self.memory_read(id);
        true
    }

    /// Gives the protocol what waits in the inbox, at most one 64 KiB read
    /// per callback, while reading is not paused; then the peer's close.
    /// Between reads its writes are flushed and its producers told, as
    /// between a socket's reads.
    pub(crate) fn memory_read(&mut self, id: ConnectionId) {
        let now = self.now();
        while let Some(conn) = self.memory_conn_mut(id) {
            if !conn.state.reads() || conn.read_pause.any() {
                break;
            }
            if conn.inbox.is_empty() {
                if conn.peer_fin {
                    self.memory_peer_finished(id);
                }
                break;
            }
            let rest = conn.inbox.split_off(READ_BUFFER_SIZE.min(conn.inbox.len()));
            let data = std::mem::replace(&mut conn.inbox, rest);
            conn.last_activity = now;
            self.with_protocol(id, |p, t| p.data_received(t, &data));
            self.after_callback();
        }
    }

    /// Queues memory connection `id` to read what waits, if anything does
    /// and it reads again.
    pub(crate) fn memory_ready(&mut self, id: ConnectionId) {
        let waits = self
            .memory_conn(id)
            .is_some_and(|c| c.has_input() && c.state.reads() && !c.read_pause.any());
        if waits {
            self.memory_mut().ready.push(id);
        }
    }

    /// The peer's FIN reached the protocol: as on TCP, a half-closing
    /// protocol is told and may go on writing; otherwise the connection
    /// ends once the peer has read what is buffered.
    fn memory_peer_finished(&mut self, id: ConnectionId) {
        let Some(conn) = self.memory_conn_mut(id) else {
            return;
        };
        conn.peer_fin = false;
        let ConnState::Open { write, .. } = conn.state else {
            return;
        };
        let half_close = write == WriteSide::Open && self.memory_allows_half_close(id);
        let Some(conn) = self.memory_conn_mut(id) else {
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

    /// The protocol's `allows_half_close`, under the panic guard.
    fn memory_allows_half_close(&mut self, id: ConnectionId) -> bool {
        let Some(Some(protocol)) = self.memory_conn(id).map(|c| c.protocol.as_ref()) else {
            return false;
        };
        match crate::panic::catch(|| protocol.allows_half_close()) {
            Ok(allows) => allows,
            Err(why) => {
                error!("allows_half_close of connection {id} panicked: {why}; aborting it");
                self.queue_close(id, Reason::Panicked(why));
                false
            }
        }
    }

    /// Whether the peer of memory connection `id` reads what is written to
    /// it; turning it on delivers what waited.
    pub(crate) fn memory_set_peer_reading(&mut self, id: ConnectionId, reading: bool) -> bool {
        let Some(conn) = self.memory_conn_mut(id) else {
            return false;
        };
        conn.peer_reading = reading;
        if reading {
            self.memory_flush(id);
        }
        true
    }
}
