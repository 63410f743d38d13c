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

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, error, warn};

use crate::protocol::Protocol;
use crate::reactor::{Reactor, Slot, Source};
use crate::reason::Reason;
use crate::tcp::{
    ClientOrigin, ConnState, ConnTransport, Deadline, Ending, Flow, Origin, Peer, Producers,
    QueuedClose, ReadPause, ReadSide, WriteLimits, WriteSide,
};
use crate::timer::TimerId;
use crate::transport::{ConnectionId, Transport};

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
    pub(super) fn new(peer: SocketAddr, local: SocketAddr, state: ConnState, now: Instant) -> Self {
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
        let peer = Peer::Ip(conn.peer);
        let Some(mut protocol) = conn.protocol.take() else {
            return false;
        };
        let outcome = crate::panic::catch(|| {
            f(
                &mut *protocol,
                &mut ConnTransport::with_route(self, id, &peer, false),
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
            // Memory connections never wait for a PROXY header.
            ConnState::Connecting | ConnState::AwaitingProxyHeader => {
                self.queue_close(id, Reason::Aborted)
            }
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
            Some(Origin::Accepted(listener)) => {
                self.release_admission(Some(listener), &Peer::Ip(peer))
            }
            Some(Origin::Client(origin)) => {
                // A connect in memory never dials (nothing is looked up).
                let ClientOrigin {
                    factory,
                    connect_timer,
                    ..
                } = *origin;
                if let Some(timer) = connect_timer {
                    self.cancel(timer);
                }
                client = Some(factory);
            }
            // Nor makes connection attempts, nor is stdio.
            Some(Origin::Attempt(_) | Origin::Stdio) | None => {}
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
                    &mut ConnTransport::with_route(self, id, &Peer::Ip(peer), false),
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
}
