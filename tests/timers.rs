//! Timers: order, cancellation, timers made by timers, and protocols
//! scheduling calls back into themselves.

mod common;
#[path = "common/small_window.rs"]
mod small_window;

use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;
use std::sync::mpsc::{channel, Sender};
use std::time::{Duration, Instant};

use common::*;
use reactor::{Protocol, Reactor, Reason, Transport};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn timers_fire_by_deadline_then_scheduling_order_and_cancel_works() {
    let mut r = Reactor::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let push = |name: &'static str| {
        let log = log.clone();
        move |_: &mut Reactor| log.borrow_mut().push(name)
    };
    r.call_later(ms(30), push("c30"));
    r.call_later(ms(10), push("a10"));
    let cancelled = r.call_later(ms(10), push("cancelled"));
    r.call_later(ms(10), push("b10"));
    r.call_later(ms(0), push("zero"));
    r.call_later(ms(40), |r: &mut Reactor| r.stop());
    assert!(r.cancel(cancelled));
    assert!(
        !r.cancel(cancelled),
        "a cancelled timer cannot be cancelled twice"
    );
    let start = Instant::now();
    r.run().unwrap();
    assert!(start.elapsed() >= ms(40), "stop timer fired early");
    assert_eq!(*log.borrow(), ["zero", "a10", "b10", "c30"]);
}

#[test]
fn timers_scheduled_from_timers_run_on_a_later_turn_and_may_cancel() {
    let mut r = Reactor::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    r.call_later(ms(1), move |r: &mut Reactor| {
        l.borrow_mut().push("outer");
        let l2 = l.clone();
        let doomed = r.call_later(ms(5), |_: &mut Reactor| panic!("cancelled timer ran"));
        r.call_later(Duration::ZERO, move |r: &mut Reactor| {
            l2.borrow_mut().push("inner");
            assert!(r.cancel(doomed));
            let l3 = l2.clone();
            r.call_later(ms(10), move |r: &mut Reactor| {
                l3.borrow_mut().push("last");
                r.stop();
            });
        });
        l.borrow_mut().push("outer done");
    });
    r.run().unwrap();
    assert_eq!(*log.borrow(), ["outer", "outer done", "inner", "last"]);
    assert_eq!(r.pending_timers(), 0);
}

#[test]
fn a_zero_delay_timer_chain_does_not_starve_io() {
    // A timer that keeps rescheduling itself with delay 0; I/O must still be
    // served in between, so the echo below completes.
    fn spin(r: &mut Reactor) {
        r.call_later(Duration::ZERO, spin);
    }
    let server = ReactorThread::start(|r| {
        spin(r);
        Ok(r.listen_tcp(localhost(), || Echo)?.local_addr())
    });
    assert_eq!(roundtrip(&mut client(server.addr), b"alive"), b"alive");
}

#[test]
fn pending_timers_are_dropped_at_stop() {
    let mut r = Reactor::new().unwrap();
    let ran = Rc::new(RefCell::new(false));
    let flag = ran.clone();
    r.call_later(Duration::from_secs(3600), move |_: &mut Reactor| {
        *flag.borrow_mut() = true
    });
    r.call_later(ms(1), |r: &mut Reactor| r.stop());
    r.run().unwrap();
    assert_eq!(r.pending_timers(), 0);
    assert!(!*ran.borrow());
    assert_eq!(
        Rc::strong_count(&ran),
        1,
        "the dropped closure released what it held"
    );
}

/// Closes its connection after `idle` without data; data restarts the clock.
/// Twisted's `callLater(d, self.timeout)` pattern.
struct IdleClose {
    idle: Duration,
    timer: Option<reactor::TimerId>,
    tx: Sender<String>,
}

impl IdleClose {
    fn restart(&mut self, t: &mut dyn Transport) {
        if let Some(old) = self.timer.take() {
            t.cancel_timer(old);
        }
        self.timer = Some(t.call_later(self.idle, 7));
    }
}

impl Protocol for IdleClose {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.restart(t);
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        t.write(data);
        self.restart(t);
    }
    fn timer_fired(&mut self, t: &mut dyn Transport, tag: u64) {
        let _ = self.tx.send(format!("timer:{tag}"));
        t.write(b"idle, bye\n");
        t.lose_connection();
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(format!("lost:{reason:?}"));
    }
}

#[test]
fn a_protocol_timer_calls_back_into_its_own_protocol() {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let f = move || IdleClose {
            idle: ms(100),
            timer: None,
            tx: tx.clone(),
        };
        Ok(r.listen_tcp(localhost(), f)?.local_addr())
    });
    let mut c = client(server.addr);
    assert_eq!(roundtrip(&mut c, b"x"), b"x");
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"idle, bye\n");
    assert_eq!(next(&rx), "timer:7");
    assert_eq!(next(&rx), "lost:LocalClosed");
}

#[test]
fn a_protocol_timer_for_a_closed_connection_is_dropped_quietly() {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let f = move || IdleClose {
            idle: ms(50),
            timer: None,
            tx: tx.clone(),
        };
        Ok(r.listen_tcp(localhost(), f)?.local_addr())
    });
    drop(client(server.addr));
    assert_eq!(next(&rx), "lost:PeerClosed");
    // Let the 50 ms timer come due on the reactor; it must not fire.
    let waited = server.call(|r| {
        let (tx, rx) = channel();
        r.call_later(ms(120), move |_| tx.send(()).unwrap());
        rx
    });
    waited.recv_timeout(WAIT).unwrap();
    assert_quiet(&rx);
}

