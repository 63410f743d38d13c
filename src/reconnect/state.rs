//! Where a reconnecting client is: one enum, [`Phase`], whose variants are
//! exactly the states the client can be in, and the pure transitions
//! between them. Nothing here calls the reactor or the user's code: each
//! transition says what its caller (`cycle.rs`) must do next.

use std::time::Duration;

use super::backoff::{Backoff, RandomSource};
use crate::timer::TimerId;
use crate::transport::ConnectionId;

/// Where the client is in its life. "Trying" (Twisted's `continueTrying`)
/// is not a flag beside it but a property of the variant: a client that
/// stopped trying cannot have a retry pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Not started: `connect_with` has not been called.
    Unstarted,
    /// `stop_trying` was called before `connect_with`: starting it starts
    /// and stops the user's factory, and makes no attempt.
    StoppedBeforeStart,
    /// `connect_with` runs the user's `start_factory`; the first attempt
    /// follows.
    Starting,
    /// An attempt or a connection is under way; when it ends, another
    /// attempt follows.
    Trying(UnderWay),
    /// A retry waits for its timer.
    Waiting(TimerId),
    /// `stop_trying` was called while an attempt or connection was under
    /// way: when it ends, the client is done.
    Ending(UnderWay),
    /// The client makes no more attempts and has nothing under way; the
    /// user's factory is yet to hear `stop_factory`: from the step that
    /// got here, once the user's code running now returned (the give-up
    /// hook, or `start_factory`, which cannot reach `stop_trying`), or
    /// from `stop_trying` called inside the give-up hook.
    Stopped,
    /// The user's factory heard `stop_factory` (or is hearing it): nothing
    /// more happens.
    Done,
}

/// What a client has under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UnderWay {
    /// An attempt: `None` while `connect_with`'s closure runs, before it
    /// returned the connection's id.
    Attempt(Option<ConnectionId>),
    /// A connection, made.
    Connection(ConnectionId),
}

/// What `connect_with` must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// Start the user's factory, then make the first attempt (or finish,
    /// if the client stopped trying meanwhile).
    Begin,
    /// Nothing: the client was started already.
    AlreadyStarted,
}

/// What `stop_trying` must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StopTrying {
    /// Nothing now: nothing is under way, or what is under way ends on its
    /// own, or the step under way finishes the client.
    Nothing,
    /// Abort the attempt under way: its end will finish the client.
    Abort(ConnectionId),
    /// Cancel the pending retry, then finish the client.
    CancelAndFinish(TimerId),
    /// Finish the client.
    Finish,
}

/// What happens after an attempt or connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterEnd {
    /// Schedule the next attempt after this delay, then
    /// [`retry_scheduled`](State::retry_scheduled).
    Retry(Duration),
    /// Out of retries, after this many attempts in a row: run the give-up
    /// hook, then finish the client.
    GiveUp(u32),
    /// Finish the client: it stopped trying, or the reactor is stopping.
    Finish,
    /// Nothing: the client was not waiting for an end (its connect closure
    /// panicked after connecting, say).
    Nothing,
}

/// A client's phase, with the schedule and the counters of its retries.
pub(super) struct State {
    pub(super) backoff: Backoff,
    pub(super) random: Box<dyn RandomSource>,
    pub(super) reset_on_connect: bool,
    /// Twisted's `delay`: what the last retry waited, or the initial delay.
    pub(super) delay: Duration,
    /// Twisted's `retries`: retries since the last connection was made.
    pub(super) retries: u32,
    phase: Phase,
}

impl State {
    /// An unstarted client's state, retrying on `backoff`.
    pub(super) fn new(backoff: Backoff, random: Box<dyn RandomSource>) -> State {
        State {
            backoff,
            random,
            reset_on_connect: true,
            delay: backoff.initial_delay,
            retries: 0,
            phase: Phase::Unstarted,
        }
    }

    /// Where the client is.
    #[cfg(test)]
    pub(super) fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether an ending attempt or connection is followed by another
    /// attempt (Twisted's `continueTrying`); true before the start too.
    pub(super) fn is_trying(&self) -> bool {
        match self.phase {
            Phase::Unstarted | Phase::Starting | Phase::Trying(_) | Phase::Waiting(_) => true,
            Phase::StoppedBeforeStart | Phase::Ending(_) | Phase::Stopped | Phase::Done => false,
        }
    }

