//! Issue 12, finding 11: writes made during one callback are coalesced and
//! flushed with one system call when it returns, and a flood of tiny lines
//! from many peers does not keep a new peer waiting.
//!
//! System calls are counted by strace attached to the reactor's thread (or
//! to an example server's process): Rust's `TcpStream` reads and writes
//! with `recv` and `send`, which the kernel's per-task I/O accounting
//! (`/proc/PID/io`, `syscr`/`syscw`) does not count. Without strace these
//! tests fail and say so.
//!
//! The tests of this file run one at a time ([`serial`]): each counts or
//! times one server, and the flood would starve the others of CPU.

mod common;
#[path = "common/programs.rs"]
mod programs;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{client, listening, pattern, read_n, roundtrip, serial, WAIT};
use reactor::{ConnectionId, Protocol, Transport};

/// The calls that move bytes through a descriptor, as strace names them.
const READS: [&str; 4] = ["read", "readv", "recvfrom", "recvmsg"];
const WRITES: [&str; 4] = ["write", "writev", "sendto", "sendmsg"];

/// Socket reads and writes counted while strace was attached, on every
/// descriptor but stdin, stdout and stderr (a server's logs).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    reads: usize,
    writes: usize,
}

/// strace attached to one thread, or to every thread of a process, logging
/// the calls in [`READS`] and [`WRITES`] to a file.
struct Strace {
    child: Child,
    log: PathBuf,
}

impl Strace {
    /// Attaches to thread `tid` alone (a reactor running in this process).
    fn thread(tid: u32) -> Strace {
        Strace::attach(&["-p", &tid.to_string()])
    }

    /// Attaches to every thread of process `pid` (an example server).
    fn process(pid: u32) -> Strace {
        Strace::attach(&["-f", "-p", &pid.to_string()])
    }

