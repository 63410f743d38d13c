//! `testing::MemoryReactor`: protocols that use the reactor, tested with no
//! socket and no real time. Each test names the mechanism it checks.

use std::cell::RefCell;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::testing::MemoryReactor;
use reactor::{
    ClientFactory, ConnectionId, Factory, ListenOptions, Protocol, Reactor, Reason, Transport,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn peer(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// What the protocols of a test did, in order.
type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn said(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.borrow_mut())
}

/// Relays each chunk to another connection through the reactor, and logs
/// its callbacks.
struct Relay {
    to: Rc<RefCell<Option<ConnectionId>>>,
    log: Log,
}

impl Protocol for Relay {
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        let to = *self.to.borrow();
        let reactor = t.reactor().expect("a reactor in memory is a reactor");
        if let Some(to) = to {
            reactor.write_to(to, data);
        }
    }

    fn connection_lost(&mut self, t: &mut dyn Transport, reason: &Reason) {
        self.log
            .borrow_mut()
            .push(format!("{} lost: {reason:?}", t.id()));
    }

    fn pause_producing(&mut self, t: &mut dyn Transport) {
        self.log.borrow_mut().push(format!("{} pause", t.id()));
        t.pause_reading();
    }

    fn resume_producing(&mut self, t: &mut dyn Transport) {
        self.log.borrow_mut().push(format!("{} resume", t.id()));
    }
}

/// Mechanism: `write_to` reaches a memory connection, behind what its own
/// protocol wrote, in order (broken: `write_to` dropping memory ids).
#[test]
fn write_to_reaches_a_memory_connection_behind_its_own_writes() {
    let mut memory = MemoryReactor::new().unwrap();
    let log = log();
    let to = Rc::new(RefCell::new(None));
    let a = memory.connect(
        Relay {
            to: to.clone(),
            log: log.clone(),
        },
        peer(40001),
    );
    let b = memory.connect(reactor::protocols::Echo, peer(40002));
    *to.borrow_mut() = Some(b);
    memory.receive(b, b"own ");
    memory.receive(a, b"relayed ");
    memory.receive(b, b"own again");
    assert_eq!(memory.take_written(b), b"own relayed own again");
    assert_eq!(memory.take_written(a), b"");
    assert_eq!(memory.connection_count(), 2);
}

/// Mechanism: the manual clock. `now()` moves exactly with `advance` and
/// not with real time; a repeating call whose clock jumps ten intervals
/// runs once, counting nine missed (broken: the clock left real).
#[test]
fn call_every_under_a_clock_that_jumps_ticks_once_and_counts_the_missed() {
    let mut memory = MemoryReactor::new().unwrap();
    let start = memory.now();
    let real = Instant::now();
    while Instant::now() == real {
        std::hint::spin_loop();
    }
    assert_eq!(
        memory.now(),
        start,
        "real time passed, the clock stood still"
    );
    let ticks = Rc::new(RefCell::new(Vec::new()));
    let seen = ticks.clone();
    let call = memory.call_every(secs(1), move |r, tick| {
        seen.borrow_mut().push((r.now() - start, tick.missed));
    });
    memory.advance(Duration::from_millis(999));
    assert_eq!(*ticks.borrow(), []);
    memory.advance(secs(10) - Duration::from_millis(999));
    assert_eq!(memory.now() - start, secs(10));
    assert_eq!(*ticks.borrow(), [(secs(10), 9)], "one call for ten ticks");
    memory.advance(secs(1));
    assert_eq!(memory.now() - start, secs(11));
    assert_eq!(ticks.borrow()[1..], [(secs(11), 0)], "back on the grid");
    assert!(call.stop(&mut memory));
    memory.advance(secs(5));
    assert_eq!(ticks.borrow().len(), 2);
}

/// Schedules a protocol timer when made and logs when it fires.
struct Ticker {
    after: Duration,
    log: Log,
}

