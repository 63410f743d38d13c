//! `ReactorPool`: N reactors on N threads serving one port, each with its
//! own SO_REUSEPORT listener; factories built per reactor on its thread;
//! calls from one reactor to another; and a stop that drains every reactor
//! and resets none of the connections waiting in the accept queues.

mod common;
#[path = "common/listeners.rs"]
mod listeners;
#[path = "common/small_window.rs"]
mod small_window;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{client, localhost, next, pattern, roundtrip, wait_until, WAIT};
use listeners::accept_queues;
use reactor::protocols::Echo;
use reactor::{Factory, OnStop, Protocol, ReactorPool, Reason, Siblings, Transport};

/// Short connections made to see the kernel spread them. Linux picks a
/// reuseport socket by a keyed hash of each connection's addresses and
/// ports, and every connection has a new client port, so each lands on
/// either of two reactors with probability about 1/2, independently: all
/// 200 on one reactor has probability 2 × 2⁻²⁰⁰.
const CONNECTIONS: usize = 200;

/// The name of the thread running this code.
fn thread_name() -> String {
    thread::current().name().unwrap_or("unnamed").to_string()
}

/// One counter per reactor.
fn counters(n: usize) -> Arc<[AtomicUsize]> {
    (0..n).map(|_| AtomicUsize::new(0)).collect()
}

fn loads(counts: &[AtomicUsize]) -> Vec<usize> {
    counts.iter().map(|c| c.load(Ordering::SeqCst)).collect()
}

/// Waits for the pool to stop, failing the test if it takes more than
/// [`WAIT`] (a reactor left running would hang it).
fn wait_for(pool: ReactorPool) {
    let (tx, rx) = channel();
    thread::spawn(move || {
        let _ = tx.send(pool.wait());
    });
    rx.recv_timeout(WAIT)
        .expect("the pool did not stop")
        .expect("a reactor failed");
}

/// Echoes; counts its connection for the reactor that built it, and
/// whether it runs on that reactor's thread.
struct Counted {
    index: usize,
    counts: Arc<[AtomicUsize]>,
    elsewhere: Arc<AtomicUsize>,
}

