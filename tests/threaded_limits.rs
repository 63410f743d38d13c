//! What bounds the thread-per-connection servers (`reactor::threaded`):
//! the connection (so thread) limit of the TCP servers, durations too long
//! to schedule, and user `Drop`s that panic.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread;
use std::time::Duration;

use common::{client, localhost, next, roundtrip, wait_until, Echo, WAIT};
use reactor::threaded::{
    self, DatagramHandler, RequestHandler, TcpServer, ThreadedOptions, ThreadingTcpServer,
    UdpServer, DEFAULT_MAX_CONNECTIONS,
};
use reactor::{Factory, ListenerStats, Protocol, Reason, Transport};

/// The connection limit the tests set: small enough to reach with a few
/// clients.
const LIMIT: usize = 3;

fn limited(name: &str) -> ThreadedOptions {
    ThreadedOptions {
        max_connections: Some(LIMIT),
        thread_name: name.to_string(),
        ..ThreadedOptions::default()
    }
}

/// Runs `serve_forever` on a thread; the receiver hears when it returns.
fn in_background(serve: impl FnOnce() + Send + 'static) -> Receiver<()> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        serve();
        let _ = tx.send(());
    });
    rx
}

/// Reads from a client the server refused: end-of-file, at once (a read
/// that waits fails with the client's timeout), and no bytes.
fn assert_closed_at_once(refused: &mut TcpStream) {
    let mut buf = [0; 64];
    let read = refused.read(&mut buf).map_err(|e| e.kind());
    assert_eq!(
        read,
        Ok(0),
        "the client over the limit was not closed at once"
    );
}

/// The limit's whole cycle against an echoing server at `addr` whose
/// counts `stats` reads: `LIMIT` clients are served, the next one is
/// closed at once and counted, and once a served client leaves (its thread
/// has ended), a new client is served.
fn limit_cycle(addr: SocketAddr, stats: impl Fn() -> ListenerStats) {
    let mut served: Vec<TcpStream> = (0..LIMIT)
        .map(|i| {
            let mut c = client(addr);
            let msg = format!("client {i}");
            assert_eq!(roundtrip(&mut c, msg.as_bytes()), msg.as_bytes());
            c
        })
        .collect();
    assert_eq!(
        stats(),
        ListenerStats {
            open: 3,
            refused: 0,
            ..ListenerStats::default()
        }
    );

    let mut over = client(addr);
    assert_closed_at_once(&mut over);
    // Counted before the close, so already here.
    assert_eq!(
        stats(),
        ListenerStats {
            open: 3,
            refused: 1,
            ..ListenerStats::default()
        }
    );
    for (i, c) in served.iter_mut().enumerate() {
        let msg = format!("still {i}");
        assert_eq!(roundtrip(c, msg.as_bytes()), msg.as_bytes());
    }

    // One leaves: its slot frees once its thread has ended.
    drop(served.remove(0));
    wait_until("the departed client's thread has ended", || {
        stats().open == 2
    });
    let mut next_client = client(addr);
    assert_eq!(roundtrip(&mut next_client, b"next"), b"next");
    assert_eq!(
        stats(),
        ListenerStats {
            open: 3,
            refused: 1,
            ..ListenerStats::default()
        }
    );
}

#[test]
fn a_threaded_server_closes_connections_over_its_limit_until_a_slot_frees() {
    let server =
        threaded::ThreadedServer::listen_tcp_with(localhost(), || Echo, limited("cap-proto"))
            .unwrap();
    limit_cycle(server.local_addr(), || server.listener_stats());
    server.shutdown();
}

/// Echoes until end-of-file.
struct EchoHandler;

impl RequestHandler for EchoHandler {
    fn handle(&mut self, r: &mut TcpStream, _client: SocketAddr) -> std::io::Result<()> {
        let mut buf = [0; 1024];
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            r.write_all(&buf[..n])?;
        }
    }
}

#[test]
fn a_threading_tcp_server_closes_connections_over_its_limit_until_a_slot_frees() {
    let server =
        ThreadingTcpServer::bind_with(localhost(), || EchoHandler, limited("cap-handler")).unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    let done = in_background(move || server.serve_forever());
    limit_cycle(addr, || handle.listener_stats());
    handle.shutdown();
    done.recv_timeout(WAIT).expect("serve_forever returned");
}

