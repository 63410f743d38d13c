//! One turn of the loop: poll, serve the ready sources, serve the
//! leftovers, fire the due timers; and the time budget that keeps one turn
//! short when callbacks are expensive.

use std::io;
use std::time::{Duration, Instant};

use log::error;
use mio::{Events, Token};

use super::{
    Reactor, Readiness, SlotId, Source, StopPhase, TimerAction, SIGNAL_TOKEN, WAKER_TOKEN,
};

/// How long one turn may serve sources before the rest wait for the next
/// turn (after a non-blocking poll, so new clients are served in between).
/// Without it, 64 peers each sending a flood of tiny lines kept a new
/// client from any answer for seconds.
pub(crate) const TURN_BUDGET: Duration = Duration::from_millis(10);

/// Sources served between two looks at the clock while serving.
const CLOCK_EVERY: u32 = 32;

/// The time a turn has spent serving sources. The clock is read every
/// [`CLOCK_EVERY`] ready sources, before each leftover and after every full
/// read, never per message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    start: Instant,
    served: u32,
    spent: bool,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            start: Instant::now(),
            served: 0,
            spent: false,
        }
    }
}

impl Budget {
    fn start(&mut self, now: Instant) {
        *self = Budget {
            start: now,
            served: 0,
            spent: false,
        };
    }

    /// Counts one source served; true once the budget is spent.
    fn tick(&mut self) -> bool {
        self.served += 1;
        if self.served % CLOCK_EVERY == 0 {
            self.spent_now()
        } else {
            self.spent
        }
    }

    /// Looks at the clock: true once the budget is spent.
    pub(crate) fn spent_now(&mut self) -> bool {
        if !self.spent && self.start.elapsed() >= TURN_BUDGET {
            self.spent = true;
        }
        self.spent
    }
}

impl Reactor {
    /// One turn: wait for readiness (no longer than the next timer or
    /// `until`; not at all if leftovers wait), serve every ready source, then
    /// the leftovers queued before this turn, then the connects that failed
    /// and the timers that are due. A stop asked for during the turn ends
    /// it after the current callback; what was not served is kept for the
    /// drain.
    pub(crate) fn turn(&mut self, events: &mut Events, until: Option<Instant>) -> io::Result<()> {
        // Closes asked for outside any callback (before `run`, say).
        self.apply_closes();
        let now = self.now();
        // Leftovers, and connects that failed at once (a UNIX path that is
        // not there, say), are served this turn: no waiting for an event.
        let timeout = if !self.again.is_empty() || !self.failed_connects.is_empty() {
            Some(Duration::ZERO)
        } else {
            let wake = match (self.timers.next_deadline(), until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            wake.map(|d| d.saturating_duration_since(now))
        };
        if let Err(e) = self.poll.poll(events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                error!("poll failed: {e}");
                return Err(e);
            }
        }
        self.turn_now = Instant::now();
        self.budget.start(self.turn_now);
        let mut deferred = std::mem::take(&mut self.deferred_events);
        for event in events.iter() {
            let readiness = Readiness::of(event);
            if self.stop == StopPhase::Asked || self.budget.tick() {
                // Edge-triggered: an event not served now will not come
                // again, so it waits.
                deferred.push((event.token(), readiness));
                continue;
            }
            self.dispatch(event.token(), readiness);
        }
        // Events that did not fit go to the head of the queue, in their
        // order: they are fresh work (a new client's first request), and
        // behind the costly leftovers they would wait a whole round.
        for &(token, readiness) in deferred.iter().rev() {
            self.defer_event(token, readiness);
        }
        deferred.clear();
        self.deferred_events = deferred;
        let leftovers = self.again.len();
        for served in 0..leftovers {
            // Once the budget is spent, the rest stay at the head of the
            // queue, ahead of those served this turn (which went to its
            // tail): round-robin, however costly each one is. At least one
            // is served every turn, so the queue always moves. Leftovers
            // are the costly sources, so the clock is read before each.
            if self.stop == StopPhase::Asked || (served > 0 && self.budget.spent_now()) {
                break;
            }
            let Some((id, readiness)) = self.again.pop_front() else {
                break;
            };
            if let Some(slot) = self.slots.get_mut(id.key as usize) {
                if slot.generation == id.generation {
                    slot.queued = false;
                }
            }
            self.dispatch(id.token(), readiness);
        }
        if self.stop != StopPhase::Asked {
            self.report_failed_connects();
            self.fire_due_timers();
        }
        Ok(())
    }

