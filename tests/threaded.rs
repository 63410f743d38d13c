//! The thread-per-connection model (`reactor::threaded`): the shared
//! protocol tests under both models, then what only the threaded servers
//! have (shutdown, threads, the `socketserver` servers) and the examples
//! built on them.

mod common;
#[path = "common/models.rs"]
mod models;
#[path = "common/programs.rs"]
mod programs;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{client, localhost, next, roundtrip, wait_until, Recorder, WAIT};
use reactor::threaded::{
    self, DatagramHandler, RequestHandler, TcpServer, ThreadedOptions, ThreadedServer,
    ThreadingTcpServer, ThreadingUdpServer, UdpServer,
};
use reactor::{Factory, Protocol, Reason, Transport};

/// Runs each body in `models` once per model, as `reactor_model::NAME` and
/// `threads_model::NAME`.
macro_rules! under_both_models {
    ($($body:ident),* $(,)?) => {
        mod reactor_model {
            $(#[test] fn $body() { crate::models::$body(crate::models::Model::Reactor) })*
        }
        mod threads_model {
            $(#[test] fn $body() { crate::models::$body(crate::models::Model::Threads) })*
        }
    };
}

under_both_models!(
    echo_callbacks_run_in_order_and_connection_lost_once,
    echo_returns_four_mebibytes_byte_for_byte,
    reasons_tell_a_reset_from_a_fin,
    lose_connection_sends_the_reply_then_a_fin,
    abort_connection_resets_the_peer,
    transport_addresses_match_the_clients,
    timestamp_protocol_stamps_each_message,
    line_receiver_splits_lines_however_tcp_cuts_them,
    line_receiver_answers_lines_as_nc_and_python_send_them_by_default,
    a_strict_crlf_line_receiver_waits_for_crlf,
    timers_fire_in_deadline_order_and_cancel_works,
    an_idle_connection_is_closed_after_its_timeout,
    paused_reading_waits_for_the_protocol_to_resume,
    a_half_closing_protocol_answers_after_the_peers_fin,
    a_panicking_protocol_loses_only_its_own_connection,
    stopping_the_server_closes_every_open_connection,
    a_connection_kept_past_its_deadline_is_aborted_after_the_grace,
    a_deadline_set_in_the_hook_replaces_the_old_one,
    a_reset_ends_a_connection_that_is_not_reading,
);

// ------------------------------------------------------------------ threads

/// Threads of this process whose name starts with `prefix`. Names, not the
/// total count: other tests of this binary run threads at the same time.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task is readable")
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim_end().starts_with(prefix))
        })
        .count()
}

/// Shuts `server` down on another thread and fails if that takes longer
/// than [`WAIT`] (a thread that cannot be woken would hang it forever).
fn shutdown_within_wait(server: ThreadedServer) {
    let (tx, rx) = channel();
    thread::spawn(move || {
        server.shutdown();
        let _ = tx.send(());
    });
    rx.recv_timeout(WAIT).expect("shutdown returned in time");
}

fn options(name: &str) -> ThreadedOptions {
    ThreadedOptions {
        thread_name: name.to_string(),
        ..ThreadedOptions::default()
    }
}

#[test]
fn shutdown_with_100_open_connections_leaves_no_thread_behind() {
    let (tx, rx) = channel();
    assert_eq!(threads_named("leakcheck"), 0);
    let factory = move || Recorder {
        tx: tx.clone(),
        echo: true,
    };
    let server =
        ThreadedServer::listen_tcp_with(localhost(), factory, options("leakcheck")).unwrap();
    let mut clients: Vec<_> = (0..100).map(|_| client(server.local_addr())).collect();
    for c in &mut clients {
        assert_eq!(roundtrip(c, b"x"), b"x");
    }
    // One thread per connection and the accept thread ("leakcheck-accep").
    assert_eq!(threads_named("leakcheck"), 101);
    assert_eq!(server.connection_count(), 100);
    shutdown_within_wait(server);
    // shutdown() returned only after every connection thread had finished:
    // all 100 `connection_lost` calls have reported already.
    let events: Vec<String> = rx.try_iter().collect();
    assert_eq!(events.len(), 300, "{events:?}");
    let stopped = events
        .iter()
        .filter(|e| *e == "lost:ReactorStopped")
        .count();
    assert_eq!(stopped, 100, "{events:?}");
    for c in &mut clients {
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }
    // Joined already; the kernel removes a task an instant after it ends.
    wait_until("every server thread is gone", || {
        threads_named("leakcheck") == 0
    });
}

