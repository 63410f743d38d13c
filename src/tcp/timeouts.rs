//! Idle timeouts and deadlines (Twisted's `TimeoutMixin`).

use std::time::{Duration, Instant};

use log::debug;

use super::state::{ConnState, Deadline};
use crate::protocol::Timeout;
use crate::reactor::{Reactor, Source, TimerAction};
use crate::reason::Reason;
use crate::rules::{idle_check, DEADLINE_GRACE};
use crate::timer::TimerId;
use crate::transport::ConnectionId;

/// The timeout state every stream connection keeps, whichever kind holds
/// it (a socket's `Conn`, or a fake reactor's `MemoryConn`): one set of
/// idle and deadline rules serves both.
struct Timing<'a> {
    state: ConnState,
    idle: &'a mut Option<(Duration, TimerId)>,
    last_activity: &'a mut Instant,
    deadline: &'a mut Deadline,
}

impl Reactor {
    /// Connection `id`'s timeout state, a socket's or a memory one's.
    fn timing(&mut self, id: ConnectionId) -> Option<Timing<'_>> {
        match self.slot_mut(id.into()) {
            Some(Source::Conn(c)) => Some(Timing {
                state: c.state,
                idle: &mut c.idle,
                last_activity: &mut c.last_activity,
                deadline: &mut c.deadline,
            }),
            Some(Source::Memory(m)) => Some(Timing {
                state: m.state,
                idle: &mut m.idle,
                last_activity: &mut m.last_activity,
                deadline: &mut m.deadline,
            }),
            _ => None,
        }
    }

    /// Sets connection `id`'s idle timeout (see
    /// [`Transport::set_idle_timeout`](crate::Transport::set_idle_timeout)).
    pub fn set_idle_timeout(&mut self, id: ConnectionId, timeout: Option<Duration>) {
        let now = self.turn_now;
        let Some(timing) = self.timing(id) else {
            return;
        };
        let old = timing.idle.take();
        *timing.last_activity = now;
        if let Some((_, timer)) = old {
            self.cancel(timer);
        }
        if let Some(timeout) = timeout {
            let timer = self.schedule(timeout, TimerAction::IdleCheck(id));
            if let Some(timing) = self.timing(id) {
                *timing.idle = Some((timeout, timer));
            }
        }
    }

    /// Sets connection `id`'s deadline, `after` from now (see
    /// [`Transport::set_deadline`](crate::Transport::set_deadline)).
    pub fn set_deadline(&mut self, id: ConnectionId, after: Option<Duration>) {
        let Some(timing) = self.timing(id) else {
            return;
        };
        let old = std::mem::take(timing.deadline);
        if let Some(timer) = old.timer() {
            self.cancel(timer);
        }
        if let Some(after) = after {
            let timer = self.schedule(after, TimerAction::Deadline(id));
            if let Some(timing) = self.timing(id) {
                *timing.deadline = Deadline::Pending(timer);
            }
        }
    }

    /// An idle check came due: quiet for the whole timeout means the
    /// protocol's `timeout_connection`, or an abort for a connection that
    /// has been flushing (to a peer that does not read) that long.
    pub(crate) fn idle_check(&mut self, id: ConnectionId) {
        let now = self.now();
        let Some(timing) = self.timing(id) else {
            return;
        };
        let Some((timeout, _)) = *timing.idle else {
            return;
        };
        let (due, next) = idle_check(*timing.last_activity, timeout, now);
        let state = timing.state;
        let timer = self.schedule(next, TimerAction::IdleCheck(id));
        if let Some(timing) = self.timing(id) {
            *timing.idle = Some((timeout, timer));
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
        let Some(timing) = self.timing(id) else {
            return;
        };
        let fired = std::mem::take(timing.deadline);
        match (timing.state, fired) {
            (ConnState::Open { .. }, Deadline::Pending(_)) => {
                self.with_protocol(id, |p, t| p.timeout_connection(t, Timeout::Deadline));
                let Some(timing) = self.timing(id) else {
                    return;
                };
                // The hook set a new deadline: that one stands. Otherwise the
                // connection is over soon, whatever the hook did.
                if *timing.deadline == Deadline::None && timing.state != ConnState::Closed {
                    let timer = self.schedule(DEADLINE_GRACE, TimerAction::Deadline(id));
                    if let Some(timing) = self.timing(id) {
                        *timing.deadline = Deadline::Grace(timer);
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
            // the header's timeout (memory connections never wait for one).
            (ConnState::AwaitingProxyHeader, _) => self.proxy_header_late(id),
            (ConnState::Connecting | ConnState::Closed, _) => {}
        }
    }
}