#[test]
fn the_default_limit_is_the_documented_one() {
    assert_eq!(
        ThreadedOptions::default().max_connections,
        Some(DEFAULT_MAX_CONNECTIONS)
    );
    assert_eq!(DEFAULT_MAX_CONNECTIONS, 1024);
}

// ------------------------------------------------------------------ durations

/// Sets an idle timeout and a deadline too long for an `Instant` to hold,
/// echoes, and reports how it ended.
struct Patient(Sender<String>);

impl Protocol for Patient {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.set_idle_timeout(Some(Duration::MAX));
        t.set_deadline(Some(Duration::MAX));
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        t.write(data);
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.0.send(format!("lost:{reason:?}"));
    }
}

#[test]
fn timeouts_too_long_to_schedule_never_pass() {
    let (tx, rx) = channel();
    let server = threaded::listen_tcp(localhost(), move || Patient(tx.clone())).unwrap();
    let mut c = client(server.local_addr());
    assert_eq!(roundtrip(&mut c, b"still here"), b"still here");
    c.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    assert_eq!(c.read_to_end(&mut rest).unwrap(), 0);
    assert_eq!(next(&rx), "lost:PeerClosed");
    server.shutdown();
}

// ------------------------------------------------------------------ Drop

/// Echoes one message, then returns; its `Drop` panics.
struct DropBomb;

impl RequestHandler for DropBomb {
    fn handle(&mut self, r: &mut TcpStream, _client: SocketAddr) -> std::io::Result<()> {
        let mut buf = [0; 64];
        let n = r.read(&mut buf)?;
        r.write_all(&buf[..n])
    }
}

impl Drop for DropBomb {
    fn drop(&mut self) {
        panic!("a handler's drop panicked");
    }
}

#[test]
fn a_panicking_handler_drop_does_not_stop_a_one_at_a_time_server() {
    let server = TcpServer::bind(localhost(), || DropBomb).unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    let done = in_background(move || server.serve_forever());
    for msg in [&b"first"[..], b"second"] {
        let mut c = client(addr);
        assert_eq!(roundtrip(&mut c, msg), msg);
        let mut rest = Vec::new();
        assert_eq!(c.read_to_end(&mut rest).unwrap(), 0);
    }
    handle.shutdown();
    done.recv_timeout(WAIT).expect("serve_forever returned");
}

/// Echoes each datagram; its `Drop` panics.
struct DatagramBomb;

impl DatagramHandler for DatagramBomb {
    fn handle(
        &mut self,
        data: &[u8],
        client: SocketAddr,
        socket: &UdpSocket,
    ) -> std::io::Result<()> {
        socket.send_to(data, client).map(|_| ())
    }
}

impl Drop for DatagramBomb {
    fn drop(&mut self) {
        panic!("a datagram handler's drop panicked");
    }
}

#[test]
fn a_panicking_datagram_handler_drop_does_not_stop_a_one_at_a_time_server() {
    let server = UdpServer::bind(localhost(), || DatagramBomb).unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    let done = in_background(move || server.serve_forever());
    let socket = UdpSocket::bind(localhost()).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0; 64];
    for msg in [&b"first"[..], b"second"] {
        socket.send_to(msg, addr).unwrap();
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        assert_eq!((from, &buf[..n]), (addr, msg));
    }
    handle.shutdown();
    done.recv_timeout(WAIT).expect("serve_forever returned");
}

/// Builds echoes; its `Drop` panics.
struct BombFactory;

impl Factory for BombFactory {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Box<dyn Protocol> {
        Box::new(Echo)
    }
}

impl Drop for BombFactory {
    fn drop(&mut self) {
        panic!("a factory's drop panicked");
    }
}

#[test]
fn a_panicking_factory_drop_does_not_escape_shutdown() {
    let server = threaded::listen_tcp(localhost(), BombFactory).unwrap();
    let mut c = client(server.local_addr());
    assert_eq!(roundtrip(&mut c, b"hi"), b"hi");
    let stopped = thread::spawn(move || server.shutdown()).join();
    assert!(stopped.is_ok(), "shutdown panicked");
}
