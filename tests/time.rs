//! Time: repeating calls that fall behind, timers that are reset and
//! delayed, on the reactor, the threaded model and the testing clock.
//!
//! The repeating-call tests make the loop fall behind with callbacks that
//! spin on the reactor's clock for a set number of intervals and a half, so
//! each skipped-tick count is exact with half an interval of slack either
//! way; nothing sleeps.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use common::{client, localhost, read_n, ReactorThread};
use reactor::testing::StringTransport;
use reactor::{LoopingCall, Protocol, Reactor, TimerId, Transport};

/// The interval of the repeating calls under test: long enough that a
/// tick late by less than half of it still counts exactly, even on a
/// loaded machine that deschedules the test for tens of milliseconds (at
/// 40 ms, a load average of 14 on 2 cores made a busy turn count one tick
/// too many). `tests/memory_reactor.rs` checks the same counting on a
/// manual clock, where it is exact by construction.
const INTERVAL: Duration = Duration::from_millis(150);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Keeps the loop busy for `intervals` intervals, on the reactor's clock.
fn spin(r: &Reactor, intervals: u32) {
    let until = r.now() + INTERVAL * intervals + INTERVAL / 2;
    while r.now() < until {
        std::hint::spin_loop();
    }
}

type Log = Rc<RefCell<Vec<u64>>>;

/// Stops the reactor after a few seconds whatever happens: a broken loop
/// (one that stops early, or a panic in a callback that was to stop the
/// reactor) fails the test's assertions instead of hanging it.
fn guard(r: &mut Reactor) {
    r.call_later(Duration::from_secs(10), |r| r.stop());
}

/// A repeating call that logs each tick's `missed`, runs `at_tick(r, n)`
/// at tick number `n` (from 1), and stops the reactor after `ticks` ticks.
/// Starts the [`guard`] too.
fn logged_loop(
    r: &mut Reactor,
    first: Duration,
    ticks: usize,
    mut at_tick: impl FnMut(&mut Reactor, usize) + 'static,
) -> (Log, LoopingCall) {
    guard(r);
    let log = Log::default();
    let seen = log.clone();
    let call = r.call_every_after(first, INTERVAL, move |r, tick| {
        seen.borrow_mut().push(tick.missed);
        let n = seen.borrow().len();
        at_tick(r, n);
        if n == ticks {
            r.stop();
        }
    });
    (log, call)
}

#[test]
fn a_busy_turn_makes_the_loop_run_once_for_the_ticks_it_missed() {
    let mut r = Reactor::new().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    let o = order.clone();
    let (log, _call) = logged_loop(&mut r, Duration::ZERO, 4, move |r, n| {
        o.borrow_mut().push(format!("tick {n}"));
        if n == 2 {
            // Runs next turn, right after this tick, for 3.5 intervals:
            // ticks 2 and 3 come due meanwhile, and the one that runs
            // (late, in interval 4) stands for all three.
            let o = o.clone();
            r.call_later(Duration::ZERO, move |r| {
                o.borrow_mut().push("busy".to_string());
                spin(r, 3);
            });
        }
    });
    r.run().unwrap();
    assert_eq!(*log.borrow(), [0, 0, 2, 0]);
    assert_eq!(
        *order.borrow(),
        ["tick 1", "tick 2", "busy", "tick 3", "tick 4"]
    );
}

#[test]
fn a_callback_that_runs_long_skips_the_ticks_it_covered_then_keeps_the_grid() {
    let mut r = Reactor::new().unwrap();
    // Tick 1 (due at 1 interval) runs to 4.5 intervals: ticks 2, 3 and 4
    // are skipped, the next is at 5 intervals, then 6, on time.
    let (log, call) = logged_loop(&mut r, INTERVAL, 3, |r, n| {
        if n == 1 {
            spin(r, 3);
        }
    });
    r.run().unwrap();
    assert_eq!(*log.borrow(), [0, 3, 0]);
    assert!(
        !call.is_running(),
        "the stop dropped it with the other timers"
    );
    assert_eq!(r.pending_timers(), 0);
}

