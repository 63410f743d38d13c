//! The reactor's clock and its one-shot timers: `now`, `call_later`, and
//! what can be done with a pending timer (Twisted's `IDelayedCall`:
//! `cancel`, `reset`, `delay`, `active`, `getTime`).
//!
//! One rule for time: every deadline the reactor keeps (timers, repeating
//! calls, idle checks, deadlines, connect timeouts) is counted from
//! [`Reactor::now`], and `now` reads the reactor's [`TimeSource`]. A
//! reactor in memory ([`testing::MemoryReactor`](crate::testing::MemoryReactor))
//! has a manual source that only its `advance` moves, so the same code runs
//! on real and on fake time.

use std::time::{Duration, Instant};

use super::{Reactor, TimerAction};
use crate::rules::timer_deadline;
use crate::timer::TimerId;
use crate::transport::ConnectionId;

/// Where the reactor's clock reads the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeSource {
    /// The monotonic clock, read at each call (`Instant::now()`).
    Real,
    /// A clock that stands still until a test moves it
    /// ([`MemoryReactor::advance`](crate::testing::MemoryReactor::advance)).
    Manual(Instant),
}

impl Reactor {
    /// The time on the reactor's clock (Twisted's `reactor.seconds()`): what
    /// every timer's delay is counted from, so a timer scheduled with
    /// `call_later(d, f)` comes due at `now() + d`, and what
    /// [`timer_deadline`](Reactor::timer_deadline) answers in. A repeating
    /// call ([`call_every`](Reactor::call_every)) counts its intervals on it.
    ///
    /// On a running reactor it is the monotonic clock read at the call, not
    /// a value stamped once per turn: a callback that has run for a while
    /// still schedules from the present. On a reactor in memory
    /// ([`testing::MemoryReactor`](crate::testing::MemoryReactor)) it is a
    /// manual clock that moves exactly as far as
    /// [`advance`](crate::testing::MemoryReactor::advance) says, so code that
    /// asks the reactor for the time, rather than `Instant::now()`, runs
    /// unchanged on fake time in tests.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let before = reactor.now();
    /// let timer = reactor.call_later(Duration::from_secs(5), |_| {});
    /// let due = reactor.timer_deadline(timer).unwrap();
    /// assert!(due >= before + Duration::from_secs(5));
    /// assert!(due <= reactor.now() + Duration::from_secs(5));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn now(&self) -> Instant {
        match self.time {
            TimeSource::Real => Instant::now(),
            TimeSource::Manual(now) => now,
        }
    }

    /// Moves a manual clock `by` forward (saturating where the clock ends);
    /// a real one is left alone. The turn's stamp follows, so connections'
    /// activity is stamped with the manual time too.
    pub(crate) fn advance_clock(&mut self, by: Duration) {
        if let TimeSource::Manual(now) = self.time {
            let now = timer_deadline(now, by);
            self.time = TimeSource::Manual(now);
            self.turn_now = now;
        }
    }

    /// Calls `f` with the reactor once `delay` has passed. Timers with equal
    /// deadlines fire in the order they were scheduled; a timer scheduled
    /// while timers fire waits for the next turn, so a zero-delay chain never
    /// starves I/O. A delay too large for the clock (`Duration::MAX`) means
    /// never. The returned id cancels, resets or delays the timer.
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut Reactor) + 'static,
    ) -> TimerId {
        self.schedule(delay, TimerAction::Call(Box::new(f)))
    }

    /// Calls connection `conn`'s protocol back: its
    /// [`timer_fired`](crate::Protocol::timer_fired) runs with `tag` in the
    /// timers phase of this turn (or the next, when called from a timer),
    /// as if the protocol had called
    /// [`Transport::call_later`](crate::Transport::call_later)`(Duration::ZERO, tag)`.
    /// The way code that has only the reactor, such as a
    /// [`run_in_thread`](Reactor::run_in_thread) job's `on_done`, tells a
    /// protocol that something it waits for is ready. Dropped silently if
    /// the connection is gone by then (or not made yet). The returned id
    /// cancels it.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use reactor::{Protocol, Reactor, Transport};
    ///
    /// /// Hashes what it receives on the pool; answers when the hash is back.
    /// struct Hasher {
    ///     result: Rc<RefCell<Option<u64>>>,
    /// }
    /// const HASHED: u64 = 1;
    /// impl Protocol for Hasher {
    ///     fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
    ///         let (conn, data, result) = (t.id(), data.to_vec(), self.result.clone());
    ///         t.pause_reading(); // one job at a time
    ///         let Some(reactor) = t.reactor() else { return };
    ///         let work = move || data.iter().map(|&b| u64::from(b)).sum::<u64>();
    ///         let submitted = reactor.run_in_thread(work, move |reactor, sum| {
    ///             *result.borrow_mut() = sum.ok();
    ///             reactor.call_protocol(conn, HASHED); // wake the protocol
    ///         });
    ///         if submitted.is_err() {
    ///             t.abort_connection();
    ///         }
    ///     }
    ///     fn timer_fired(&mut self, t: &mut dyn Transport, tag: u64) {
    ///         if tag == HASHED {
    ///             let sum = self.result.borrow_mut().take();
    ///             t.write(format!("{sum:?}\n").as_bytes());
    ///             t.resume_reading();
    ///         }
    ///     }
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let addr = reactor
    ///     .listen_tcp("127.0.0.1:0".parse().unwrap(), || Hasher { result: Default::default() })?
    ///     .local_addr();
    /// let handle = reactor.handle()?;
    /// let client = std::thread::spawn(move || {
    ///     use std::io::{BufRead, Write};
    ///     let mut client = std::net::TcpStream::connect(addr).unwrap();
    ///     client.write_all(&[1, 2, 3]).unwrap();
    ///     let mut line = String::new();
    ///     std::io::BufReader::new(&client).read_line(&mut line).unwrap();
    ///     handle.stop();
    ///     line
    /// });
    /// reactor.call_later(std::time::Duration::from_secs(10), |r| r.stop()); // in case
    /// reactor.run()?;
    /// assert_eq!(client.join().unwrap(), "Some(6)\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_protocol(&mut self, conn: ConnectionId, tag: u64) -> TimerId {
        self.call_protocol_later(conn, Duration::ZERO, tag)
    }

    /// [`call_protocol`](Reactor::call_protocol) once `delay` has passed:
    /// connection `conn`'s protocol's `timer_fired` runs with `tag` then,
    /// unless the connection is gone (or not made yet).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let mut reactor = reactor::Reactor::new()?;
    /// # let nowhere = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    /// # let conn = reactor.connect_tcp(nowhere, || reactor::protocols::Discard, Duration::from_secs(1));
    /// // Wakes the protocol in a second, if the connection is still there.
    /// let timer = reactor.call_protocol_later(conn, Duration::from_secs(1), 7);
    /// assert!(reactor.cancel(timer));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_protocol_later(
        &mut self,
        conn: ConnectionId,
        delay: Duration,
        tag: u64,
    ) -> TimerId {
        self.schedule(delay, TimerAction::Protocol { conn, tag })
    }

    /// Cancels a pending timer; returns whether it was still pending.
    pub fn cancel(&mut self, timer: TimerId) -> bool {
        match self.timers.cancel(timer) {
            Some(action) => {
                crate::panic::drop_caught(action, "a cancelled timer's callback");
                true
            }
            None => false,
        }
    }

    /// Makes a pending timer come due `delay` from [`now`](Reactor::now)
    /// instead (Twisted's `DelayedCall.reset`), earlier or later than it
    /// was; it keeps its id. Returns whether it was still pending (a timer
    /// that fired or was cancelled stays so). Among timers with the same
    /// deadline it ranks as if scheduled now, and one reset while timers
    /// fire waits for the next turn, as a new one would. O(log n), and it
    /// allocates nothing once the timer heap has grown to its working size.
    ///
    /// Resetting one timer on every message is the cheap way to keep a
    /// deadline moving (cheaper than `cancel` and a new `call_later`,
    /// which boxes the callback again).
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// // Stop in an hour... or rather, right away.
    /// let stop = reactor.call_later(Duration::from_secs(3600), |r| r.stop());
    /// assert!(reactor.reset_timer(stop, Duration::ZERO));
    /// reactor.run()?; // returns at once
    /// assert!(!reactor.reset_timer(stop, Duration::ZERO), "it fired");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn reset_timer(&mut self, timer: TimerId, delay: Duration) -> bool {
        let deadline = timer_deadline(self.now(), delay);
        self.timers.reschedule(timer, deadline)
    }

    /// Pushes a pending timer's deadline `by` later than it was (Twisted's
    /// `DelayedCall.delay`); it keeps its id. Returns whether it was still
    /// pending. Ranks and costs as [`reset_timer`](Reactor::reset_timer).
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let timer = reactor.call_later(Duration::from_secs(10), |_| {});
    /// let due = reactor.timer_deadline(timer).unwrap();
    /// assert!(reactor.delay_timer(timer, Duration::from_secs(5)));
    /// assert_eq!(reactor.timer_deadline(timer), Some(due + Duration::from_secs(5)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn delay_timer(&mut self, timer: TimerId, by: Duration) -> bool {
        match self.timers.deadline(timer) {
            Some(due) => self.timers.reschedule(timer, timer_deadline(due, by)),
            None => false,
        }
    }

    /// Whether a timer is still pending: not fired, not cancelled, not
    /// dropped by a stop (Twisted's `DelayedCall.active`). A timer is no
    /// longer active while its own callback runs.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let timer = reactor.call_later(Duration::from_secs(1), |_| {});
    /// assert!(reactor.is_timer_active(timer));
    /// reactor.cancel(timer);
    /// assert!(!reactor.is_timer_active(timer));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_timer_active(&self, timer: TimerId) -> bool {
        self.timers.is_active(timer)
    }

    /// When a pending timer comes due, on the reactor's clock
    /// ([`now`](Reactor::now)); `None` once it is not pending (Twisted's
    /// `DelayedCall.getTime`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let timer = reactor.call_later(Duration::from_secs(60), |_| {});
    /// let left = reactor.timer_deadline(timer).unwrap() - reactor.now();
    /// assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(59));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn timer_deadline(&self, timer: TimerId) -> Option<Instant> {
        self.timers.deadline(timer)
    }

    /// Number of timers still pending (a repeating call counts as one).
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// Schedules `action` after `delay`; a deadline past what the clock can
    /// hold means never ([`timer_deadline`]).
    pub(crate) fn schedule(&mut self, delay: Duration, action: TimerAction) -> TimerId {
        let deadline = timer_deadline(self.now(), delay);
        self.timers.insert(deadline, action)
    }
}