/// Writes 64 MiB on connect, to a client that reads nothing.
struct Flood(Sender<String>);

impl Protocol for Flood {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let _ = self.0.send("writing".into());
        t.write(&vec![b'x'; 64 << 20]);
        let _ = self.0.send(format!("written:closing={}", t.is_closing()));
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.0.send(format!("lost:{reason:?}"));
    }
}

#[test]
fn shutdown_wakes_a_thread_blocked_writing_to_a_peer_that_does_not_read() {
    let (tx, rx) = channel();
    let server =
        ThreadedServer::listen_tcp_with(localhost(), move || Flood(tx.clone()), options("flood"))
            .unwrap();
    let _silent = client(server.local_addr());
    assert_eq!(next(&rx), "writing");
    // The write blocks once the socket buffers are full (64 MiB is far more
    // than loopback buffers hold); only shutdown ends it.
    shutdown_within_wait(server);
    assert_eq!(next(&rx), "written:closing=true");
    assert_eq!(next(&rx), "lost:ReactorStopped");
    wait_until("the flood threads are gone", || threads_named("flood") == 0);
}

/// Reports what the blocking transport says about reactor-only features.
struct Inspect(Sender<String>);

impl Protocol for Inspect {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.set_write_watermarks(1, 2);
        t.write(b"0123456789");
        let _ = self.0.send(format!(
            "reactor:{} buffered:{} full:{}",
            t.reactor().is_some(),
            t.buffered(),
            t.is_write_buffer_full()
        ));
    }
    fn data_received(&mut self, t: &mut dyn Transport, _data: &[u8]) {
        // A protocol that insists on the reactor panics; only it suffers.
        t.reactor().expect("a reactor");
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.0.send(format!("lost:{reason}"));
    }
}

#[test]
fn reactor_only_features_are_answered_not_panicked() {
    let (tx, rx) = channel();
    let server = threaded::listen_tcp(localhost(), move || Inspect(tx.clone())).unwrap();
    let mut c = client(server.local_addr());
    assert_eq!(next(&rx), "reactor:false buffered:0 full:false");
    assert_eq!(common::read_n(&mut c, 10), b"0123456789");
    c.write_all(b"need the reactor").unwrap();
    assert_eq!(next(&rx), "lost:aborted: the protocol panicked: a reactor");
    server.shutdown();
}

/// A factory whose second protocol cannot be built; reports its hooks.
struct Picky {
    built: usize,
    tx: Sender<String>,
}

impl Factory for Picky {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Box<dyn Protocol> {
        self.built += 1;
        assert!(self.built != 2, "cannot build this one");
        Box::new(common::Echo)
    }
    fn start_factory(&mut self) {
        let _ = self.tx.send("start".into());
    }
    fn stop_factory(&mut self) {
        let _ = self.tx.send(format!("stop after {}", self.built));
    }
}

#[test]
fn a_panicking_build_protocol_drops_only_that_connection() {
    let (tx, rx) = channel();
    let server = threaded::listen_tcp(localhost(), Picky { built: 0, tx }).unwrap();
    assert_eq!(next(&rx), "start");
    let mut first = client(server.local_addr());
    assert_eq!(roundtrip(&mut first, b"one"), b"one");
    let mut second = client(server.local_addr());
    let mut rest = Vec::new();
    // Closed without a word.
    assert_eq!(second.read_to_end(&mut rest).unwrap(), 0);
    let mut third = client(server.local_addr());
    assert_eq!(roundtrip(&mut third, b"three"), b"three");
    assert_eq!(roundtrip(&mut first, b"still"), b"still");
    server.shutdown();
    assert_eq!(next(&rx), "stop after 3");
}

#[test]
fn a_handle_shuts_the_server_down_from_another_thread() {
    let server = threaded::listen_tcp(localhost(), || common::Echo).unwrap();
    let handle = server.handle();
    let addr = server.local_addr();
    let (done_tx, done_rx) = channel();
    let waiter = thread::spawn(move || {
        server.wait();
        let _ = done_tx.send(());
    });
    let mut c = client(addr);
    assert_eq!(roundtrip(&mut c, b"hi"), b"hi");
    assert!(!handle.is_shutting_down());
    handle.shutdown();
    assert!(handle.is_shutting_down());
    done_rx.recv_timeout(WAIT).expect("wait() returned");
    waiter.join().unwrap();
    let mut rest = Vec::new();
    assert_eq!(c.read_to_end(&mut rest).unwrap(), 0);
    assert!(TcpStream::connect(addr).is_err(), "still listening");
}