#[test]
fn the_testing_clock_drives_the_same_protocol_without_sockets() {
    use reactor::testing::StringTransport;
    let (tx, rx) = channel();
    let mut p = IdleClose {
        idle: Duration::from_secs(30),
        timer: None,
        tx,
    };
    let mut t = StringTransport::new();
    p.connection_made(&mut t);
    t.advance(Duration::from_secs(29), &mut p);
    p.data_received(&mut t, b"ping");
    assert_eq!(t.take(), b"ping");
    assert_eq!(t.clock().pending(), 1, "the old timer was cancelled");
    t.advance(Duration::from_secs(29), &mut p);
    assert!(!t.is_disconnecting());
    t.advance(Duration::from_secs(1), &mut p);
    assert!(t.is_disconnecting());
    assert_eq!(t.value(), b"idle, bye\n");
    assert_eq!(rx.try_recv().unwrap(), "timer:7");
}

// Finding 6: durations too large for the clock panicked (`Instant + Duration`
// overflows); they mean "never".

/// Writes `len` bytes on connecting, tells its id; reports how it ended.
struct WritesOnConnect {
    len: usize,
    ids: Sender<reactor::ConnectionId>,
    tx: Sender<String>,
}

impl Protocol for WritesOnConnect {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.write(&pattern(self.len, 61));
        let _ = self.ids.send(t.id());
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(format!("lost:{reason:?}"));
    }
}

#[test]
fn a_shutdown_grace_of_duration_max_waits_for_the_flush_and_stops_cleanly() {
    // The default cap on buffered output, and more than the kernel's
    // buffers hold.
    const LEN: usize = 16 << 20;
    let (tx, rx) = channel();
    let (ids_tx, ids) = channel();
    let server = ReactorThread::start(move |r| {
        r.set_shutdown_grace(Duration::MAX);
        let f = move || WritesOnConnect {
            len: LEN,
            ids: ids_tx.clone(),
            tx: tx.clone(),
        };
        Ok(r.listen_tcp(localhost(), f)?.local_addr())
    });
    // A small receive window: most of the reply stays in the server's buffer.
    let mut c = small_window::client_with_small_window(server.addr);
    let id = ids.recv_timeout(WAIT).unwrap();
    let mut got = read_n(&mut c, 1 << 20);
    let buffered = server.call(move |r| {
        r.stop();
        r.buffered(id)
    });
    assert!(buffered > 0, "nothing left to flush at the stop");
    c.read_to_end(&mut got).expect("a clean close");
    assert!(
        got == pattern(LEN, 61),
        "{} bytes, or different ones",
        got.len()
    );
    assert_eq!(next(&rx), "lost:ReactorStopped");
    drop(c);
    // `run` returned Ok (the thread unwraps it).
    server.stop();
    assert_quiet(&rx);
}

/// Echoes under an idle timeout or a deadline of `Duration::MAX`;
/// reports how it ended.
struct EchoUnderMaxLimit {
    deadline: bool,
    tx: Sender<String>,
}

impl Protocol for EchoUnderMaxLimit {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        if self.deadline {
            t.set_deadline(Some(Duration::MAX));
        } else {
            t.set_idle_timeout(Some(Duration::MAX));
        }
        let _ = self.tx.send("made".into());
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        t.write(data);
    }
    fn timeout_connection(&mut self, _t: &mut dyn Transport, timeout: reactor::Timeout) {
        let _ = self.tx.send(format!("timeout:{timeout:?}"));
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(format!("lost:{reason:?}"));
    }
}

fn echo_under_a_limit_of_duration_max(deadline: bool) {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let f = move || EchoUnderMaxLimit {
            deadline,
            tx: tx.clone(),
        };
        Ok(r.listen_tcp(localhost(), f)?.local_addr())
    });
    let mut c = client(server.addr);
    assert_eq!(next(&rx), "made");
    assert_eq!(roundtrip(&mut c, b"one"), b"one");
    assert_eq!(roundtrip(&mut c, b"two"), b"two");
    server.stop();
    assert_eq!(next(&rx), "lost:ReactorStopped");
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).expect("a clean close");
    assert!(rest.is_empty());
    assert_quiet(&rx);
}

#[test]
fn an_idle_timeout_of_duration_max_never_ends_the_connection() {
    echo_under_a_limit_of_duration_max(false);
}

#[test]
fn a_deadline_of_duration_max_never_ends_the_connection() {
    echo_under_a_limit_of_duration_max(true);
}

#[test]
fn a_timer_of_duration_max_never_fires_and_can_be_cancelled() {
    let mut r = Reactor::new().unwrap();
    let fired = Rc::new(RefCell::new(Vec::new()));
    let record = |name: &'static str| {
        let fired = fired.clone();
        move |_: &mut Reactor| fired.borrow_mut().push(name)
    };
    let cancelled = r.call_later(Duration::MAX, record("cancelled"));
    let _kept = r.call_later(Duration::MAX, record("kept"));
    assert_eq!(r.pending_timers(), 2);
    let outcome = Rc::new(RefCell::new(None));
    let seen = outcome.clone();
    r.call_later(ms(20), move |r: &mut Reactor| {
        *seen.borrow_mut() = Some((r.cancel(cancelled), r.cancel(cancelled)));
        r.stop();
    });
    r.run().unwrap();
    assert_eq!(*outcome.borrow(), Some((true, false)));
    assert!(fired.borrow().is_empty(), "fired: {:?}", fired.borrow());
    // The one left was dropped at the stop, releasing what it held.
    assert_eq!(r.pending_timers(), 0);
    assert_eq!(Rc::strong_count(&fired), 1);
}
