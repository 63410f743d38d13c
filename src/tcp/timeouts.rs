//! Idle timeouts and deadlines (Twisted's `TimeoutMixin`).

use std::time::Duration;

use log::debug;

use super::state::{ConnState, Deadline};
use crate::protocol::Timeout;
use crate::reactor::{Reactor, TimerAction};
use crate::reason::Reason;
use crate::rules::{idle_check, DEADLINE_GRACE};
use crate::transport::ConnectionId;

impl Reactor {
    /// Sets connection `id`'s idle timeout (see
    /// [`Transport::set_idle_timeout`](crate::Transport::set_idle_timeout)).
    pub fn set_idle_timeout(&mut self, id: ConnectionId, timeout: Option<Duration>) {
        let now = self.turn_now;
        let Some(conn) = self.conn_mut(id) else {
            return self.memory_set_idle_timeout(id, timeout);
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
    /// [`Transport::set_deadline`](crate::Transport::set_deadline)).
    pub fn set_deadline(&mut self, id: ConnectionId, after: Option<Duration>) {
        let Some(conn) = self.conn_mut(id) else {
            return self.memory_set_deadline(id, after);
        };
        let old = std::mem::take(&mut conn.deadline);
        if let Some(timer) = old.timer() {
            self.cancel(timer);
        }
        if let Some(after) = after {
            let timer = self.schedule(after, TimerAction::Deadline(id));
            if let Some(conn) = self.conn_mut(id) {
                conn.deadline = Deadline::Pending(timer);
            }
        }
    }

    /// An idle check came due: quiet for the whole timeout means the
    /// protocol's `timeout_connection`, or an abort for a connection that
    /// has been flushing (to a peer that does not read) that long.
    pub(crate) fn idle_check(&mut self, id: ConnectionId) {
        let now = self.now();
        let Some(conn) = self.conn_mut(id) else {
            return self.memory_idle_check(id);
        };
        let Some((timeout, _)) = conn.idle else {
            return;
        };
        let (due, next) = idle_check(conn.last_activity, timeout, now);
        let state = conn.state;
        let timer = self.schedule(next, TimerAction::IdleCheck(id));
        if let Some(conn) = self.conn_mut(id) {
            conn.idle = Some((timeout, timer));
        }
        if !due {
            return;
        }
        match state {
            ConnState::Open { .. } => {
                self.with_protocol(id, |p, t| p.timeout_connection(t, Timeout::Idle));
            }
            ConnState::Flushing(_) => {
                debug!("connection {id} made no progress closing for {timeout:?}; aborting");
                self.queue_close(id, Reason::Aborted);
            }
            ConnState::Connecting | ConnState::AwaitingProxyHeader | ConnState::Closed => {}
        }
    }

    pub(crate) fn deadline_passed(&mut self, id: ConnectionId) {
        let Some(conn) = self.conn_mut(id) else {
            return self.memory_deadline_passed(id);
        };
        let fired = std::mem::take(&mut conn.deadline);
        match (conn.state, fired) {
            (ConnState::Open { .. }, Deadline::Pending(_)) => {
                self.with_protocol(id, |p, t| p.timeout_connection(t, Timeout::Deadline));
                let Some(conn) = self.conn_mut(id) else {
                    return;
                };
                // The hook set a new deadline: that one stands. Otherwise the
                // connection is over soon, whatever the hook did.
                if conn.deadline == Deadline::None && conn.state != ConnState::Closed {
                    let timer = self.schedule(DEADLINE_GRACE, TimerAction::Deadline(id));
                    if let Some(conn) = self.conn_mut(id) {
                        conn.deadline = Deadline::Grace(timer);
                    }
                }
            }
            (ConnState::Open { .. } | ConnState::Flushing(_), _) => {
                debug!(
                    "connection {id} still open {DEADLINE_GRACE:?} after its deadline; aborting"
                );
                self.queue_close(id, Reason::Aborted);
            }
            // The deadline of a connection waiting for its PROXY header is
            // the header's timeout.
            (ConnState::AwaitingProxyHeader, _) => self.proxy_header_late(id),
            (ConnState::Connecting | ConnState::Closed, _) => {}
        }
    }
}