// ------------------------------------------------------------------ socketserver

/// Echoes until end-of-file; reports each step with the client's port.
struct Steps {
    tx: Sender<String>,
}

impl RequestHandler for Steps {
    fn setup(&mut self, _r: &mut TcpStream, client: SocketAddr) -> std::io::Result<()> {
        let _ = self.tx.send(format!("setup:{}", client.port()));
        Ok(())
    }
    fn handle(&mut self, r: &mut TcpStream, client: SocketAddr) -> std::io::Result<()> {
        let _ = self.tx.send(format!("handle:{}", client.port()));
        let mut buf = [0; 1024];
        loop {
            let n = r.read(&mut buf)?;
            match &buf[..n] {
                b"" => return Ok(()),
                b"fail" => return Err(std::io::Error::other("asked to fail")),
                b"panic" => panic!("asked to panic"),
                data => r.write_all(data)?,
            }
        }
    }
    fn finish(&mut self, _r: &mut TcpStream, client: SocketAddr) -> std::io::Result<()> {
        let _ = self.tx.send(format!("finish:{}", client.port()));
        Ok(())
    }
}

/// Runs `serve_forever` on a thread; the receiver hears when it returns.
fn in_background(serve: impl FnOnce() + Send + 'static) -> std::sync::mpsc::Receiver<()> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        serve();
        let _ = tx.send(());
    });
    rx
}

#[test]
fn threading_tcp_server_runs_setup_handle_finish_per_connection() {
    let (tx, rx) = channel();
    let server = ThreadingTcpServer::bind(localhost(), move || Steps { tx: tx.clone() }).unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    let done = in_background(move || server.serve_forever());
    let mut c = client(addr);
    let port = c.local_addr().unwrap().port();
    assert_eq!(roundtrip(&mut c, b"hello"), b"hello");
    c.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    assert_eq!(c.read_to_end(&mut rest).unwrap(), 0);
    for step in ["setup", "handle", "finish"] {
        assert_eq!(next(&rx), format!("{step}:{port}"));
    }
    handle.shutdown();
    done.recv_timeout(WAIT).expect("serve_forever returned");
}

#[test]
fn a_failing_or_panicking_handler_ends_only_its_connection_and_finish_still_runs() {
    let (tx, rx) = channel();
    let server = ThreadingTcpServer::bind(localhost(), move || Steps { tx: tx.clone() }).unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    let done = in_background(move || server.serve_forever());
    let mut keeper = client(addr);
    assert_eq!(roundtrip(&mut keeper, b"one"), b"one");
    let port = keeper.local_addr().unwrap().port();
    assert_eq!(next(&rx), format!("setup:{port}"));
    assert_eq!(next(&rx), format!("handle:{port}"));
    for ask in ["fail", "panic"] {
        let mut c = client(addr);
        let port = c.local_addr().unwrap().port();
        c.write_all(ask.as_bytes()).unwrap();
        let mut rest = Vec::new();
        assert_eq!(c.read_to_end(&mut rest).unwrap(), 0, "{ask}");
        for step in ["setup", "handle", "finish"] {
            assert_eq!(next(&rx), format!("{step}:{port}"), "{ask}");
        }
    }
    assert_eq!(roundtrip(&mut keeper, b"two"), b"two");
    handle.shutdown();
    done.recv_timeout(WAIT).expect("serve_forever returned");
}

#[test]
fn tcp_server_serves_one_client_at_a_time() {
    let (tx, _rx) = channel();
    let server = TcpServer::bind(localhost(), move || Steps { tx: tx.clone() }).unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    let done = in_background(move || server.serve_forever());
    let mut first = client(addr);
    assert_eq!(roundtrip(&mut first, b"first"), b"first");
    let mut second = client(addr);
    second.write_all(b"second").unwrap();
    // Not served while the first client is: no answer within a grace period.
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0; 6];
    let early = second.read(&mut buf).map_err(|e| e.kind());
    assert!(
        matches!(early, Err(ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "answered while another client was served: {early:?}"
    );
    drop(first);
    second.set_read_timeout(Some(WAIT)).unwrap();
    second.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"second");
    handle.shutdown();
    done.recv_timeout(WAIT).expect("serve_forever returned");
}