#[test]
fn a_looping_call_stopped_by_its_handle_ticks_no_more_and_is_dropped() {
    let mut r = Reactor::new().unwrap();
    let held = Rc::new(());
    let handle: Rc<RefCell<Option<LoopingCall>>> = Rc::default();
    // What stopping from the callback answered: recorded, not asserted
    // there (a panic in the callback would stop the loop too).
    let answers = Rc::new(RefCell::new(None));
    let (h, kept, a) = (handle.clone(), held.clone(), answers.clone());
    let (log, call) = logged_loop(&mut r, Duration::ZERO, usize::MAX, move |r, n| {
        let _ = &kept;
        if n == 3 {
            // Three more intervals: any further tick would be seen.
            r.call_later(INTERVAL * 3, |r| r.stop());
            let call = h.borrow_mut().take().unwrap();
            *a.borrow_mut() = Some((call.stop(r), call.is_running(), call.stop(r)));
        }
    });
    *handle.borrow_mut() = Some(call.clone());
    assert!(call.is_running());
    assert_eq!(r.pending_timers(), 2, "the loop, and the guard");
    r.run().unwrap();
    assert_eq!(*log.borrow(), [0, 0, 0]);
    // stop: it was running; is_running: no more; stop again: it was not.
    assert_eq!(*answers.borrow(), Some((true, false, false)));
    assert!(!call.is_running());
    assert_eq!(Rc::strong_count(&held), 1, "the callback was dropped");

    // Stopped from another callback before its first tick.
    let (log, call) = logged_loop(&mut r, Duration::ZERO, usize::MAX, |_, _| {});
    let c = call.clone();
    r.call_later(Duration::ZERO, move |r| assert!(c.stop(r)));
    r.call_later(INTERVAL * 2, |r| r.stop());
    // Both zero-delay timers are due in the same pass; the stop was
    // scheduled after the loop's first tick, so that tick runs first.
    r.run().unwrap();
    assert_eq!(*log.borrow(), [0]);
    assert!(!call.is_running());
}

#[test]
fn a_panicking_looping_call_stops_alone_and_is_dropped() {
    let mut r = Reactor::new().unwrap();
    let held = Rc::new(());
    let kept = held.clone();
    let panicked_ticks = Rc::new(RefCell::new(0));
    let p = panicked_ticks.clone();
    guard(&mut r);
    let doomed = r.call_every(INTERVAL, move |_, _| {
        let _ = &kept;
        *p.borrow_mut() += 1;
        if *p.borrow() == 2 {
            panic!("tick 2 fails");
        }
    });
    let d = doomed.clone();
    let h = held.clone();
    let (log, healthy) = logged_loop(&mut r, INTERVAL, 5, move |_, n| {
        if n >= 3 {
            assert!(!d.is_running(), "the panic stopped it");
            assert_eq!(Rc::strong_count(&h), 2, "its callback is dropped");
        }
    });
    r.run().unwrap();
    assert_eq!(*panicked_ticks.borrow(), 2);
    // (Its tick counts are not checked: printing the panic, with a
    // backtrace if RUST_BACKTRACE is set, may take longer than a tick.)
    assert_eq!(log.borrow().len(), 5, "the other loop went on");
    assert!(!doomed.is_running() && !healthy.is_running());
}

#[test]
fn a_zero_interval_ticks_once_a_turn_and_never_misses() {
    let mut r = Reactor::new().unwrap();
    let log = Log::default();
    let seen = log.clone();
    r.call_every(Duration::ZERO, move |_, tick| {
        seen.borrow_mut().push(tick.missed)
    });
    r.call_later(ms(20), |r| r.stop());
    r.run().unwrap();
    assert!(
        log.borrow().len() > 2,
        "ticked {} times",
        log.borrow().len()
    );
    assert!(log.borrow().iter().all(|&missed| missed == 0));
}

/// Pushes `name` to `log` when it fires.
fn push(log: &Rc<RefCell<Vec<&'static str>>>, name: &'static str) -> impl FnOnce(&mut Reactor) {
    let log = log.clone();
    move |_| log.borrow_mut().push(name)
}

