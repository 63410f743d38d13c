//! Flow control: watermarks, producers, and why reading is paused.
//!
//! A connection whose buffer passes its high watermark holds its own
//! producing, and that of every connection registered as a producer for it
//! ([`Reactor::register_producer`], Twisted's `registerProducer`), until it
//! drains below the low one. A producer held by several full consumers is
//! told `pause_producing` once and `resume_producing` once the last one
//! drains, after the callback that caused the change.

use crate::reactor::{Reactor, Readiness};
use crate::rules::{DEFAULT_HIGH_WATERMARK, DEFAULT_LOW_WATERMARK, DEFAULT_WRITE_BUFFER_LIMIT};
use crate::transport::ConnectionId;

/// A connection's buffer sizes: producing pauses at `high`, resumes below
/// `low`; a write past `cap` aborts the connection. Watermarks are kept in
/// 32 bits (saturating at 4 GiB) to keep every connection small.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteLimits {
    low: u32,
    high: u32,
    pub(crate) cap: usize,
}

impl WriteLimits {
    pub(crate) fn low(self) -> usize {
        self.low as usize
    }

    pub(crate) fn high(self) -> usize {
        self.high as usize
    }

    /// Sets the watermarks: `high` at least 1, `low` at most `high`.
    pub(crate) fn set_watermarks(&mut self, low: usize, high: usize) {
        self.high = u32::try_from(high).unwrap_or(u32::MAX).max(1);
        self.low = u32::try_from(low).unwrap_or(u32::MAX).min(self.high);
    }
}

impl Default for WriteLimits {
    fn default() -> Self {
        let mut limits = WriteLimits {
            low: 0,
            high: 0,
            cap: DEFAULT_WRITE_BUFFER_LIMIT,
        };
        limits.set_watermarks(DEFAULT_LOW_WATERMARK, DEFAULT_HIGH_WATERMARK);
        limits
    }
}

/// The connections registered as producers for one consumer: none for
/// almost every connection, so nothing is allocated until one registers.
/// Boxed on purpose: one pointer (8 bytes) in every connection instead of
/// a `Vec`'s 24, for a list nearly all connections leave empty.
#[derive(Default)]
#[allow(clippy::box_collection)]
pub(crate) struct Producers(Option<Box<Vec<ConnectionId>>>);

impl Producers {
    pub(crate) fn contains(&self, id: ConnectionId) -> bool {
        self.0.as_ref().is_some_and(|v| v.contains(&id))
    }

    pub(crate) fn push(&mut self, id: ConnectionId) {
        self.0.get_or_insert_with(Box::default).push(id);
    }

    /// Removes `id`; returns whether it was there.
    pub(crate) fn remove(&mut self, id: ConnectionId) -> bool {
        let Some(v) = &mut self.0 else {
            return false;
        };
        let Some(at) = v.iter().position(|&p| p == id) else {
            return false;
        };
        v.swap_remove(at);
        if v.is_empty() {
            self.0 = None;
        }
        true
    }

    /// Keeps the producers `keep` accepts.
    pub(crate) fn retain(&mut self, keep: impl FnMut(&ConnectionId) -> bool) {
        if let Some(v) = &mut self.0 {
            v.retain(keep);
            if v.is_empty() {
                self.0 = None;
            }
        }
    }

    pub(crate) fn into_iter(self) -> impl Iterator<Item = ConnectionId> {
        self.0.into_iter().flat_map(|v| *v)
    }
}

impl Reactor {
    /// Marks connection `id`'s buffer as over (or back under) its
    /// watermarks, holding or releasing itself and its producers.
    pub(crate) fn set_full(&mut self, id: ConnectionId, full: bool) {
        let Some(conn) = self.conn_mut(id) else {
            return self.memory_set_full(id, full);
        };
        if conn.flow.full == full {
            return;
        }
        conn.flow.full = full;
        let mut producers = std::mem::take(&mut conn.producers);
        self.hold(id, full);
        // Closed producers' ids name nothing now (or a later connection):
        // forget them.
        producers.retain(|&p| self.hold(p, full));
        if let Some(conn) = self.conn_mut(id) {
            conn.producers = producers;
        }
    }

    /// Adds (`on`) or removes one hold on `producer`'s producing; returns
    /// false if there is no such connection.
    pub(crate) fn hold(&mut self, producer: ConnectionId, on: bool) -> bool {
        let Some(conn) = self.conn_mut(producer) else {
            return self.memory_hold(producer, on);
        };
        if on {
            conn.flow.holds += 1;
        } else {
            conn.flow.holds = conn.flow.holds.saturating_sub(1);
        }
        self.flow_changed.push(producer);
        true
    }

