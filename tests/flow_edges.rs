//! Edges of the write path and flow control that a review of issue 12's
//! change found: bytes staged in `stopping` or `connection_made` are sent
//! before the close, a connection paused from another's `pause_producing`
//! resumes, a fast producer does not hold the loop, and an echo of full
//! reads is not paused.

mod common;
#[path = "common/small_window.rs"]
mod small_window;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener as StdListener};
use std::rc::Rc;
use std::sync::mpsc::{channel, Sender};
use std::time::{Duration, Instant};

use common::{client, localhost, next, ReactorThread, WAIT};
use reactor::producer::{Progress, StreamSender};
use reactor::{ConnectionId, OnStop, Protocol, Reactor, Reason, Transport};

// ---------------------------------------------------------------------------
// 1. A goodbye written in `stopping` with the default OnStop::Close is
//    discarded and the peer is reset (close_for_stop looks only at
//    `conn.out`, not at the stage).

struct SaysGoodbye(Sender<String>);

impl Protocol for SaysGoodbye {
    fn connection_made(&mut self, _t: &mut dyn Transport) {
        let _ = self.0.send("made".into());
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn stopping(&mut self, t: &mut dyn Transport) -> OnStop {
        t.write(b"server going down\n");
        OnStop::Close
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.0.send(format!("lost:{reason:?}"));
    }
}

#[test]
fn a_goodbye_written_in_stopping_is_sent_then_a_clean_eof() {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let tx = tx.clone();
        Ok(r.listen_tcp(localhost(), move || SaysGoodbye(tx.clone()))?
            .local_addr())
    });
    let mut c = client(server.addr);
    assert_eq!(next(&rx), "made");
    server.stop();
    let lost = next(&rx);
    let mut got = Vec::new();
    let read = c.read_to_end(&mut got);
    eprintln!("server saw {lost}; client read {read:?}, got {got:?}");
    assert!(read.is_ok(), "the client was reset: {read:?}");
    assert_eq!(lost, "lost:ReactorStopped");
    assert_eq!(got, b"server going down\n");
}

// ---------------------------------------------------------------------------
// 2. A client whose peer half-closes before the connect is processed: what
//    connection_made wrote is still in the stage when the first read sees
//    the FIN, so peer_finished closes at once (out is empty), the staged
//    bytes are discarded and the peer is reset, instead of "flush, then
//    PeerClosed".

struct Greets(Rc<RefCell<Option<Reason>>>);

impl Protocol for Greets {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.write(b"hello");
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn connection_lost(&mut self, t: &mut dyn Transport, reason: &Reason) {
        *self.0.borrow_mut() = Some(reason.clone());
        if let Some(r) = t.reactor() {
            r.stop();
        }
    }
}

#[test]
fn bytes_written_in_connection_made_survive_a_fin_seen_on_the_first_read() {
    let peer = StdListener::bind(localhost()).unwrap();
    let addr = peer.local_addr().unwrap();
    let (tx, rx) = channel();
    let server = std::thread::spawn(move || {
        let (mut s, _) = peer.accept().unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        tx.send(()).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut got = Vec::new();
        let r = s.read_to_end(&mut got).map(|_| got);
        r.map_err(|e| e.kind())
    });
    let mut reactor = Reactor::new().unwrap();
    let reason = Rc::new(RefCell::new(None));
    let r2 = reason.clone();
    reactor.connect_tcp(addr, move || Greets(r2.clone()), WAIT);
    // The peer has accepted and sent its FIN before the reactor looks (on
    // loopback a FIN is in the receiver's queue once shutdown returns).
    rx.recv_timeout(WAIT).unwrap();
    reactor.run().unwrap();
    let got = server.join().unwrap();
    eprintln!("reactor saw {:?}; peer read {got:?}", reason.borrow());
    assert_eq!(*reason.borrow(), Some(Reason::PeerClosed));
    assert_eq!(got, Ok(b"hello".to_vec()));
}

