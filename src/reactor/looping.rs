//! Repeating calls: Twisted's `LoopingCall`, counting the intervals it
//! skipped as `LoopingCall.withCount` does.
//!
//! A repeating call is one timer whose action owns the callback and the
//! schedule: each tick pops it, calls back, and pushes the same box again
//! for the next tick, so ticking allocates nothing. Ticks sit on a grid,
//! `origin + k × interval`; a tick that fires late (a busy turn) or a
//! callback that runs long lands past later grid points, which are skipped
//! and counted rather than run in a burst, and the next tick is the next
//! grid point after the callback returned, so the schedule never drifts.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::error;

use super::{Reactor, TimerAction};
use crate::rules::timer_deadline;
use crate::timer::TimerId;

/// What a repeating call's callback is told at each tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tick {
    /// Intervals that passed since the previous tick without a call of
    /// their own: 0 when the loop keeps up. The loop runs once for all of
    /// them (a callback that must account for each, say a rate, adds
    /// `missed + 1` intervals).
    pub missed: u64,
}

/// The callback of a repeating call.
type TickCallback = Box<dyn FnMut(&mut Reactor, Tick)>;

/// Where a repeating call is, shared by its handle and its timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoopState {
    /// Waiting for its next tick, as this timer.
    Waiting(TimerId),
    /// Its callback runs now (the timer is out of the heap).
    Calling,
    /// Stopped: by its handle, by a panic, or dropped with the reactor's
    /// timers at a stop.
    Stopped,
}

/// A handle on a repeating call made by [`Reactor::call_every`] or
/// [`Reactor::call_every_after`]: it stops the call. Dropping the handle
/// leaves the call running; clones name the same call.
#[derive(Clone)]
pub struct LoopingCall {
    state: Rc<Cell<LoopState>>,
}

impl fmt::Debug for LoopingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LoopingCall")
            .field(&self.state.get())
            .finish()
    }
}

impl LoopingCall {
    /// Stops the call on `reactor` (the one that runs it): no tick runs
    /// after this, and the callback is dropped (at once, or when it
    /// returns if it is the one stopping itself). Returns whether it was
    /// running.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let call = reactor.call_every(Duration::from_secs(1), |_, _| {});
    /// assert!(call.stop(&mut reactor));
    /// assert!(!call.is_running());
    /// assert!(!call.stop(&mut reactor), "stopped already");
    /// assert_eq!(reactor.pending_timers(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop(&self, reactor: &mut Reactor) -> bool {
        match self.state.get() {
            LoopState::Waiting(timer) => {
                self.state.set(LoopState::Stopped);
                reactor.cancel(timer)
            }
            LoopState::Calling => {
                self.state.set(LoopState::Stopped);
                true
            }
            LoopState::Stopped => false,
        }
    }

    /// Whether the call will tick again: it was not stopped, its callback
    /// did not panic, and no reactor stop dropped it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let call = reactor.call_every(Duration::from_millis(1), |r, _| r.stop());
    /// assert!(call.is_running());
    /// reactor.run()?; // a stop drops pending timers, this one too
    /// assert!(!call.is_running());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_running(&self) -> bool {
        self.state.get() != LoopState::Stopped
    }
}

/// A repeating call between ticks: what its timer action owns.
pub(crate) struct Looping {
    state: Rc<Cell<LoopState>>,
    /// When tick 0 is due.
    origin: Instant,
    interval: Duration,
    /// The grid index a tick on time would have: one past the last tick run.
    next_index: u64,
    callback: TickCallback,
}

impl Drop for Looping {
    fn drop(&mut self) {
        self.state.set(LoopState::Stopped);
    }
}

impl Looping {
    /// The grid index of the interval `at` falls in (for a zero interval,
    /// always the next one: such a call ticks once a turn, never late).
    fn index_at(&self, at: Instant) -> u64 {
        let interval = self.interval.as_nanos();
        if interval == 0 {
            return self.next_index;
        }
        let since = at.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(since / interval).unwrap_or(u64::MAX)
    }

    /// When tick `index` is due (past what the clock holds: never).
    fn due(&self, index: u64) -> Instant {
        let offset = self.interval.as_nanos().saturating_mul(u128::from(index));
        let offset = u64::try_from(offset).map_or(Duration::MAX, Duration::from_nanos);
        timer_deadline(self.origin, offset)
    }
}