    /// Starts strace and returns once it says it is attached: every call
    /// after that is in its log.
    fn attach(target: &[&str]) -> Strace {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let log = std::env::temp_dir().join(format!(
            "reactor-coalescing-{}-{}.strace",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let calls = format!("trace={},{}", READS.join(","), WRITES.join(","));
        let mut child = Command::new("strace")
            .args(["-s", "0", "-e", &calls, "-e", "signal=none", "-o"])
            .arg(&log)
            .args(target)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect(
                "these tests count system calls with strace: install it (apt-get install strace)",
            );
        let stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let (tx, rx) = channel();
        thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut said = Vec::new();
        loop {
            match rx.recv_timeout(WAIT) {
                Ok(line) if line.contains("attached") => break,
                Ok(line) => said.push(line),
                Err(_) => panic!("strace did not attach; it said {said:?}"),
            }
        }
        Strace { child, log }
    }

    /// Detaches (SIGINT makes strace detach and finish its log) and counts.
    fn finish(mut self) -> Counts {
        let pid = self.child.id().to_string();
        let interrupted = Command::new("kill").args(["-INT", &pid]).status();
        assert!(interrupted.is_ok_and(|s| s.success()), "cannot stop strace");
        let status = self.child.wait().expect("wait for strace");
        // strace detaches, then ends by the signal it was sent.
        assert!(
            status.success() || status.signal() == Some(2),
            "strace: {status}"
        );
        let log = std::fs::read_to_string(&self.log).expect("strace's log");
        let _ = std::fs::remove_file(&self.log);
        count(&log)
    }
}

impl Drop for Strace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Counts the calls in a strace log on descriptors above 2. A call strace
/// saw begin and end in two lines (`<unfinished ...>`, then `<... resumed>`)
/// counts once, by its first line.
fn count(log: &str) -> Counts {
    let mut counts = Counts::default();
    for line in log.lines() {
        // With -f, each line starts with the thread's id.
        let call = line.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
        let Some((name, args)) = call.split_once('(') else {
            continue;
        };
        let fd: Option<u32> = args
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|digits| digits.parse().ok());
        if !fd.is_some_and(|fd| fd > 2) {
            continue;
        }
        if READS.contains(&name) {
            counts.reads += 1;
        } else if WRITES.contains(&name) {
            counts.writes += 1;
        }
    }
    counts
}

/// The id of the reactor thread that runs `server`, as the kernel knows it.
fn reactor_tid(server: &common::ReactorThread) -> u32 {
    let link = server
        .call(|_| std::fs::read_link("/proc/thread-self"))
        .expect("/proc/thread-self");
    // "PID/task/TID"
    link.file_name()
        .and_then(|tid| tid.to_str())
        .and_then(|tid| tid.parse().ok())
        .unwrap_or_else(|| panic!("unexpected /proc/thread-self: {}", link.display()))
}

/// Writes its greeting in three pieces, then every byte it receives back
/// as a write of its own; counts its callbacks.
struct Scatters(Arc<AtomicUsize>);

impl Protocol for Scatters {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        for piece in [&b"hel"[..], b"lo", b"\n"] {
            transport.write(piece);
        }
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        for byte in data.chunks(1) {
            transport.write(byte);
        }
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Messages each client sends, one at a time, each answered before the
/// next: small, so the kernel always takes a whole answer at once.
const MESSAGES: usize = 50;
const MESSAGE_LEN: usize = 100;

#[test]
fn the_writes_of_one_callback_go_out_in_one_write_system_call() {
    let _serial = serial();
    let callbacks = Arc::new(AtomicUsize::new(0));
    let server = {
        let callbacks = callbacks.clone();
        listening(move || Scatters(callbacks.clone()))
    };
    let strace = Strace::thread(reactor_tid(&server));
    let mut s = client(server.addr);
    assert_eq!(read_n(&mut s, 6), b"hello\n");
    for i in 0..MESSAGES {
        let message = pattern(MESSAGE_LEN, i as u64 + 1);
        assert!(roundtrip(&mut s, &message) == message, "message {i}");
    }
    let counts = strace.finish();
    let callbacks = callbacks.load(Ordering::SeqCst);
    assert_eq!(callbacks, 1 + MESSAGES);
    assert_eq!(
        counts,
        Counts {
            reads: MESSAGES,
            writes: callbacks
        },
        "one read per message and one write per callback, for {} writes of 1 to 3 bytes",
        3 + MESSAGES * MESSAGE_LEN
    );
}

/// Writes every byte it receives, one write each, to every member: itself
/// and the others (through the reactor).
struct Broadcasts(Arc<Mutex<Vec<ConnectionId>>>);

impl Protocol for Broadcasts {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        self.0.lock().unwrap().push(transport.id());
    }
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        let me = transport.id();
        let others: Vec<ConnectionId> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(|&id| id != me)
            .collect();
        for byte in data.chunks(1) {
            transport.write(byte);
            let reactor = transport.reactor().expect("a reactor transport");
            for &other in &others {
                reactor.write_to(other, byte);
            }
        }
    }
}

#[test]
fn the_writes_of_one_callback_to_another_connection_go_out_in_one_write_system_call_too() {
    let _serial = serial();
    let members = Arc::new(Mutex::new(Vec::new()));
    let server = {
        let members = members.clone();
        listening(move || Broadcasts(members.clone()))
    };
    let mut listener = client(server.addr);
    let mut speaker = client(server.addr);
    common::wait_until("both connections are made", || {
        members.lock().unwrap().len() == 2
    });
    let strace = Strace::thread(reactor_tid(&server));
    for i in 0..MESSAGES {
        let message = pattern(MESSAGE_LEN, i as u64 + 1);
        assert!(roundtrip(&mut speaker, &message) == message, "message {i}");
        assert!(read_n(&mut listener, MESSAGE_LEN) == message, "message {i}");
    }
    let counts = strace.finish();
    assert_eq!(
        counts,
        Counts {
            reads: MESSAGES,
            writes: 2 * MESSAGES
        },
        "one read per message and one write per connection written to, for {} writes of a byte",
        2 * MESSAGES * MESSAGE_LEN
    );
}