#[test]
fn shutdown_wakes_handlers_blocked_reading_and_serve_forever_returns() {
    let counter = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&counter);
    let server = ThreadingTcpServer::bind_with(
        localhost(),
        move || {
            seen.fetch_add(1, Ordering::SeqCst);
            Steps { tx: channel().0 }
        },
        options("sockserv"),
    )
    .unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    let done = in_background(move || server.serve_forever());
    let mut clients: Vec<_> = (0..5).map(|_| client(addr)).collect();
    for c in &mut clients {
        assert_eq!(roundtrip(c, b"x"), b"x");
    }
    assert_eq!(counter.load(Ordering::SeqCst), 5);
    handle.shutdown();
    done.recv_timeout(WAIT).expect("serve_forever returned");
    for c in &mut clients {
        let mut rest = Vec::new();
        assert_eq!(c.read_to_end(&mut rest).unwrap(), 0);
    }
    wait_until("the handler threads are gone", || {
        threads_named("sockserv") == 0
    });

    // The one-at-a-time server too, with a client connected.
    let server = TcpServer::bind(localhost(), || Steps { tx: channel().0 }).unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    let done = in_background(move || server.serve_forever());
    let mut c = client(addr);
    assert_eq!(roundtrip(&mut c, b"y"), b"y");
    handle.shutdown();
    done.recv_timeout(WAIT).expect("serve_forever returned");
    let mut rest = Vec::new();
    assert_eq!(c.read_to_end(&mut rest).unwrap(), 0);
}

/// Answers each datagram upper-cased, through the server's socket.
struct UpperDatagrams;

impl DatagramHandler for UpperDatagrams {
    fn handle(
        &mut self,
        data: &[u8],
        client: SocketAddr,
        socket: &UdpSocket,
    ) -> std::io::Result<()> {
        if data == b"panic" {
            panic!("asked to panic");
        }
        socket.send_to(&data.to_ascii_uppercase(), client)?;
        Ok(())
    }
}

/// Sends each datagram and checks the answer and where it came from.
fn exchange_datagrams(server: SocketAddr) {
    let socket = UdpSocket::bind(localhost()).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0; 70_000];
    socket.send_to(b"panic", server).unwrap();
    for (send, expect) in [
        (&b"hello"[..], &b"HELLO"[..]),
        (b"", b""),
        (&[b'a'; 60_000], &[b'A'; 60_000]),
    ] {
        socket.send_to(send, server).unwrap();
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        assert_eq!(from, server);
        assert_eq!(&buf[..n], expect);
    }
}

#[test]
fn udp_servers_answer_each_datagram_through_the_servers_socket() {
    let server = UdpServer::bind(localhost(), || UpperDatagrams).unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    let done = in_background(move || server.serve_forever());
    exchange_datagrams(addr);
    handle.shutdown();
    done.recv_timeout(WAIT).expect("serve_forever returned");

    let server =
        ThreadingUdpServer::bind_with(localhost(), || UpperDatagrams, options("udpserv")).unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    let done = in_background(move || server.serve_forever());
    exchange_datagrams(addr);
    handle.shutdown();
    done.recv_timeout(WAIT).expect("serve_forever returned");
    wait_until("the datagram threads are gone", || {
        threads_named("udpserv") == 0
    });
}

// ------------------------------------------------------------------ limits

/// Handles each datagram by reporting the thread it runs on, then waiting
/// for the gate to open.
struct Gated {
    started: Sender<Option<String>>,
    gate: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl DatagramHandler for Gated {
    fn handle(&mut self, _data: &[u8], _c: SocketAddr, _s: &UdpSocket) -> std::io::Result<()> {
        let name = thread::current().name().map(str::to_string);
        let _ = self.started.send(name);
        let (open, cv) = &*self.gate;
        let mut open = open.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        Ok(())
    }
}

/// Threads of this process called exactly `name`.
fn threads_called(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task is readable")
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|n| n.trim_end() == name)
        })
        .count()
}