impl Protocol for Counted {
    fn connection_made(&mut self, _t: &mut dyn Transport) {
        self.counts[self.index].fetch_add(1, Ordering::SeqCst);
        if thread_name() != format!("reactor-{}", self.index) {
            self.elsewhere.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        t.write(data);
    }
}

#[test]
fn two_reactors_serve_one_port_and_the_kernel_spreads_connections_to_both() {
    let pool = ReactorPool::new(2).unwrap();
    let counts = counters(2);
    let elsewhere = Arc::new(AtomicUsize::new(0));
    let (c, e) = (counts.clone(), elsewhere.clone());
    // Port 0: reactor 0 picks a free port, reactor 1 binds the same one.
    let addr = pool
        .listen_tcp(localhost(), move |siblings| {
            let (index, counts, elsewhere) = (siblings.index(), c.clone(), e.clone());
            move || Counted {
                index,
                counts: counts.clone(),
                elsewhere: elsewhere.clone(),
            }
        })
        .unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(
        accept_queues(addr.port()).len(),
        2,
        "one listening socket per reactor on {addr}"
    );
    for i in 0..CONNECTIONS {
        let mut stream = client(addr);
        let message = format!("hello {i}");
        assert_eq!(
            roundtrip(&mut stream, message.as_bytes()),
            message.as_bytes()
        );
    }
    let served = loads(&counts);
    assert_eq!(served.iter().sum::<usize>(), CONNECTIONS, "{served:?}");
    assert!(
        served.iter().all(|&n| n > 0),
        "one reactor served nothing: {served:?}"
    );
    assert_eq!(
        elsewhere.load(Ordering::SeqCst),
        0,
        "a protocol ran off its reactor's thread"
    );
    pool.stop();
    wait_for(pool);
}

/// Reports its factory's start and stop, and the thread each ran on.
struct Reporting {
    index: usize,
    tx: Sender<String>,
}

impl Factory for Reporting {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Box<dyn Protocol> {
        Box::new(Echo)
    }
    fn start_factory(&mut self) {
        let _ = self
            .tx
            .send(format!("start {} on {}", self.index, thread_name()));
    }
    fn stop_factory(&mut self) {
        let _ = self
            .tx
            .send(format!("stop {} on {}", self.index, thread_name()));
    }
}

#[test]
fn each_reactor_builds_its_own_factory_once_on_its_own_thread() {
    let pool = ReactorPool::new(2).unwrap();
    let built = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = channel();
    let record = built.clone();
    let tx = Mutex::new(tx);
    pool.listen_tcp(localhost(), move |siblings| {
        record
            .lock()
            .unwrap()
            .push(format!("built {} on {}", siblings.index(), thread_name()));
        let tx = tx.lock().unwrap().clone();
        Reporting {
            index: siblings.index(),
            tx,
        }
    })
    .unwrap();
    let mut built = built.lock().unwrap().clone();
    built.sort();
    assert_eq!(built, ["built 0 on reactor-0", "built 1 on reactor-1"]);
    pool.stop();
    wait_for(pool);
    let mut events: Vec<String> = rx.try_iter().collect();
    events.sort();
    assert_eq!(
        events,
        [
            "start 0 on reactor-0",
            "start 1 on reactor-1",
            "stop 0 on reactor-0",
            "stop 1 on reactor-1"
        ]
    );
}

/// On any input, asks a sibling reactor (through its handle) to name the
/// thread it runs on; the answer comes back to this reactor (through its
/// own handle), which writes it to this connection.
struct AskSibling {
    siblings: Siblings,
}

impl Protocol for AskSibling {
    fn data_received(&mut self, t: &mut dyn Transport, _data: &[u8]) {
        let (conn, asked) = (t.id(), self.siblings.index());
        let origin = self.siblings.own().clone();
        let (_, sibling) = self.siblings.others().next().expect("a sibling");
        sibling.call_from_thread(move |_| {
            let there = thread_name();
            origin.call_from_thread(move |r| {
                let answer = format!("asked on reactor-{asked}, answered on {there}\n");
                r.write_to(conn, answer.as_bytes());
            });
        });
    }
}

#[test]
fn a_call_through_a_siblings_handle_runs_on_that_reactor_and_answers_back() {
    let pool = ReactorPool::new(2).unwrap();
    let addr = pool
        .listen_tcp(localhost(), |siblings| {
            let siblings = siblings.clone();
            move || AskSibling {
                siblings: siblings.clone(),
            }
        })
        .unwrap();
    let mut seen = [false; 2];
    for _ in 0..CONNECTIONS {
        let mut stream = client(addr);
        stream.write_all(b"which?").unwrap();
        let mut answer = String::new();
        let mut byte = [0];
        while !answer.ends_with('\n') {
            stream.read_exact(&mut byte).unwrap();
            answer.push(byte[0] as char);
        }
        let asked = if answer.starts_with("asked on reactor-0") {
            0
        } else {
            1
        };
        let expected = format!(
            "asked on reactor-{asked}, answered on reactor-{}\n",
            1 - asked
        );
        assert_eq!(answer, expected);
        seen[asked] = true;
        if seen == [true, true] {
            break;
        }
    }
    assert_eq!(seen, [true, true], "calls went one way only");
    pool.stop();
    wait_for(pool);
}

/// The reply each client of the drain test asks for: more than the kernel
/// holds for one connection (a send buffer of at most `tcp_wmem`'s 4 MiB,
/// and the client's small window), so part of it is still in the reactor's
/// buffer when the stop begins.
const REPLY: usize = 8 << 20;

/// Sends [`REPLY`] bytes on `go`; reports which reactor it is on and,
/// once it has replied, whether the reactor still held bytes for it when
/// the stop asked, and how it ended.
struct BigReply {
    index: usize,
    tx: Sender<String>,
    replied: bool,
}

impl Protocol for BigReply {
    fn connection_made(&mut self, _t: &mut dyn Transport) {
        let _ = self.tx.send(format!("made {}", self.index));
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        if data == b"go" {
            t.write(&pattern(REPLY, 7));
            self.replied = true;
            let _ = self.tx.send(format!("wrote {}", self.index));
        }
    }
    fn stopping(&mut self, t: &mut dyn Transport) -> OnStop {
        if self.replied {
            let holds = t.buffered() > 0;
            let _ = self
                .tx
                .send(format!("stopping {} holds:{holds}", self.index));
        }
        OnStop::Close
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        if self.replied {
            let _ = self.tx.send(format!("lost {} {reason:?}", self.index));
        }
    }
}

#[test]
fn a_stop_drains_every_reactor_and_each_in_flight_reply_arrives_whole() {
    let pool = ReactorPool::new(2).unwrap();
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let addr = pool
        .listen_tcp(localhost(), move |siblings| {
            let (index, tx) = (siblings.index(), tx.lock().unwrap().clone());
            move || BigReply {
                index,
                tx: tx.clone(),
                replied: false,
            }
        })
        .unwrap();
    // One client on each reactor: connect until both have one, closing the
    // extras at once.
    let mut clients: [Option<TcpStream>; 2] = [None, None];
    for _ in 0..CONNECTIONS {
        let stream = small_window::client_with_small_window(addr);
        let made = next(&rx);
        let index: usize = made.strip_prefix("made ").unwrap().parse().unwrap();
        if clients[index].is_none() {
            clients[index] = Some(stream);
        }
        if clients.iter().all(Option::is_some) {
            break;
        }
    }
    let mut clients = clients.map(|c| c.expect("a client on each reactor"));
    for stream in &mut clients {
        stream.write_all(b"go").unwrap();
    }
    let mut wrote: Vec<String> = (0..2).map(|_| next(&rx)).collect();
    wrote.sort();
    assert_eq!(wrote, ["wrote 0", "wrote 1"]);

    pool.stop();
    let mut stopping: Vec<String> = (0..2).map(|_| next(&rx)).collect();
    stopping.sort();
    assert_eq!(stopping, ["stopping 0 holds:true", "stopping 1 holds:true"]);
    let expected = pattern(REPLY, 7);
    for stream in &mut clients {
        let mut reply = Vec::with_capacity(REPLY);
        stream
            .read_to_end(&mut reply)
            .expect("a clean end after the reply");
        assert!(
            reply == expected,
            "got {} of {REPLY} bytes, or others",
            reply.len()
        );
    }
    let mut lost: Vec<String> = (0..2).map(|_| next(&rx)).collect();
    lost.sort();
    assert_eq!(lost, ["lost 0 ReactorStopped", "lost 1 ReactorStopped"]);
    wait_for(pool);
}

/// How long a connection the stop kept open may stay silent before it is
/// closed (cleanly).
const QUIET: Duration = Duration::from_millis(200);

/// Answers the first line it receives with that line, then closes. When a
/// stop begins it stays open to do so, and is closed cleanly after
/// [`QUIET`] of silence.
#[derive(Default)]
struct AnswerLine {
    line: Vec<u8>,
}

impl Protocol for AnswerLine {
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        self.line.extend_from_slice(data);
        if self.line.ends_with(b"\n") {
            t.write(&self.line);
            t.lose_connection();
        }
    }
    fn stopping(&mut self, t: &mut dyn Transport) -> OnStop {
        t.set_idle_timeout(Some(QUIET));
        OnStop::KeepOpen
    }
}