impl Reactor {
    /// Calls `f` every `interval`, the first time one interval from now
    /// (Twisted's `LoopingCall.start(interval, now=False)`), until the
    /// returned handle stops it. See [`call_every_after`](Reactor::call_every_after)
    /// for what happens when the loop falls behind, for panics, and for
    /// starting at once.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let ticks = Rc::new(Cell::new(0));
    /// let seen = ticks.clone();
    /// reactor.call_every(Duration::from_millis(5), move |r, tick| {
    ///     seen.set(seen.get() + 1 + tick.missed);
    ///     if seen.get() >= 3 {
    ///         r.stop();
    ///     }
    /// });
    /// reactor.run()?;
    /// assert!(ticks.get() >= 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_every(
        &mut self,
        interval: Duration,
        f: impl FnMut(&mut Reactor, Tick) + 'static,
    ) -> LoopingCall {
        self.call_every_after(interval, interval, f)
    }

    /// Calls `f` `first` from now, then every `interval` after that, until
    /// the returned handle stops it; `first` of zero starts it at the next
    /// timer pass (Twisted's `LoopingCall.start(interval, now=True)`,
    /// except that `f` never runs inside this call).
    ///
    /// Ticks are due at `start + first + k × interval` on the reactor's
    /// clock ([`now`](Reactor::now)), so the schedule does not drift with
    /// the time callbacks take. When the loop falls behind (a busy turn
    /// delayed a tick, or the callback itself ran past later ticks), `f`
    /// runs once, and [`Tick::missed`] says how many intervals went by
    /// without their own call (Twisted's `LoopingCall.withCount`, less one);
    /// skipped ticks are never made up in a burst. A zero interval ticks
    /// once a turn.
    ///
    /// A panic in `f` is caught and logged once, and stops this call only;
    /// its callback is dropped. A reactor stop drops it with the other
    /// pending timers. While it waits it counts as one
    /// [pending timer](Reactor::pending_timers).
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let missed = Rc::new(RefCell::new(Vec::new()));
    /// let log = missed.clone();
    /// let interval = Duration::from_millis(50);
    /// // First tick now; the second one spins for 3.5 intervals.
    /// reactor.call_every_after(Duration::ZERO, interval, move |r, tick| {
    ///     log.borrow_mut().push(tick.missed);
    ///     match log.borrow().len() {
    ///         2 => {
    ///             let until = r.now() + interval * 7 / 2;
    ///             while r.now() < until {
    ///                 std::hint::spin_loop();
    ///             }
    ///         }
    ///         3 => r.stop(),
    ///         _ => {}
    ///     }
    /// });
    /// reactor.run()?;
    /// // Ticks 2, 3 and 4 passed during the second call: one call for them.
    /// assert_eq!(*missed.borrow(), [0, 0, 3]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_every_after(
        &mut self,
        first: Duration,
        interval: Duration,
        f: impl FnMut(&mut Reactor, Tick) + 'static,
    ) -> LoopingCall {
        let origin = timer_deadline(self.now(), first);
        let state = Rc::new(Cell::new(LoopState::Stopped));
        let looping = Box::new(Looping {
            state: state.clone(),
            origin,
            interval,
            next_index: 0,
            callback: Box::new(f),
        });
        let timer = self.timers.insert(origin, TimerAction::Looping(looping));
        state.set(LoopState::Waiting(timer));
        LoopingCall { state }
    }

    /// A repeating call's timer fired: run it once for every tick that came
    /// due, then wait for the next grid point after it returned.
    pub(crate) fn tick(&mut self, mut looping: Box<Looping>) {
        let index = looping.index_at(self.now()).max(looping.next_index);
        let missed = index - looping.next_index;
        looping.next_index = index.saturating_add(1);
        looping.state.set(LoopState::Calling);
        let callback = &mut looping.callback;
        if let Err(why) = crate::panic::catch(|| callback(self, Tick { missed })) {
            error!("a repeating call panicked and is stopped: {why}");
            crate::panic::drop_caught(looping, "a repeating call that panicked");
            return;
        }
        if looping.state.get() == LoopState::Stopped {
            crate::panic::drop_caught(looping, "a stopped repeating call");
            return;
        }
        let now = self.now();
        let next = looping
            .index_at(now)
            .saturating_add(1)
            .max(looping.next_index);
        // Never in the past (a zero interval's grid point is its origin): a
        // due timer rescheduled during the pass would sit at the top of the
        // heap, ahead of older due timers, and the pass would stop at it
        // every turn.
        let due = looping.due(next).max(now);
        let state = looping.state.clone();
        let timer = self.timers.insert(due, TimerAction::Looping(looping));
        state.set(LoopState::Waiting(timer));
    }
}