#[test]
fn a_threading_udp_server_handles_datagrams_inline_past_its_thread_limit() {
    // The documented default bound.
    const LIMIT: usize = 64;
    assert_eq!(ThreadedOptions::default().max_datagram_threads, Some(LIMIT));
    let (started, rx) = channel();
    let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let handler_gate = Arc::clone(&gate);
    let server = ThreadingUdpServer::bind_with(
        localhost(),
        move || Gated {
            started: started.clone(),
            gate: Arc::clone(&handler_gate),
        },
        options("udpcap"),
    )
    .unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    let done = in_background(move || server.serve_forever());
    let sender = UdpSocket::bind(localhost()).unwrap();
    let sent = LIMIT + 16;
    for _ in 0..sent {
        sender.send_to(b"x", addr).unwrap();
    }
    // LIMIT handlers on threads of their own, then one on the receiving
    // thread, which receives nothing more while it is busy.
    let names: Vec<Option<String>> = (0..=LIMIT)
        .map(|_| rx.recv_timeout(WAIT).expect("a handler started"))
        .collect();
    let on_workers = names
        .iter()
        .filter(|n| n.as_deref() == Some("udpcap"))
        .count();
    assert_eq!(on_workers, LIMIT, "{names:?}");
    assert_eq!(threads_called("udpcap"), LIMIT);
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "a handler started past the limit while the receiving thread was busy"
    );
    // Open the gate: every datagram is handled, the rest within the bound.
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    for _ in LIMIT + 1..sent {
        rx.recv_timeout(WAIT).expect("every datagram was handled");
    }
    handle.shutdown();
    done.recv_timeout(WAIT).expect("serve_forever returned");
    wait_until("the datagram threads are gone", || {
        threads_called("udpcap") == 0
    });
}

/// A factory that reports its start and stop hooks.
struct Hooks(Sender<String>);

impl Factory for Hooks {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Box<dyn Protocol> {
        Box::new(common::Echo)
    }
    fn start_factory(&mut self) {
        let _ = self.0.send("start".into());
    }
    fn stop_factory(&mut self) {
        let _ = self.0.send("stop".into());
    }
}

struct Nothing;

impl RequestHandler for Nothing {
    fn handle(&mut self, _r: &mut TcpStream, _c: SocketAddr) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_thread_name_with_a_nul_byte_is_refused_when_binding() {
    let bad = options("bad\0name");
    let (tx, rx) = channel();
    match ThreadedServer::listen_tcp_with(localhost(), Hooks(tx), bad.clone()) {
        Ok(_) => panic!("listening with a NUL in the thread name succeeded"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}"),
    }
    // Refused before start_factory, so no stop_factory is owed.
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), Vec::<String>::new());
    let kind = |r: std::io::Result<()>| r.map_err(|e| e.kind());
    assert_eq!(
        kind(ThreadingTcpServer::bind_with(localhost(), || Nothing, bad.clone()).map(drop)),
        Err(ErrorKind::InvalidInput)
    );
    assert_eq!(
        kind(TcpServer::bind_with(localhost(), || Nothing, bad.clone()).map(drop)),
        Err(ErrorKind::InvalidInput)
    );
    assert_eq!(
        kind(ThreadingUdpServer::bind_with(localhost(), || UpperDatagrams, bad).map(drop)),
        Err(ErrorKind::InvalidInput)
    );
}

/// Read-write mappings of `stack` bytes (give or take the guard and
/// rounding): thread stacks of that size. A finished thread's stack stays
/// mapped until the thread is joined; glibc then caches at most 40 MiB of
/// stacks, so a larger one is unmapped at the join.
fn stacks_mapped(stack: usize) -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps is readable")
        .lines()
        .filter(|line| {
            let mut fields = line.split_whitespace();
            let (Some(range), Some("rw-p")) = (fields.next(), fields.next()) else {
                return false;
            };
            let Some((start, end)) = range.split_once('-') else {
                return false;
            };
            let size = usize::from_str_radix(end, 16).unwrap_or(0)
                - usize::from_str_radix(start, 16).unwrap_or(0);
            (stack..stack + (64 << 10)).contains(&size)
        })
        .count()
}

#[test]
fn finished_connection_threads_are_joined_without_another_connection() {
    // A size no other thread here uses, above glibc's stack cache.
    const STACK: usize = (44 << 20) + (20 << 10);
    let baseline = stacks_mapped(STACK);
    let options = ThreadedOptions {
        stack_size: STACK,
        ..options("reaper")
    };
    let server = ThreadedServer::listen_tcp_with(localhost(), || common::Echo, options).unwrap();
    let mut clients: Vec<_> = (0..8).map(|_| client(server.local_addr())).collect();
    for c in &mut clients {
        assert_eq!(roundtrip(c, b"x"), b"x");
    }
    assert_eq!(threads_called("reaper"), 8);
    assert_eq!(stacks_mapped(STACK), baseline + 8);
    drop(clients);
    wait_until("every connection has ended", || {
        server.connection_count() == 0
    });
    // No new connection arrives to prompt the accept loop.
    wait_until("the finished threads are joined", || {
        stacks_mapped(STACK) == baseline
    });
    assert_eq!(threads_called("reaper"), 0);
    server.shutdown();
}