/// Clients left waiting in the accept queues by the stop test: half send
/// a line first, half send nothing.
const QUEUED: usize = 40;

#[test]
fn a_stop_while_connections_wait_in_the_accept_queues_resets_none_of_them() {
    let pool = ReactorPool::new(2).unwrap();
    let addr = pool
        .listen_tcp(localhost(), |_| AnswerLine::default)
        .unwrap();
    // Hold each reactor inside a callback while the clients connect, so
    // they wait in the accept queues; each reactor stops as the callback
    // returns, before it polls again. (A `pool.stop()` queued behind the
    // callback would come after a turn that accepts them as usual.)
    let (entered_tx, entered) = channel();
    let mut releases = Vec::new();
    for handle in pool.handles() {
        let (release, held) = channel::<()>();
        releases.push(release);
        let entered_tx = entered_tx.clone();
        handle.call_from_thread(move |r| {
            let _ = entered_tx.send(());
            let _ = held.recv_timeout(WAIT);
            r.stop();
        });
    }
    for _ in 0..2 {
        entered
            .recv_timeout(WAIT)
            .expect("a reactor did not run the call");
    }
    let mut clients: Vec<(TcpStream, Vec<u8>)> = (0..QUEUED)
        .map(|i| {
            let mut stream = client(addr);
            let line = if i % 2 == 0 {
                format!("line {i}\n").into_bytes()
            } else {
                Vec::new()
            };
            stream.write_all(&line).unwrap();
            (stream, line)
        })
        .collect();
    wait_until("every client waits in an accept queue", || {
        accept_queues(addr.port()).iter().sum::<usize>() == QUEUED
    });
    let queues = accept_queues(addr.port());
    assert!(
        queues.iter().all(|&n| n > 0),
        "one queue is empty: {queues:?}"
    );
    for release in releases {
        let _ = release.send(());
    }
    for (stream, line) in &mut clients {
        let mut answer = Vec::new();
        match stream.read_to_end(&mut answer) {
            Ok(_) => assert_eq!(answer, *line),
            Err(e) => panic!("a queued client ({} bytes sent): {e}", line.len()),
        }
    }
    wait_for(pool);
}

#[test]
fn a_stop_of_one_reactor_stops_the_whole_pool() {
    let pool = ReactorPool::new(3).unwrap();
    let addr = pool.listen_tcp(localhost(), |_| || Echo).unwrap();
    pool.call_on(2, |r, _| r.stop()).unwrap();
    wait_for(pool);
    let refused = TcpStream::connect(addr).map(drop);
    assert_eq!(
        refused.map_err(|e| e.kind()),
        Err(io::ErrorKind::ConnectionRefused)
    );
}

#[test]
fn a_listener_that_fails_on_one_reactor_is_stopped_on_all() {
    let pool = ReactorPool::new(2).unwrap();
    let bound = Arc::new(Mutex::new(None));
    let first = bound.clone();
    let failed = pool.listen_with(
        localhost(),
        Default::default(),
        move |r, addr, options, siblings| {
            if siblings.index() == 1 {
                return Err(io::Error::other("refused for the test"));
            }
            let listener = r.listen_tcp_with(addr, || Echo, options)?;
            *first.lock().unwrap() = Some(listener.local_addr());
            Ok(listener)
        },
    );
    let error = failed.expect_err("reactor 1 failed");
    assert_eq!(error.to_string(), "reactor 1: refused for the test");
    // Reactor 0's listener was bound, then stopped: nothing listens there.
    let addr = bound.lock().unwrap().expect("reactor 0 listened");
    assert_eq!(accept_queues(addr.port()), []);
    let refused = TcpStream::connect(addr).map(drop);
    assert_eq!(
        refused.map_err(|e| e.kind()),
        Err(io::ErrorKind::ConnectionRefused)
    );
    pool.stop();
    wait_for(pool);
}