    /// The connection, while one is made.
    pub(super) fn connection(&self) -> Option<ConnectionId> {
        match self.phase {
            Phase::Trying(UnderWay::Connection(id)) | Phase::Ending(UnderWay::Connection(id)) => {
                Some(id)
            }
            _ => None,
        }
    }

    /// Puts the delay and the retry count back to the start.
    pub(super) fn reset_delay(&mut self) {
        self.delay = self.backoff.initial_delay;
        self.retries = 0;
    }

    /// `connect_with` was called.
    pub(super) fn start(&mut self) -> Start {
        self.phase = match self.phase {
            Phase::Unstarted => Phase::Starting,
            Phase::StoppedBeforeStart => Phase::Stopped,
            _ => return Start::AlreadyStarted,
        };
        Start::Begin
    }

    /// `stop_trying` was called. On a client that is not trying, nothing
    /// changes (and a [`Stopped`](Phase::Stopped) one finishes).
    pub(super) fn stop_trying(&mut self) -> StopTrying {
        let (phase, then) = match self.phase {
            Phase::Unstarted => (Phase::StoppedBeforeStart, StopTrying::Nothing),
            // The attempt that follows `start_factory` finishes instead.
            Phase::Starting => (Phase::Stopped, StopTrying::Nothing),
            Phase::Trying(UnderWay::Attempt(Some(id))) => (
                Phase::Ending(UnderWay::Attempt(Some(id))),
                StopTrying::Abort(id),
            ),
            // Aborted once `connect_with`'s closure returns its id; a
            // connection made lives on.
            Phase::Trying(under_way) => (Phase::Ending(under_way), StopTrying::Nothing),
            Phase::Waiting(timer) => (Phase::Stopped, StopTrying::CancelAndFinish(timer)),
            // From the give-up hook: the factory hears `stop_factory` now.
            Phase::Stopped => (Phase::Stopped, StopTrying::Finish),
            not_trying => (not_trying, StopTrying::Nothing),
        };
        self.phase = phase;
        then
    }

    /// An attempt is due (the first, once `start_factory` returned, or a
    /// retry whose timer fired): true if it is to be made, its connect
    /// closure to run now; false if the client is to finish instead (it
    /// stopped trying, or the reactor is `stopping`).
    pub(super) fn begin_attempt(&mut self, stopping: bool) -> bool {
        match self.phase {
            Phase::Starting | Phase::Waiting(_) if !stopping => {
                self.phase = Phase::Trying(UnderWay::Attempt(None));
                true
            }
            Phase::Starting | Phase::Waiting(_) | Phase::Stopped => {
                self.phase = Phase::Stopped;
                false
            }
            _ => false,
        }
    }

    /// The attempt's connect closure panicked (or could not run): the
    /// client stops trying.
    pub(super) fn attempt_panicked(&mut self) {
        if self.phase != Phase::Done {
            self.phase = Phase::Stopped;
        }
    }

    /// The attempt's connect closure returned `id`: true if the attempt is
    /// to be aborted (`stop_trying` ran while the closure did).
    pub(super) fn attempt_started(&mut self, id: ConnectionId) -> bool {
        match self.phase {
            Phase::Trying(UnderWay::Attempt(None)) => {
                self.phase = Phase::Trying(UnderWay::Attempt(Some(id)));
                false
            }
            Phase::Ending(UnderWay::Attempt(None)) => {
                self.phase = Phase::Ending(UnderWay::Attempt(Some(id)));
                true
            }
            _ => false,
        }
    }

    /// The attempt's connection `id` was made (its protocol is about to
    /// hear `connection_made`): the delay and retry count start over,
    /// unless `reset_on_connect(false)`.
    pub(super) fn connected(&mut self, id: ConnectionId) {
        self.phase = match self.phase {
            Phase::Trying(UnderWay::Attempt(_)) => Phase::Trying(UnderWay::Connection(id)),
            Phase::Ending(UnderWay::Attempt(_)) => Phase::Ending(UnderWay::Connection(id)),
            other => other,
        };
        if self.reset_on_connect {
            self.reset_delay();
        }
    }