// ---------------------------------------------------------------------------
// 3. `pause_reading` of *another* connection made inside pause_producing
//    is recorded as flow control's pause of that connection, which only
//    that connection's own resume_producing lifts; its resume_reading
//    (by_user false) is a no-op, so the relayed source stays paused for
//    ever (Twisted's hand-written proxy pattern).

#[derive(Default)]
struct Pair {
    source: Option<ConnectionId>,
    sink: Option<ConnectionId>,
}

/// Relays the first connection (the source) to the second (the sink),
/// pausing the source while the sink is full; says `paused` when it does.
struct Relay(Rc<RefCell<Pair>>, Sender<&'static str>);

impl Protocol for Relay {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let mut pair = self.0.borrow_mut();
        if pair.source.is_none() {
            pair.source = Some(t.id());
        } else {
            pair.sink = Some(t.id());
        }
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        let sink = self.0.borrow().sink;
        if let Some(sink) = sink {
            if sink != t.id() {
                t.reactor().unwrap().write_to(sink, data);
            }
        }
    }
    // The sink's buffer is full: stop reading the source.
    fn pause_producing(&mut self, t: &mut dyn Transport) {
        let source = self.0.borrow().source;
        if let Some(source) = source {
            if source != t.id() {
                t.reactor().unwrap().pause_reading(source);
                let _ = self.1.send("paused");
            }
        }
    }
    fn resume_producing(&mut self, t: &mut dyn Transport) {
        let source = self.0.borrow().source;
        if let Some(source) = source {
            if source != t.id() {
                t.reactor().unwrap().resume_reading(source);
            }
        }
    }
}

#[test]
fn a_source_paused_from_its_sinks_pause_producing_resumes() {
    let (tx, paused) = channel();
    let server = ReactorThread::start(move |r| {
        let pair = Rc::new(RefCell::new(Pair::default()));
        Ok(
            r.listen_tcp(localhost(), move || Relay(pair.clone(), tx.clone()))?
                .local_addr(),
        )
    });
    let mut source = client(server.addr);
    // Accepted first, so it is the source.
    common::wait_until("the source is accepted", || {
        server.call(|r| r.connection_count()) == 1
    });
    let mut sink = small_window::client_with_small_window(server.addr);
    common::wait_until("the sink is accepted", || {
        server.call(|r| r.connection_count()) == 2
    });
    const TOTAL: usize = 8 << 20;
    let writer = std::thread::spawn(move || {
        let chunk = vec![7u8; 64 * 1024];
        let mut sent = 0;
        while sent < TOTAL {
            source.write_all(&chunk).unwrap();
            sent += chunk.len();
        }
        source
    });
    // The sink's buffer fills (its client does not read yet) and the
    // source is paused.
    assert_eq!(paused.recv_timeout(WAIT), Ok("paused"));
    sink.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut got = 0;
    let mut buf = vec![0; 64 * 1024];
    while got < TOTAL {
        match sink.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => break,
        }
    }
    assert_eq!(got, TOTAL, "the relay stalled after {got} bytes");
    drop(writer.join());
}

// ---------------------------------------------------------------------------
// 4. after_callback loops "until nothing is left to flush": a producer that
//    is resumed whenever the kernel takes its chunk streams inside one
//    after_callback, with no turn budget, so timers (and every other
//    connection, and stop()) wait for the whole transfer.

struct Streams {
    sender: StreamSender<std::io::Take<std::io::Repeat>>,
    done: Rc<Cell<Option<Instant>>>,
}

impl Streams {
    fn go(&mut self, t: &mut dyn Transport) {
        if let Ok(Progress::Done) = self.sender.produce(t) {
            self.done.set(Some(Instant::now()));
            t.lose_connection();
        }
    }
}

impl Protocol for Streams {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.go(t);
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn resume_producing(&mut self, t: &mut dyn Transport) {
        self.go(t);
    }
}