    /// Puts an event that was not served at the head of the leftover queue.
    fn defer_event(&mut self, token: Token, readiness: Readiness) {
        if token == WAKER_TOKEN || token == SIGNAL_TOKEN {
            // Not sources: served at once (a stop, a queued call).
            self.dispatch(token, readiness);
        } else {
            self.defer_to_front(SlotId::from_token(token), readiness);
        }
    }

    pub(crate) fn dispatch(&mut self, token: Token, readiness: Readiness) {
        if token == WAKER_TOKEN {
            self.run_remote_calls();
            return;
        }
        if token == SIGNAL_TOKEN {
            self.signalled();
            return;
        }
        let id = SlotId::from_token(token);
        let stopping = self.is_stopping();
        match self.slots.get(id.key as usize) {
            // Queued: the leftover pass serves it, this event adds nothing.
            Some(slot) if slot.queued && !readiness.leftover => {}
            Some(slot) if slot.generation == id.generation => match slot.source {
                Source::Conn(_) => self.conn_ready(id.into(), readiness),
                Source::Lingering(_) => self.linger_ready(id),
                Source::Custom(_) => self.source_ready(id, readiness),
                // Never registered: nothing to be ready.
                Source::Memory(_) => {}
                // Stopping: no new connections, no datagram callbacks.
                Source::Listener(_) | Source::Udp(_) if stopping => {}
                Source::Listener(_) => self.accept_ready(id),
                Source::Udp(_) => self.udp_ready(
                    id,
                    readiness.writable,
                    readiness.readable || readiness.error,
                ),
            },
            // A late event for a slot that was closed (and maybe reused)
            // during this turn.
            _ => {}
        }
        self.apply_closes();
    }

    /// Calls queued while no `run` was under way (or after the last drain
    /// ended) run in the first turn, in their place among that turn's
    /// events: the wake-up that announced them may have been consumed.
    pub(crate) fn wake_for_queued_calls(&mut self) {
        let Some(remote) = &self.remote else {
            return;
        };
        let pending = !remote
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        if pending {
            if let Err(e) = remote.waker.wake() {
                log::warn!("could not wake the reactor: {e}");
            }
        }
    }

    /// Runs the calls other threads queued, in order.
    pub(crate) fn run_remote_calls(&mut self) {
        let Some(remote) = self.remote.clone() else {
            return;
        };
        let calls = std::mem::take(&mut *remote.calls.lock().unwrap_or_else(|p| p.into_inner()));
        for call in calls {
            if let Err(why) = crate::panic::catch(|| call(self)) {
                error!("a call_from_thread callback panicked: {why}");
            }
            self.apply_closes();
        }
    }

    pub(crate) fn fire_due_timers(&mut self) {
        let now = self.now();
        let before = self.timers.next_seq();
        while self.stop != StopPhase::Asked {
            let Some((_, action)) = self.timers.pop_due(now, before) else {
                break;
            };
            match action {
                TimerAction::Call(f) => {
                    if let Err(why) = crate::panic::catch(|| f(self)) {
                        error!("a timer callback panicked: {why}");
                    }
                }
                TimerAction::Looping(looping) => self.tick(looping),
                TimerAction::Protocol { conn, tag } => self.protocol_timer(conn, tag),
                TimerAction::ConnectTimeout(conn) => self.connect_timed_out(conn),
                TimerAction::RetryAccept(listener) => self.retry_accept(listener),
                TimerAction::Datagram { endpoint, tag } => self.datagram_timer(endpoint, tag),
                TimerAction::LingerTimeout(id) => self.end_linger(id, "timed out"),
                TimerAction::IdleCheck(conn) => self.idle_check(conn),
                TimerAction::Deadline(conn) => self.deadline_passed(conn),
            }
            self.apply_closes();
        }
    }
}