    /// The attempt failed or its connection ended; the reactor is
    /// `stopping` or not. Counts the retry, and draws its delay.
    pub(super) fn ended(&mut self, stopping: bool) -> AfterEnd {
        match self.phase {
            Phase::Trying(_) if !stopping => {}
            Phase::Trying(_) | Phase::Ending(_) => {
                self.phase = Phase::Stopped;
                return AfterEnd::Finish;
            }
            _ => return AfterEnd::Nothing,
        }
        self.retries += 1;
        if self
            .backoff
            .max_retries
            .is_some_and(|max| self.retries > max)
        {
            self.phase = Phase::Stopped;
            return AfterEnd::GiveUp(self.retries);
        }
        let normal = self.random.standard_normal();
        self.delay = self.backoff.next_delay(self.delay, normal);
        AfterEnd::Retry(self.delay)
    }

    /// The retry [`ended`](Self::ended) asked for waits for `timer`.
    pub(super) fn retry_scheduled(&mut self, timer: TimerId) {
        self.phase = Phase::Waiting(timer);
    }

    /// True if the user's factory is to hear `stop_factory` now: the
    /// client had stopped, and is done from here on.
    pub(super) fn finish(&mut self) -> bool {
        if self.phase != Phase::Stopped {
            return false;
        }
        self.phase = Phase::Done;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconnect::XorShift;
    use crate::timer::TimerHeap;

    fn state(max_retries: Option<u32>) -> State {
        let backoff = Backoff {
            max_retries,
            ..Backoff::default()
        };
        State::new(backoff, Box::new(XorShift::seeded(1)))
    }

    fn timer() -> TimerId {
        TimerHeap::new().insert(std::time::Instant::now(), ())
    }

    const ID: ConnectionId = crate::tcp::DEAD_ID;

    #[test]
    fn a_retry_timer_that_fires_while_the_reactor_stops_finishes_the_client() {
        let mut state = state(None);
        assert_eq!(state.start(), Start::Begin);
        assert!(state.begin_attempt(false));
        assert!(!state.attempt_started(ID));
        assert!(matches!(state.ended(false), AfterEnd::Retry(_)));
        state.retry_scheduled(timer());
        assert!(!state.begin_attempt(true));
        assert_eq!(state.phase(), Phase::Stopped);
        assert!(state.finish());
        assert!(!state.finish(), "stop_factory is heard once");
    }

    #[test]
    fn stop_trying_before_the_start_stops_at_the_start() {
        let mut state = state(None);
        assert_eq!(state.stop_trying(), StopTrying::Nothing);
        assert!(!state.is_trying());
        assert!(!state.finish(), "the factory was not started");
        assert_eq!(state.start(), Start::Begin);
        assert!(!state.begin_attempt(false));
        assert!(state.finish());
        assert_eq!(state.start(), Start::AlreadyStarted);
    }

    #[test]
    fn a_connection_made_survives_stop_trying_and_ends_the_client() {
        let mut state = state(None);
        state.start();
        state.begin_attempt(false);
        state.attempt_started(ID);
        state.connected(ID);
        assert_eq!(state.stop_trying(), StopTrying::Nothing);
        assert_eq!(state.connection(), Some(ID));
        assert_eq!(state.ended(false), AfterEnd::Finish);
        assert_eq!(state.connection(), None);
        assert!(state.finish());
    }

    #[test]
    fn stop_trying_while_connect_runs_aborts_once_the_id_is_known() {
        let mut state = state(None);
        state.start();
        state.begin_attempt(false);
        assert_eq!(state.stop_trying(), StopTrying::Nothing);
        assert!(state.attempt_started(ID), "aborted");
        assert_eq!(state.stop_trying(), StopTrying::Nothing, "not twice");
        assert_eq!(state.ended(false), AfterEnd::Finish);
    }

    #[test]
    fn past_max_retries_it_gives_up() {
        let mut state = state(Some(1));
        state.start();
        state.begin_attempt(false);
        assert!(matches!(state.ended(false), AfterEnd::Retry(_)));
        let pending = timer();
        state.retry_scheduled(pending);
        assert!(state.begin_attempt(false));
        assert_eq!(state.ended(false), AfterEnd::GiveUp(2));
        assert!(!state.is_trying());
        assert_eq!(state.retries, 2);
        assert!(state.finish());
    }
}