impl Protocol for Ticker {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.call_later(self.after, 7);
    }

    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}

    fn timer_fired(&mut self, t: &mut dyn Transport, tag: u64) {
        let now = t.reactor().unwrap().now();
        self.log
            .borrow_mut()
            .push(format!("protocol timer {tag} at {now:?}"));
    }
}

/// Mechanism: `advance` runs every kind of timer that came due, in
/// deadline order, on the manual clock: protocol timers, `call_later`,
/// `call_every` ticks (broken: protocol timers not reaching memory
/// connections, or timers firing by kind rather than by deadline).
#[test]
fn advance_runs_protocol_timers_calls_and_ticks_in_deadline_order() {
    let mut memory = MemoryReactor::new().unwrap();
    let start = memory.now();
    let log = log();
    let at = |log: &Log, what: &'static str| {
        let log = log.clone();
        move |r: &mut Reactor| {
            log.borrow_mut()
                .push(format!("{what} at {:?}", r.now() - start))
        }
    };
    memory.call_later(secs(3), at(&log, "call"));
    let tick = at(&log, "tick");
    let ticked = memory.call_every_after(secs(2), secs(10), move |r, _| tick(r));
    memory.connect(
        Ticker {
            after: secs(1),
            log: log.clone(),
        },
        peer(40001),
    );
    memory.call_later(Duration::ZERO, at(&log, "zero"));
    memory.advance(Duration::ZERO);
    assert_eq!(said(&log), ["zero at 0ns"]);
    memory.advance(secs(5));
    let fired = said(&log);
    assert_eq!(fired.len(), 3, "{fired:?}");
    assert!(fired[0].starts_with("protocol timer 7 at "), "{fired:?}");
    assert_eq!(fired[1..], ["tick at 5s", "call at 5s"]);
    ticked.stop(&mut memory);
}

/// Mechanism: the write cap holds for memory connections: a `write_to`
/// from another connection that would take a peer that does not read past
/// it aborts that connection, as on TCP (broken: no cap check).
#[test]
fn a_write_to_past_the_cap_aborts_a_memory_connection_whose_peer_does_not_read() {
    let mut memory = MemoryReactor::new().unwrap();
    let log = log();
    let to = Rc::new(RefCell::new(None));
    let speaker = memory.connect(
        Relay {
            to: to.clone(),
            log: log.clone(),
        },
        peer(40001),
    );
    let listener = memory.connect(
        Relay {
            to: Rc::new(RefCell::new(None)),
            log: log.clone(),
        },
        peer(40002),
    );
    *to.borrow_mut() = Some(listener);
    memory.set_write_buffer_limit(listener, 1000);
    memory.set_write_watermarks(listener, 100, 10_000);
    memory.set_peer_reading(listener, false);
    memory.receive(speaker, &[b'a'; 600]);
    assert_eq!(memory.buffered(listener), 600);
    assert!(!memory.is_closed(listener));
    memory.receive(speaker, &[b'b'; 401]);
    assert_eq!(
        memory.close_reason(listener),
        Some(&Reason::BufferOverflow { limit: 1000 })
    );
    assert_eq!(memory.written(listener), b"", "nothing was read");
    assert!(memory.is_connected(speaker), "the writer goes on");
    assert_eq!(
        said(&log),
        [format!("{listener} lost: BufferOverflow {{ limit: 1000 }}")]
    );
}