#[test]
fn a_fast_producer_does_not_hold_the_loop_for_the_whole_stream() {
    const TOTAL: u64 = 2 << 30;
    let mut reactor = Reactor::new().unwrap();
    let done = Rc::new(Cell::new(None));
    let d2 = done.clone();
    let addr: SocketAddr = reactor
        .listen_tcp(localhost(), move || Streams {
            sender: StreamSender::with_length(std::io::repeat(1).take(TOTAL), TOTAL),
            done: d2.clone(),
        })
        .unwrap()
        .local_addr();
    // The connection waits in the listener's backlog until `run`.
    let reader = std::thread::spawn(move || {
        let mut c = client(addr);
        let mut buf = vec![0; 1 << 20];
        let mut got = 0u64;
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n as u64,
            }
        }
        got
    });
    let ticks = Rc::new(RefCell::new(Vec::new()));
    fn tick(r: &mut Reactor, ticks: Rc<RefCell<Vec<Instant>>>) {
        ticks.borrow_mut().push(Instant::now());
        if ticks.borrow().len() < 400 {
            r.call_later(Duration::from_millis(5), move |r| tick(r, ticks));
        }
    }
    let t2 = ticks.clone();
    reactor.call_later(Duration::ZERO, move |r| tick(r, t2));
    reactor.call_later(Duration::from_secs(60), |r| r.stop());
    let started = Instant::now();
    let r = &mut reactor;
    // Stop once the stream is done.
    fn watch(r: &mut Reactor, done: Rc<Cell<Option<Instant>>>) {
        if done.get().is_some() {
            r.stop();
        } else {
            r.call_later(Duration::from_millis(5), move |r| watch(r, done));
        }
    }
    let d3 = done.clone();
    r.call_later(Duration::ZERO, move |r| watch(r, d3));
    r.run().unwrap();
    let got = reader.join().unwrap();
    let ticks = ticks.borrow();
    let worst = ticks
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    eprintln!(
        "streamed {got} bytes in {:?}; {} ticks, worst gap between 5 ms ticks {worst:?}",
        done.get().map(|d| d - started),
        ticks.len()
    );
    assert!(
        worst < Duration::from_millis(200),
        "a 5 ms timer waited {worst:?}"
    );
}

// ---------------------------------------------------------------------------
// 5. (cost) An echo of one full 64 KiB read reaches the default 64 KiB high
//    watermark through the stage alone: pause_producing, the flush, then
//    resume_producing and a trip through the leftover queue, for every full
//    read, even though the kernel takes every byte at once.

struct CountingEcho(Rc<Cell<(u32, u32)>>);

impl Protocol for CountingEcho {
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        t.write(data);
    }
    fn pause_producing(&mut self, t: &mut dyn Transport) {
        let (p, r) = self.0.get();
        self.0.set((p + 1, r));
        t.pause_reading();
    }
    fn resume_producing(&mut self, _t: &mut dyn Transport) {
        let (p, r) = self.0.get();
        self.0.set((p, r + 1));
    }
}

#[test]
fn an_echo_of_full_reads_that_the_kernel_takes_at_once_is_not_paused() {
    let counts = Rc::new(Cell::new((0, 0)));
    let mut reactor = Reactor::new().unwrap();
    let c2 = counts.clone();
    let addr = reactor
        .listen_tcp(localhost(), move || CountingEcho(c2.clone()))
        .unwrap()
        .local_addr();
    let handle = reactor.handle().unwrap();
    let clientside = std::thread::spawn(move || {
        let mut c = client(addr);
        let msg = vec![5u8; 64 * 1024];
        let mut back = vec![0u8; 64 * 1024];
        for _ in 0..200 {
            c.write_all(&msg).unwrap();
            c.read_exact(&mut back).unwrap();
        }
        handle.stop();
    });
    reactor.run().unwrap();
    clientside.join().unwrap();
    let (pauses, resumes) = counts.get();
    eprintln!("200 echoes of 64 KiB: {pauses} pause_producing, {resumes} resume_producing");
    assert_eq!(pauses, 0);
}