    /// Tells each producer whose holds changed during the callbacks that
    /// just ran: `pause_producing` or `resume_producing`, once per change
    /// of the outcome. Connections not yet made are told once they are.
    pub(crate) fn apply_flow(&mut self) {
        while let Some(id) = self.flow_changed.pop() {
            let Some(conn) = self.conn_mut(id) else {
                self.memory_apply_flow(id);
                continue;
            };
            if !conn.state.is_open() {
                continue;
            }
            let Some(pause) = conn.flow.owed() else {
                continue;
            };
            conn.flow.told_paused = pause;
            if pause {
                // `pause_reading` inside `pause_producing` (the default
                // calls it) is flow control's pause, lifted by the reactor
                // when it resumes the producer: it neither undoes nor is
                // undone by the protocol's own `pause_reading`.
                self.in_flow_callback = Some(id);
                self.with_protocol(id, |p, t| p.pause_producing(t));
                self.in_flow_callback = None;
            } else {
                self.lift_flow_pause(id);
                self.with_protocol(id, |p, t| p.resume_producing(t));
            }
        }
    }

    /// Ends flow control's read pause on connection `id`; reading goes on
    /// unless the protocol paused it itself.
    fn lift_flow_pause(&mut self, id: ConnectionId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if !conn.read_pause.by_flow {
            return;
        }
        conn.read_pause.by_flow = false;
        if !conn.read_pause.any() && conn.state.reads() {
            // Edges that came while paused were not acted on, and none may
            // come again: read in the next leftover phase.
            self.defer(id.into(), Readiness::LEFTOVER);
        }
    }

    /// Registers connection `producer` as a producer for `consumer`
    /// (Twisted's `consumer.registerProducer(producer, True)`): while
    /// `consumer`'s buffer is over its high watermark, `producer`'s protocol
    /// is paused (`pause_producing`, whose default stops reading it), and it
    /// resumes once `consumer` drains below the low watermark or closes. A
    /// chat server registers a speaker for each listener it writes to, so a
    /// slow listener slows the speaker, not the server's memory. A
    /// connection may produce for many consumers and be paused by any of
    /// them; registering twice is a no-op.
    ///
    /// ```no_run
    /// # use reactor::{ConnectionId, Reactor};
    /// # fn relay(reactor: &mut Reactor, from: ConnectionId, to: ConnectionId, line: &[u8]) {
    /// reactor.write_to(to, line);
    /// if reactor.is_write_buffer_full(to) {
    ///     reactor.register_producer(to, from); // `from` pauses until `to` drains
    /// }
    /// # }
    /// ```
    pub fn register_producer(&mut self, consumer: ConnectionId, producer: ConnectionId) {
        if self.conn(consumer).is_none() {
            return self.memory_register_producer(consumer, producer);
        }
        if consumer == producer || self.conn(producer).is_none() {
            return;
        }
        let Some(conn) = self.conn_mut(consumer) else {
            return;
        };
        if conn.producers.contains(producer) {
            return;
        }
        conn.producers.push(producer);
        if conn.flow.full {
            self.hold(producer, true);
        }
    }

    /// Undoes [`register_producer`](Reactor::register_producer); a pause
    /// `consumer` held on `producer` is released.
    pub fn unregister_producer(&mut self, consumer: ConnectionId, producer: ConnectionId) {
        let Some(conn) = self.conn_mut(consumer) else {
            return self.memory_unregister_producer(consumer, producer);
        };
        if !conn.producers.remove(producer) {
            return;
        }
        if conn.flow.full {
            self.hold(producer, false);
        }
    }

    /// Stops giving connection `id`'s protocol data until
    /// [`resume_reading`](Reactor::resume_reading): the kernel's buffers fill
    /// and TCP slows the peer down. Called from `pause_producing` (as the
    /// default does), it is flow control's pause instead, which lasts until
    /// the reactor delivers `resume_producing`.
    pub fn pause_reading(&mut self, id: ConnectionId) {
        let by_flow = self.in_flow_callback == Some(id);
        if let Some(conn) = self.conn_mut(id) {
            if by_flow {
                conn.read_pause.by_flow = true;
            } else {
                conn.read_pause.by_user = true;
            }
        } else {
            self.memory_pause_reading(id, by_flow);
        }
    }

    /// Undoes [`pause_reading`](Reactor::pause_reading): reads connection
    /// `id` again, starting with what arrived meanwhile, unless flow control
    /// still holds it paused.
    pub fn resume_reading(&mut self, id: ConnectionId) {
        let Some(conn) = self.conn_mut(id) else {
            return self.memory_resume_reading(id);
        };
        if !conn.read_pause.by_user {
            return;
        }
        conn.read_pause.by_user = false;
        // Edges that came while paused were not acted on, and none may come
        // again: read in the next leftover phase. Only a connection that
        // reads: a connect under way is not readable yet.
        if !conn.read_pause.any() && conn.state.reads() {
            self.defer(id.into(), Readiness::LEFTOVER);
        }
    }
}