/// Mechanism: flow control on memory connections: a peer that stops
/// reading fills the buffer past the high watermark, the protocol and the
/// producers registered for it hear `pause_producing` (and stop reading:
/// input waits), and when the peer reads again they hear
/// `resume_producing` and the waiting input is read (broken: watermarks
/// ignored, or the inbox not served on resume).
#[test]
fn a_peer_that_stops_reading_pauses_its_producers_until_it_reads() {
    let mut memory = MemoryReactor::new().unwrap();
    let log = log();
    let to = Rc::new(RefCell::new(None));
    let speaker = memory.connect(
        Relay {
            to: to.clone(),
            log: log.clone(),
        },
        peer(40001),
    );
    let slow = memory.connect(reactor::protocols::Discard, peer(40002));
    *to.borrow_mut() = Some(slow);
    memory.set_write_watermarks(slow, 10, 100);
    memory.register_producer(slow, speaker);
    memory.set_peer_reading(slow, false);
    memory.receive(speaker, &[b'x'; 100]);
    assert_eq!(
        said(&log),
        Vec::<String>::new(),
        "at the watermark, not past"
    );
    memory.receive(speaker, b"y");
    assert_eq!(said(&log), [format!("{speaker} pause")]);
    assert!(memory.is_write_buffer_full(slow));
    memory.receive(speaker, b"waits");
    assert_eq!(memory.buffered(slow), 101, "the speaker's input waited");
    assert_eq!(memory.peer_reads(slow, 91), 91);
    assert_eq!(said(&log), Vec::<String>::new(), "10 left: not below low");
    assert_eq!(memory.peer_reads(slow, 1), 1);
    assert_eq!(said(&log), [format!("{speaker} resume")]);
    assert_eq!(memory.buffered(slow), 9 + 5, "the waiting input was read");
    memory.set_peer_reading(slow, true);
    let mut expected = vec![b'x'; 100];
    expected.extend_from_slice(b"ywaits");
    assert_eq!(memory.written(slow), expected);
}

/// Counts what its factory hears.
struct Client {
    log: Log,
}

impl Factory for Client {
    fn build_protocol(&mut self, peer: SocketAddr) -> Box<dyn Protocol> {
        self.log.borrow_mut().push(format!("build for {peer}"));
        Box::new(Ticker {
            after: Duration::MAX,
            log: self.log.clone(),
        })
    }
}

impl ClientFactory for Client {
    fn client_connection_failed(&mut self, _r: &mut Reactor, reason: &Reason) {
        self.log.borrow_mut().push(format!("failed: {reason:?}"));
    }

    fn client_connection_lost(&mut self, _r: &mut Reactor, reason: &Reason) {
        self.log.borrow_mut().push(format!("lost: {reason:?}"));
    }
}

/// Mechanism: `connect_tcp` and `listen_tcp` are recorded, not done; a
/// recorded connect is completed into a memory connection, times out on
/// the manual clock, or is failed by the test, and its factory hears which
/// (broken: memory mode opening sockets, or the connect timer not reaching
/// memory connections).
#[test]
fn recorded_connects_complete_time_out_or_fail_as_the_test_says() {
    let mut memory = MemoryReactor::new().unwrap();
    let log = log();
    let server = peer(1);
    let made = memory.connect_tcp(server, Client { log: log.clone() }, secs(5));
    let timed_out = memory.connect_tcp(server, Client { log: log.clone() }, secs(5));
    let refused = memory.connect_tcp(server, Client { log: log.clone() }, secs(5));
    let asked: Vec<_> = memory.connects().iter().map(|c| (c.addr, c.id)).collect();
    assert_eq!(
        asked,
        [(server, made), (server, timed_out), (server, refused)]
    );
    memory.write_to(made, b"before ");
    assert!(memory.complete_connect(made));
    memory.write_to(made, b"after");
    assert_eq!(memory.written(made), b"before after");
    let error = Reason::from(std::io::Error::from(ErrorKind::ConnectionRefused));
    assert!(memory.fail_connect(refused, error.clone()));
    memory.advance(Duration::from_millis(4999));
    assert!(!memory.is_closed(timed_out));
    memory.advance(Duration::from_millis(1));
    assert_eq!(memory.close_reason(timed_out), Some(&Reason::TimedOut));
    memory.close(made);
    assert_eq!(
        said(&log),
        [
            format!("build for {server}"),
            format!("failed: {error:?}"),
            "failed: TimedOut".to_owned(),
            "lost: PeerClosed".to_owned(),
        ]
    );
    let listener = memory
        .listen_tcp_with(
            peer(0),
            || reactor::protocols::Echo,
            ListenOptions::default(),
        )
        .unwrap();
    assert_eq!(memory.listens().len(), 1);
    assert_eq!(memory.listens()[0].addr, peer(0), "nothing was bound");
    let id = memory.accept(&listener, peer(40000)).unwrap();
    memory.receive(id, b"echo");
    assert_eq!(memory.written(id), b"echo");
    assert!(listener.stop(&mut memory));
    assert!(memory.accept(&listener, peer(40000)).is_err());
}