#[test]
fn an_echo_costs_one_read_and_one_write_per_message() {
    let _serial = serial();
    let server = listening(|| reactor::protocols::Echo);
    let mut s = client(server.addr);
    // The connection is made before counting starts.
    assert_eq!(roundtrip(&mut s, b"warm up"), b"warm up");
    let strace = Strace::thread(reactor_tid(&server));
    let messages = 200;
    for i in 0..messages {
        let message = pattern(1 + i % 1000, i as u64 + 1);
        assert!(roundtrip(&mut s, &message) == message, "message {i}");
    }
    let counts = strace.finish();
    assert_eq!(
        counts,
        Counts {
            reads: messages,
            writes: messages
        }
    );
}

/// Empty lines, CRLF-terminated, sent in one burst to a line server.
const FLOOD_BYTES: usize = 1 << 20;
const FLOOD_LINES: usize = FLOOD_BYTES / 2;

/// Starts example `name`, attaches strace to it, sends [`FLOOD_LINES`]
/// empty CRLF lines in one burst and half-closes; returns everything the
/// server answered before its close, and its socket calls.
fn flood_example(name: &str) -> (Vec<u8>, Counts) {
    let server = programs::Server::start(name);
    let strace = Strace::process(server.process.0.id());
    let mut reader = programs::connect(server.addr);
    let mut writer = reader.try_clone().unwrap();
    let sender = thread::spawn(move || {
        writer.write_all(&b"\r\n".repeat(FLOOD_LINES)).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut answers = Vec::new();
    reader
        .read_to_end(&mut answers)
        .expect("every answer, then a clean close");
    sender.join().expect("the flood was sent");
    let counts = strace.finish();
    drop(server);
    (answers, counts)
}

/// At most this many lines per write on average, or the writes were not
/// coalesced (before, each line cost a write).
const LINES_PER_WRITE_AT_LEAST: usize = 100;

#[test]
fn upper_server_answers_a_flood_of_empty_lines_with_far_fewer_writes_than_lines() {
    let _serial = serial();
    let (answers, counts) = flood_example("upper_server");
    assert!(
        answers == b"\r\n".repeat(FLOOD_LINES),
        "{} bytes of answers, not {FLOOD_LINES} empty lines",
        answers.len()
    );
    assert!(
        counts.writes <= FLOOD_LINES / LINES_PER_WRITE_AT_LEAST,
        "{} write calls for {FLOOD_LINES} lines ({counts:?})",
        counts.writes
    );
    eprintln!("upper_server: {FLOOD_LINES} lines, {counts:?}");
}

/// `[YYYY-MM-DD HH:MM:SS] `, the stamp before each answer.
const STAMP: usize = 22;

/// Whether `stamp` is `[YYYY-MM-DD HH:MM:SS] `.
fn is_stamp(stamp: &[u8]) -> bool {
    stamp.len() == STAMP
        && stamp.iter().enumerate().all(|(i, &b)| match i {
            0 => b == b'[',
            5 | 8 => b == b'-',
            11 | 21 => b == b' ',
            14 | 17 => b == b':',
            20 => b == b']',
            _ => b.is_ascii_digit(),
        })
}

/// `[YYYY-MM-DD HH:MM:SS] \r\n`
const STAMPED_EMPTY_LINE: usize = STAMP + 2;

#[test]
fn line_timestamp_server_answers_a_flood_of_empty_lines_with_far_fewer_writes_than_lines() {
    let _serial = serial();
    let (answers, counts) = flood_example("line_timestamp_server");
    assert_eq!(answers.len(), FLOOD_LINES * STAMPED_EMPTY_LINE);
    for (i, answer) in answers.chunks(STAMPED_EMPTY_LINE).enumerate() {
        assert!(
            is_stamp(&answer[..STAMP]) && answer.ends_with(b"\r\n"),
            "answer {i}: {:?}",
            String::from_utf8_lossy(answer)
        );
    }
    assert!(
        counts.writes <= FLOOD_LINES / LINES_PER_WRITE_AT_LEAST,
        "{} write calls for {FLOOD_LINES} lines ({counts:?})",
        counts.writes
    );
    eprintln!("line_timestamp_server: {FLOOD_LINES} lines, {counts:?}");
}

/// Clients flooding the server at once, as in the issue.
const FLOODERS: usize = 64;
/// Each flooder sends at most this much.
const FLOOD_LIMIT: usize = 64 << 20;
/// How long every flooder may wait for its first answer: served in turn,
/// a read's worth of lines each (64 KiB, about 25 ms of work in a release
/// build and 85 ms in a debug one), all 64 are answered within 1 s (release)
/// or 6 s (debug).
const RAMP_UP: Duration = Duration::from_secs(10);
/// The longest a flood runs, whatever happens.
const FLOOD_TIME: Duration = Duration::from_secs(14);
/// New clients timed while the floods run.
const PROBES: usize = 5;
/// How long a new client may wait for its first answer.
const FIRST_ANSWER_WITHIN: Duration = Duration::from_millis(100);

/// What a flood did: bytes sent and received, and how many flooders had
/// an answer, updated as it runs.
#[derive(Default)]
struct FloodProgress {
    answered: AtomicUsize,
    sent: AtomicUsize,
    received: AtomicUsize,
}

/// Floods `addr` from [`FLOODERS`] connections on one thread: each sends
/// empty CRLF lines (at most [`FLOOD_LIMIT`] bytes) and reads and discards
/// the answers, until `stop` is set or [`FLOOD_TIME`] passes. `all_answered`
/// hears once every flooder has had an answer.
fn flood(
    addr: SocketAddr,
    stop: &AtomicBool,
    progress: &FloodProgress,
    all_answered: std::sync::mpsc::Sender<()>,
) {
    use mio::{Events, Interest, Poll, Token};
    /// One flooder: how much it sent, and whether anything came back yet.
    struct Flooder {
        stream: mio::net::TcpStream,
        sent: usize,
        answered: bool,
    }
    let lines = b"\r\n".repeat(32 << 10);
    let mut scratch = vec![0; 256 << 10];
    let mut poll = Poll::new().unwrap();
    let mut flooders: Vec<Flooder> = (0..FLOODERS)
        .map(|i| {
            let mut stream = mio::net::TcpStream::connect(addr).unwrap();
            poll.registry()
                .register(
                    &mut stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .unwrap();
            Flooder {
                stream,
                sent: 0,
                answered: false,
            }
        })
        .collect();
    let mut events = Events::with_capacity(FLOODERS);
    let end = Instant::now() + FLOOD_TIME;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        for event in &events {
            let f = &mut flooders[event.token().0];
            if event.is_writable() {
                while f.sent < FLOOD_LIMIT {
                    let room = (FLOOD_LIMIT - f.sent).min(lines.len());
                    match f.stream.write(&lines[..room]) {
                        Ok(n) => {
                            f.sent += n;
                            progress.sent.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        // Would block, or the server gave up on us.
                        Err(_) => break,
                    }
                }
            }
            if event.is_readable() {
                loop {
                    match f.stream.read(&mut scratch) {
                        Ok(0) => break,
                        Ok(n) => {
                            progress.received.fetch_add(n, Ordering::Relaxed);
                            if !f.answered {
                                f.answered = true;
                                let answered = progress.answered.fetch_add(1, Ordering::SeqCst);
                                if answered + 1 == FLOODERS {
                                    let _ = all_answered.send(());
                                }
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            }
        }
    }
}

/// Connects, sends one line, and returns how long its answer took, from
/// before the connect to the answer's last byte.
fn time_first_answer(addr: SocketAddr, i: usize) -> Duration {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let line = format!("probe {i}\r\n");
    s.write_all(line.as_bytes()).unwrap();
    let mut answer = vec![0; STAMP + line.len()];
    s.read_exact(&mut answer).expect("an answer");
    let took = started.elapsed();
    assert!(
        is_stamp(&answer[..STAMP]) && answer.ends_with(line.as_bytes()),
        "answer {:?}",
        String::from_utf8_lossy(&answer)
    );
    took
}

/// Issue 12, finding 11: 64 clients each flooding the server with empty
/// lines must not stall everyone else. Every flooder is answered (none
/// starves behind the others), and a new client, once the floods run, gets
/// its first answer within 100 ms.
#[test]
fn a_new_client_is_answered_within_100_ms_while_64_clients_flood_line_timestamp_server() {
    let _serial = serial();
    let server = programs::Server::start("line_timestamp_server");
    let stop = AtomicBool::new(false);
    let progress = FloodProgress::default();
    let (all_answered_tx, all_answered) = channel();
    let (ramp_up, all_ran, latencies) = thread::scope(|scope| {
        let flooding = scope.spawn(|| flood(server.addr, &stop, &progress, all_answered_tx));
        let started = Instant::now();
        let all_ran = all_answered.recv_timeout(RAMP_UP).is_ok();
        let ramp_up = started.elapsed();
        // Timed even if some flooder starves, to tell the two apart.
        let latencies: Vec<Duration> = (0..PROBES)
            .map(|i| time_first_answer(server.addr, i))
            .collect();
        stop.store(true, Ordering::Relaxed);
        flooding.join().expect("the flood thread");
        (ramp_up, all_ran, latencies)
    });
    drop(server);
    let answered = progress.answered.load(Ordering::SeqCst);
    let (sent, received) = (
        progress.sent.load(Ordering::Relaxed),
        progress.received.load(Ordering::Relaxed),
    );
    eprintln!(
        "{answered} of {FLOODERS} flooders answered after {ramp_up:?}; new clients' first answers {latencies:?}; {sent} bytes sent, {received} received"
    );
    assert!(
        all_ran,
        "only {answered} of {FLOODERS} flooders had an answer after {RAMP_UP:?}: the others starve (new clients' first answers took {latencies:?})"
    );
    assert!(
        latencies.iter().all(|&l| l < FIRST_ANSWER_WITHIN),
        "first answers took {latencies:?} while {FLOODERS} clients flooded"
    );
}

/// Reads nothing until resumed (it says its id when made), then takes
/// longer than a turn's time budget over each read, logging whose read it
/// was.
struct Costly {
    index: usize,
    made: std::sync::mpsc::Sender<ConnectionId>,
    log: Arc<Mutex<Vec<usize>>>,
}

/// A callback's cost: past the reactor's turn budget of 10 ms.
const CALLBACK_COST: Duration = Duration::from_millis(12);

impl Protocol for Costly {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        transport.pause_reading();
        let _ = self.made.send(transport.id());
    }
    fn data_received(&mut self, _transport: &mut dyn Transport, _data: &[u8]) {
        self.log.lock().unwrap().push(self.index);
        // Stands for work on the data; it waits for nothing.
        thread::sleep(CALLBACK_COST);
    }
}

/// Connections whose reads all wait in the leftover queue at once.
const WAITING: usize = 4;
/// What each of them sent: many full reads' worth, which the kernel takes
/// at once (the sender's buffer grows to megabytes on loopback).
const WAITING_BYTES: usize = 1 << 20;

/// Issue 12, finding 11: when every callback spends the turn's time
/// budget, connections waiting in the leftover queue are served in turn,
/// not the one at its head again and again (64 flooders of
/// line_timestamp_server starved most of them that way).
#[test]
fn connections_waiting_for_a_turn_are_served_in_turn_when_each_callback_spends_the_budget() {
    let _serial = serial();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (made_tx, made) = channel();
    let server = {
        let log = log.clone();
        let mut made_so_far = 0;
        listening(move || {
            made_so_far += 1;
            Costly {
                index: made_so_far - 1,
                made: made_tx.clone(),
                log: log.clone(),
            }
        })
    };
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..WAITING {
        let mut s = client(server.addr);
        // One at a time, so client i is connection i.
        ids.push(made.recv_timeout(WAIT).expect("connection made"));
        s.write_all(&vec![b'x'; WAITING_BYTES]).unwrap();
        clients.push(s);
    }
    // All four become leftovers at once, in order, each with more than a
    // full read waiting.
    server.call(move |r| {
        for id in ids {
            r.resume_reading(id);
        }
    });
    common::wait_until("a callback per waiting connection", || {
        log.lock().unwrap().len() >= WAITING
    });
    let first: Vec<usize> = log.lock().unwrap()[..WAITING].to_vec();
    let mut served = first.clone();
    served.sort_unstable();
    served.dedup();
    assert_eq!(
        served.len(),
        WAITING,
        "the first {WAITING} callbacks were for connections {first:?}"
    );
    drop(clients);
}