#[test]
fn finished_datagram_threads_are_joined_without_another_datagram() {
    const STACK: usize = (45 << 20) + (36 << 10);
    let baseline = stacks_mapped(STACK);
    let options = ThreadedOptions {
        stack_size: STACK,
        ..options("udpreaper")
    };
    let server = ThreadingUdpServer::bind_with(localhost(), || UpperDatagrams, options).unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    let done = in_background(move || server.serve_forever());
    let socket = UdpSocket::bind(localhost()).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0; 16];
    for _ in 0..4 {
        socket.send_to(b"x", addr).unwrap();
        let (n, _) = socket.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"X");
    }
    wait_until("the finished datagram threads are joined", || {
        stacks_mapped(STACK) == baseline
    });
    handle.shutdown();
    done.recv_timeout(WAIT).expect("serve_forever returned");
}

// ------------------------------------------------------------------ examples

#[test]
fn echo_server_echoes_under_both_models() {
    for model in ["reactor", "threads"] {
        let server = programs::Server::start_with("echo_server", &["--model", model]);
        let mut c = programs::connect(server.addr);
        let message = common::pattern(100_000, 3);
        c.write_all(&message).unwrap();
        programs::expect(&mut c, &message);
        assert_eq!(server.stop(), Vec::<String>::new(), "{model}: extra stdout");
    }
}

#[test]
fn socketserver_upper_server_upper_cases_each_chunk_under_both_servers() {
    for kind in ["threading", "tcp"] {
        let server = programs::Server::start_with("socketserver_upper_server", &["--server", kind]);
        let mut c = programs::connect(server.addr);
        c.write_all("héllo wörld".as_bytes()).unwrap();
        programs::expect(&mut c, "HéLLO WöRLD".as_bytes());
        c.shutdown(Shutdown::Write).unwrap();
        programs::expect_eof(&mut c);
        assert_eq!(server.stop(), Vec::<String>::new(), "{kind}: extra stdout");
    }
}

#[test]
fn socketserver_timestamp_server_answers_one_line_then_closes() {
    for kind in ["threading", "tcp"] {
        let server =
            programs::Server::start_with("socketserver_timestamp_server", &["--server", kind]);
        let mut c = programs::connect(server.addr);
        c.write_all(b"hello\r\nnot answered\n").unwrap();
        let mut reply = Vec::new();
        c.read_to_end(&mut reply).unwrap();
        assert!(
            models::is_stamped(&reply, b"hello\r\n"),
            "{kind}: {:?}",
            String::from_utf8_lossy(&reply)
        );
        server.stop();
    }
}

#[test]
fn thread_per_connection_server_answers_until_end() {
    let server = programs::Server::start("thread_per_connection_server");
    let mut a = programs::connect(server.addr);
    let mut b = programs::connect(server.addr);
    a.write_all(b"one").unwrap();
    programs::expect(&mut a, "服务端接收到数据：one".as_bytes());
    b.write_all(b"two").unwrap();
    programs::expect(&mut b, "服务端接收到数据：two".as_bytes());
    a.write_all(b"end\n").unwrap();
    programs::expect_eof(&mut a);
    b.write_all(b"three").unwrap();
    programs::expect(&mut b, "服务端接收到数据：three".as_bytes());
    server.stop();
}

#[test]
fn socketserver_udp_server_answers_upper_cased_under_both_servers() {
    for kind in ["threading", "udp"] {
        let mut child = Command::new(programs::example("socketserver_udp_server"))
            .args(["--port", "0", "--server", kind])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let _running = programs::Running(child);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        let addr: SocketAddr = line
            .trim_end()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("first line {line:?}"));
        let socket = UdpSocket::bind(localhost()).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        socket.send_to(b"hello udp", addr).unwrap();
        let mut buf = [0; 64];
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        assert_eq!((from, &buf[..n]), (addr, &b"HELLO UDP"[..]), "{kind}");
    }
}
