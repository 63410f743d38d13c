//! A memory connection's flow control and connect timeout: the arms of
//! `tcp/flow.rs` and the connector, under the same rules (the producer
//! membrane, flow control's own read pause). Idle timeouts and deadlines
//! need no arms: `tcp/timeouts.rs` serves both kinds of connection.

use crate::reactor::Reactor;
use crate::reason::Reason;
use crate::tcp::{ConnState, Origin};
use crate::transport::ConnectionId;

impl Reactor {
    /// `set_full` for a memory connection: holds or releases itself and its
    /// producers.
    pub(crate) fn memory_set_full(&mut self, id: ConnectionId, full: bool) {
        let Some(conn) = self.memory_conn_mut(id) else {
            return;
        };
        if conn.flow.full == full {
            return;
        }
        conn.flow.full = full;
        let mut producers = std::mem::take(&mut conn.producers);
        self.hold(id, full);
        producers.retain(|&p| self.hold(p, full));
        if let Some(conn) = self.memory_conn_mut(id) {
            conn.producers = producers;
        }
    }

    /// `hold` for a memory connection; false if there is none.
    pub(crate) fn memory_hold(&mut self, producer: ConnectionId, on: bool) -> bool {
        let Some(conn) = self.memory_conn_mut(producer) else {
            return false;
        };
        if on {
            conn.flow.holds += 1;
        } else {
            conn.flow.holds = conn.flow.holds.saturating_sub(1);
        }
        self.flow_changed.push(producer);
        true
    }

    /// `apply_flow` for one memory connection: `pause_producing` or
    /// `resume_producing`, once per change; flow control's read pause is
    /// lifted before the resume.
    pub(crate) fn memory_apply_flow(&mut self, id: ConnectionId) {
        let Some(conn) = self.memory_conn_mut(id) else {
            return;
        };
        if !conn.state.is_open() {
            return;
        }
        let Some(pause) = conn.flow.owed() else {
            return;
        };
        conn.flow.told_paused = pause;
        if pause {
            self.in_flow_callback = Some(id);
            self.with_protocol(id, |p, t| p.pause_producing(t));
            self.in_flow_callback = None;
        } else {
            if conn.read_pause.by_flow {
                conn.read_pause.by_flow = false;
                self.memory_ready(id);
            }
            self.with_protocol(id, |p, t| p.resume_producing(t));
        }
    }

    /// `register_producer` with a memory connection as the consumer.
    pub(crate) fn memory_register_producer(
        &mut self,
        consumer: ConnectionId,
        producer: ConnectionId,
    ) {
        let producer_exists = self.conn(producer).is_some() || self.memory_conn(producer).is_some();
        if consumer == producer || !producer_exists {
            return;
        }
        let Some(conn) = self.memory_conn_mut(consumer) else {
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

    /// `unregister_producer` with a memory connection as the consumer.
    pub(crate) fn memory_unregister_producer(
        &mut self,
        consumer: ConnectionId,
        producer: ConnectionId,
    ) {
        let Some(conn) = self.memory_conn_mut(consumer) else {
            return;
        };
        if conn.producers.remove(producer) && conn.flow.full {
            self.hold(producer, false);
        }
    }

    /// `pause_reading` on a memory connection (`by_flow`: from inside its
    /// `pause_producing`).
    pub(crate) fn memory_pause_reading(&mut self, id: ConnectionId, by_flow: bool) {
        if let Some(conn) = self.memory_conn_mut(id) {
            if by_flow {
                conn.read_pause.by_flow = true;
            } else {
                conn.read_pause.by_user = true;
            }
        }
    }

    /// `resume_reading` on a memory connection: what waited is read once
    /// the current callback returns, unless flow control still holds it.
    pub(crate) fn memory_resume_reading(&mut self, id: ConnectionId) {
        let Some(conn) = self.memory_conn_mut(id) else {
            return;
        };
        if conn.read_pause.by_user {
            conn.read_pause.by_user = false;
            self.memory_ready(id);
        }
    }

    /// A memory connect's timeout passed before its test completed it.
    pub(crate) fn memory_connect_timed_out(&mut self, id: ConnectionId) {
        let Some(conn) = self.memory_conn_mut(id) else {
            return;
        };
        if conn.state != ConnState::Connecting {
            return;
        }
        if let Some(Origin::Client(client)) = &mut conn.origin {
            client.connect_timer = None;
        }
        self.queue_close(id, Reason::TimedOut);
    }
}