#[test]
fn reset_and_delayed_timers_fire_once_at_their_new_deadlines() {
    let mut r = Reactor::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let later = r.call_later(ms(5), push(&log, "reset later"));
    let sooner = r.call_later(Duration::from_secs(3600), push(&log, "reset sooner"));
    let delayed = r.call_later(ms(10), push(&log, "delayed"));
    r.call_later(ms(30), push(&log, "marker"));
    r.call_later(ms(80), |r| r.stop());

    let before = r.now();
    assert!(r.reset_timer(later, ms(50)));
    let after = r.now();
    let due = r.timer_deadline(later).unwrap();
    assert!(before + ms(50) <= due && due <= after + ms(50));
    assert!(r.reset_timer(sooner, Duration::ZERO));
    let was = r.timer_deadline(delayed).unwrap();
    assert!(r.delay_timer(delayed, ms(30)));
    assert_eq!(r.timer_deadline(delayed), Some(was + ms(30)));
    assert!(r.is_timer_active(later) && r.is_timer_active(delayed));

    r.run().unwrap();
    assert_eq!(
        *log.borrow(),
        ["reset sooner", "marker", "delayed", "reset later"]
    );
    for timer in [later, sooner, delayed] {
        assert!(!r.is_timer_active(timer));
        assert_eq!(r.timer_deadline(timer), None);
        assert!(!r.reset_timer(timer, Duration::ZERO));
        assert!(!r.delay_timer(timer, ms(1)));
    }
    let cancelled = r.call_later(ms(1), |_| {});
    assert!(r.cancel(cancelled));
    assert!(!r.reset_timer(cancelled, Duration::ZERO) && !r.is_timer_active(cancelled));
    assert_eq!(r.pending_timers(), 0);
}

/// On `go`, resets a timer set for an hour to fire at once, and delays
/// one due in 10 ms by an hour; a third timer, at 50 ms, says `done`.
#[derive(Default)]
struct Resetter {
    hour: Option<TimerId>,
}

impl Protocol for Resetter {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.hour = Some(t.call_later(Duration::from_secs(3600), 1));
    }
    fn data_received(&mut self, t: &mut dyn Transport, _data: &[u8]) {
        let hour = self.hour.unwrap();
        let soon = t.call_later(ms(10), 2);
        let ok = t.is_timer_active(hour) && t.reset_timer(hour, Duration::ZERO);
        let ok = ok && t.delay_timer(soon, Duration::from_secs(3600));
        t.call_later(ms(50), 3);
        t.write(format!("go {ok}\n").as_bytes());
    }
    fn timer_fired(&mut self, t: &mut dyn Transport, tag: u64) {
        let active = t.is_timer_active(self.hour.unwrap());
        t.write(format!("{tag} {active}\n").as_bytes());
        if tag == 3 {
            t.lose_connection();
        }
    }
}

fn reset_timers_reach_the_protocol(addr: std::net::SocketAddr) {
    let mut c = client(addr);
    c.write_all(b"go").unwrap();
    let expected = b"go true\n1 false\n3 false\n";
    assert_eq!(read_n(&mut c, expected.len()), expected);
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"", "the delayed timer never fired");
}

#[test]
fn a_protocol_resets_and_delays_its_timers_on_the_reactor() {
    let server =
        ReactorThread::start(|r| Ok(r.listen_tcp(localhost(), Resetter::default)?.local_addr()));
    reset_timers_reach_the_protocol(server.addr);
}

#[test]
fn a_protocol_resets_and_delays_its_timers_on_the_threaded_model() {
    let server = reactor::threaded::listen_tcp(localhost(), Resetter::default).unwrap();
    reset_timers_reach_the_protocol(server.local_addr());
    server.shutdown();
}

#[test]
fn the_testing_clock_resets_and_delays_protocol_timers() {
    let mut t = StringTransport::new();
    let mut p = Resetter::default();
    p.connection_made(&mut t);
    p.data_received(&mut t, b"go");
    t.advance(Duration::ZERO, &mut p);
    assert_eq!(t.take(), b"go true\n1 false\n");
    t.advance(ms(49), &mut p);
    assert_eq!(t.take(), b"");
    t.advance(ms(1), &mut p);
    assert_eq!(t.take(), b"3 false\n");
    assert_eq!(t.clock().pending(), 1, "the delayed one waits an hour");
    t.advance(Duration::from_secs(3600), &mut p);
    assert_eq!(t.take(), b"2 false\n");
}