/// Stops the reactor when told to, and panics when told to.
struct Commands;

impl Protocol for Commands {
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        match data {
            b"stop" => t.reactor().unwrap().stop(),
            b"panic" => panic!("told to"),
            _ => t.write(data),
        }
    }
}

/// Mechanism: a stop is recorded, and callbacks run under the panic guard
/// (broken: `stop` beginning a stop, which would end the timer pass; a
/// panic escaping to the test).
#[test]
fn a_stop_is_recorded_and_a_panicking_protocol_is_aborted_alone() {
    let mut memory = MemoryReactor::new().unwrap();
    let a = memory.connect(Commands, peer(40001));
    let b = memory.connect(Commands, peer(40002));
    assert!(!memory.stop_requested());
    memory.receive(a, b"stop");
    assert!(memory.stop_requested());
    assert!(!memory.is_stopping(), "recorded, not begun");
    let fired = Rc::new(RefCell::new(false));
    let flag = fired.clone();
    memory.call_later(secs(1), move |_| *flag.borrow_mut() = true);
    memory.advance(secs(1));
    assert!(*fired.borrow(), "timers still run");
    memory.receive(b, b"panic");
    assert!(
        matches!(memory.close_reason(b), Some(Reason::Panicked(why)) if why.contains("told to"))
    );
    memory.receive(a, b"still here");
    assert_eq!(memory.written(a), b"still here");
    assert!(memory.run().is_err(), "a reactor in memory is not run");
}

/// Sets an idle timeout and a deadline, and says when either passes.
struct Timeouts {
    log: Log,
}

impl Protocol for Timeouts {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.set_idle_timeout(Some(secs(10)));
        t.set_deadline(Some(secs(25)));
    }

    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}

    fn timeout_connection(&mut self, t: &mut dyn Transport, timeout: reactor::Timeout) {
        let now = t.reactor().unwrap().now();
        self.log.borrow_mut().push(format!("{timeout:?} {now:?}"));
    }
}

/// Mechanism: idle timeouts and deadlines run on the manual clock, input
/// counts as activity, and a deadline's grace ends in an abort (broken:
/// the idle check reading the real clock).
#[test]
fn idle_timeouts_and_deadlines_pass_on_the_manual_clock() {
    let mut memory = MemoryReactor::new().unwrap();
    let start = memory.now();
    let log = log();
    let id = memory.connect(Timeouts { log: log.clone() }, peer(40001));
    memory.advance(secs(6));
    memory.receive(id, b"activity");
    memory.advance(secs(6));
    assert_eq!(said(&log), Vec::<String>::new(), "active 6 s ago");
    memory.advance(secs(4));
    assert_eq!(said(&log), [format!("Idle {:?}", start + secs(16))]);
    memory.advance(secs(9));
    assert_eq!(said(&log), [format!("Deadline {:?}", start + secs(25))]);
    assert!(memory.is_connected(id), "the hook kept it");
    memory.advance(secs(1));
    assert_eq!(memory.close_reason(id), Some(&Reason::Aborted));
}

/// Mechanism: `advance` serves the cross-thread queue, as a turn does when
/// its waker fires (broken: `advance` not running queued calls).
#[test]
fn calls_from_other_threads_run_in_the_next_advance() {
    let mut memory = MemoryReactor::new().unwrap();
    let start = memory.now();
    let handle = memory.handle().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        handle.call_from_thread(move |r| tx.send(r.now() - start).unwrap());
    })
    .join()
    .unwrap();
    assert!(rx.try_recv().is_err(), "queued, not run");
    memory.advance(secs(2));
    assert_eq!(rx.try_recv(), Ok(secs(2)));
}
