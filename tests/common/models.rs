//! Protocol tests written once and run under both serving models: the
//! reactor (on a thread of its own, `ReactorThread`) and the
//! thread-per-connection server (`reactor::threaded`). Each body takes the
//! [`Model`]; `tests/threaded.rs` runs every body for both.
//!
//! Included with `#[path = "common/models.rs"] mod models;` next to
//! `mod common;`.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::{channel, Sender};
use std::thread;
use std::time::{Duration, Instant};

use reactor::framing::{LineHandler, LineReceiver, Lines};
use reactor::threaded::{self, ThreadedServer};
use reactor::{Protocol, Reason, Timeout, Transport};

use crate::common::{
    assert_quiet, client, listening, localhost, next, pattern, read_n, reset, roundtrip, Echo,
    Fragile, ReactorThread, Recorder,
};

/// How connections are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Reactor,
    Threads,
}

/// A server under test, stopped (every connection closed, every thread
/// joined) on drop or by [`Served::stop`].
pub struct Served {
    pub addr: SocketAddr,
    server: Option<Running>,
}

enum Running {
    Reactor(ReactorThread),
    Threads(ThreadedServer),
}

impl Served {
    /// Stops the server and waits until it has closed every connection.
    pub fn stop(mut self) {
        match self.server.take() {
            Some(Running::Reactor(r)) => r.stop(),
            Some(Running::Threads(t)) => t.shutdown(),
            None => {}
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        match self.server.take() {
            Some(Running::Reactor(r)) => drop(r),
            Some(Running::Threads(t)) => t.shutdown(),
            None => {}
        }
    }
}

/// Serves protocols from `factory` on a loopback port under `model`.
pub fn serve<P: Protocol>(model: Model, factory: impl FnMut() -> P + Send + 'static) -> Served {
    served(match model {
        Model::Reactor => Running::Reactor(listening(factory)),
        Model::Threads => Running::Threads(
            threaded::listen_tcp(localhost(), factory).expect("listen on loopback"),
        ),
    })
}

/// Serves protocols from `factory` over TLS under `config` on a loopback
/// port: `listen_tls` on the reactor, a [`TlsFactory`] on the threaded
/// model (the same layer, hosted by each).
#[cfg(feature = "tls")]
pub fn serve_tls<P: Protocol>(
    model: Model,
    config: std::sync::Arc<reactor::tls::ServerConfig>,
    factory: impl FnMut() -> P + Send + 'static,
) -> Served {
    use reactor::tls::{TlsFactory, TlsRole};
    served(match model {
        Model::Reactor => Running::Reactor(ReactorThread::start(move |r| {
            Ok(r.listen_tls(localhost(), config, factory)?.local_addr())
        })),
        Model::Threads => Running::Threads(
            threaded::listen_tcp(
                localhost(),
                TlsFactory::new(TlsRole::server(config), factory),
            )
            .expect("listen on loopback"),
        ),
    })
}

fn served(server: Running) -> Served {
    let addr = match &server {
        Running::Reactor(r) => r.addr,
        Running::Threads(t) => t.local_addr(),
    };
    Served {
        addr,
        server: Some(server),
    }
}

/// A server of [`Recorder`]s under `model`, and the channel they report on.
fn recording(model: Model, echo: bool) -> (Served, std::sync::mpsc::Receiver<String>) {
    let (tx, rx) = channel();
    let server = serve(model, move || Recorder {
        tx: tx.clone(),
        echo,
    });
    (server, rx)
}

/// Reads to end-of-file, failing on a reset or a timeout.
fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("a clean end-of-file");
    all
}

/// Reads until the peer's reset, failing on anything else.
fn expect_reset(s: &mut TcpStream) {
    let mut all = Vec::new();
    let end = s.read_to_end(&mut all).map_err(|e| e.kind());
    assert!(all.is_empty(), "bytes before the reset: {all:?}");
    assert_eq!(end, Err(ErrorKind::ConnectionReset));
}

// ------------------------------------------------------------------ echo

pub fn echo_callbacks_run_in_order_and_connection_lost_once(model: Model) {
    let (server, rx) = recording(model, true);
    let mut c = client(server.addr);
    assert_eq!(next(&rx), "made");
    assert_eq!(roundtrip(&mut c, b"abc"), b"abc");
    assert_eq!(next(&rx), "data:abc");
    drop(c);
    assert_eq!(next(&rx), "lost:PeerClosed");
    assert_quiet(&rx);
}

pub fn echo_returns_four_mebibytes_byte_for_byte(model: Model) {
    let server = serve(model, || Echo);
    let mut c = client(server.addr);
    let sent = pattern(4 << 20, 11);
    let mut writer = c.try_clone().unwrap();
    let to_send = sent.clone();
    // Written from another thread: the echo comes back while we still send.
    let writing = thread::spawn(move || {
        writer.write_all(&to_send).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let got = read_to_eof(&mut c);
    writing.join().unwrap();
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "echoed bytes differ");
}

pub fn reasons_tell_a_reset_from_a_fin(model: Model) {
    let (server, rx) = recording(model, true);
    let mut c = client(server.addr);
    assert_eq!(next(&rx), "made");
    assert_eq!(roundtrip(&mut c, b"x"), b"x");
    assert_eq!(next(&rx), "data:x");
    reset(c);
    assert_eq!(
        next(&rx),
        "lost:Error { kind: ConnectionReset, os_code: Some(104) }"
    );
    let c = client(server.addr);
    assert_eq!(next(&rx), "made");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(next(&rx), "lost:PeerClosed");
    assert_quiet(&rx);
}

/// Answers `bye:<data>` and closes, or aborts on `abort`; reports its end.
struct Answer(Sender<String>);

impl Protocol for Answer {
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        if data == b"abort" {
            t.abort_connection();
            // Ignored: the connection is gone.
            t.write(b"too late");
            return;
        }
        t.write_vectored(&[b"bye:", data]);
        t.lose_connection();
        let _ = self.0.send(format!("closing:{}", t.is_closing()));
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.0.send(format!("lost:{reason:?}"));
    }
}

pub fn lose_connection_sends_the_reply_then_a_fin(model: Model) {
    let (tx, rx) = channel();
    let server = serve(model, move || Answer(tx.clone()));
    let mut c = client(server.addr);
    c.write_all(b"hello").unwrap();
    assert_eq!(read_to_eof(&mut c), b"bye:hello");
    assert_eq!(next(&rx), "closing:true");
    assert_eq!(next(&rx), "lost:LocalClosed");
    assert_quiet(&rx);
}

pub fn abort_connection_resets_the_peer(model: Model) {
    let (tx, rx) = channel();
    let server = serve(model, move || Answer(tx.clone()));
    let mut c = client(server.addr);
    c.write_all(b"abort").unwrap();
    expect_reset(&mut c);
    assert_eq!(next(&rx), "lost:Aborted");
    assert_quiet(&rx);
}

/// Reports both addresses of its connection.
struct Addresses(Sender<(reactor::Address, reactor::Address)>);

impl Protocol for Addresses {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let _ = self.0.send((t.peer_addr(), t.local_addr().unwrap()));
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
}

pub fn transport_addresses_match_the_clients(model: Model) {
    let (tx, rx) = channel();
    let server = serve(model, move || Addresses(tx.clone()));
    let c = client(server.addr);
    let (peer, local) = rx.recv_timeout(crate::common::WAIT).unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
    assert_eq!(local, c.peer_addr().unwrap());
}

// ------------------------------------------------------------------ timestamp

/// Seed 004's `TSServProtocol` (section 2.7): every chunk comes back after
/// the local time, `[YYYY-MM-DD HH:MM:SS] `.
struct TsServ;

impl Protocol for TsServ {
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        let stamp = chrono::Local::now()
            .format("[%Y-%m-%d %H:%M:%S] ")
            .to_string();
        t.write_vectored(&[stamp.as_bytes(), data]);
    }
}

/// Whether `reply` is exactly `[YYYY-MM-DD HH:MM:SS] ` followed by `message`.
pub fn is_stamped(reply: &[u8], message: &[u8]) -> bool {
    const SHAPE: &[u8] = b"[dddd-dd-dd dd:dd:dd] ";
    reply.len() == SHAPE.len() + message.len()
        && reply.iter().zip(SHAPE).all(|(&c, &want)| match want {
            b'd' => c.is_ascii_digit(),
            _ => c == want,
        })
        && reply.ends_with(message)
}

pub fn timestamp_protocol_stamps_each_message(model: Model) {
    let server = serve(model, || TsServ);
    let mut c = client(server.addr);
    for message in [&b"hello"[..], b"second one"] {
        c.write_all(message).unwrap();
        let reply = read_n(&mut c, 22 + message.len());
        assert!(
            is_stamped(&reply, message),
            "reply: {:?}",
            String::from_utf8_lossy(&reply)
        );
    }
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut c), b"");
}

// ------------------------------------------------------------------ lines

/// Upper-cases lines; reports lines and its end with the unfinished rest.
struct UpperLines(Sender<String>);

impl LineHandler for UpperLines {
    fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
        let _ = self
            .0
            .send(format!("line:{}", String::from_utf8_lossy(line)));
        lines.send_line(&line.to_ascii_uppercase());
    }
    fn connection_lost(&mut self, _lines: &mut Lines<'_>, reason: &Reason, unfinished: &[u8]) {
        let _ = self.0.send(format!(
            "lost:{reason:?}:{}",
            String::from_utf8_lossy(unfinished)
        ));
    }
}

pub fn line_receiver_splits_lines_however_tcp_cuts_them(model: Model) {
    let (tx, rx) = channel();
    let server = serve(model, move || {
        LineReceiver::new(UpperLines(tx.clone()))
            .with_delimiter(b"\n")
            .with_max_length(16)
    });
    let mut c = client(server.addr);
    for piece in [&b"hel"[..], b"lo\nwor", b"ld\n\nrest"] {
        c.write_all(piece).unwrap();
    }
    assert_eq!(read_n(&mut c, 13), b"HELLO\nWORLD\n\n");
    for expected in ["line:hello", "line:world", "line:"] {
        assert_eq!(next(&rx), expected);
    }
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut c), b"");
    assert_eq!(next(&rx), "lost:PeerClosed:rest");

    // A line over the limit closes the connection, with the reason.
    let mut c = client(server.addr);
    c.write_all(b"ok\nthis line is far too long\n").unwrap();
    assert_eq!(read_to_eof(&mut c), b"OK\n");
    assert_eq!(next(&rx), "line:ok");
    assert_eq!(
        next(&rx),
        "lost:BadInput(\"line of 25 bytes exceeds the 16 byte limit\"):"
    );
    assert_quiet(&rx);
}

/// What `nc` sends (`\n`), what Python or telnet send (`\r\n`), a `\r\n`
/// whose halves arrive apart and a lone `\r` inside a line: under the
/// default line ending each is a line and gets its answer, with `\r\n`.
pub fn line_receiver_answers_lines_as_nc_and_python_send_them_by_default(model: Model) {
    let (tx, rx) = channel();
    let server = serve(model, move || LineReceiver::new(UpperLines(tx.clone())));
    let mut c = client(server.addr);
    c.write_all(b"from nc\n").unwrap();
    assert_eq!(read_n(&mut c, 9), b"FROM NC\r\n");
    c.write_all(b"from python\r\nlone\rcr\n").unwrap();
    assert_eq!(read_n(&mut c, 22), b"FROM PYTHON\r\nLONE\rCR\r\n");
    // The `\r` waits for its `\n` behind a round trip: two reads, most
    // likely, and the line is the same either way.
    c.write_all(b"sync\nsplit\r").unwrap();
    assert_eq!(read_n(&mut c, 6), b"SYNC\r\n");
    c.write_all(b"\n").unwrap();
    assert_eq!(read_n(&mut c, 7), b"SPLIT\r\n");
    for expected in [
        "line:from nc",
        "line:from python",
        "line:lone\rcr",
        "line:sync",
        "line:split",
    ] {
        assert_eq!(next(&rx), expected);
    }
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut c), b"");
    assert_eq!(next(&rx), "lost:PeerClosed:");
    assert_quiet(&rx);
}

/// Twisted's strict `\r\n`, asked for: a bare `\n` stays inside the line.
pub fn a_strict_crlf_line_receiver_waits_for_crlf(model: Model) {
    let (tx, rx) = channel();
    let server = serve(model, move || {
        LineReceiver::new(UpperLines(tx.clone())).with_delimiter(b"\r\n")
    });
    let mut c = client(server.addr);
    c.write_all(b"from nc\n").unwrap();
    c.write_all(b"then crlf\r\n").unwrap();
    assert_eq!(read_n(&mut c, 19), b"FROM NC\nTHEN CRLF\r\n");
    assert_eq!(next(&rx), "line:from nc\nthen crlf");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut c), b"");
    assert_eq!(next(&rx), "lost:PeerClosed:");
    assert_quiet(&rx);
}

// ------------------------------------------------------------------ timers

/// Schedules three timers and cancels one; writes each tag that fires and
/// closes after the last.
struct Timers(Sender<String>);

impl Protocol for Timers {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.call_later(Duration::from_millis(60), 1);
        t.call_later(Duration::from_millis(20), 2);
        let cancelled = t.call_later(Duration::from_millis(40), 3);
        assert!(t.cancel_timer(cancelled));
        assert!(!t.cancel_timer(cancelled), "cancelled twice");
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn timer_fired(&mut self, t: &mut dyn Transport, tag: u64) {
        let _ = self.0.send(format!("timer:{tag}"));
        t.write(format!("t{tag}").as_bytes());
        if tag == 1 {
            t.lose_connection();
        }
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.0.send(format!("lost:{reason:?}"));
    }
}

pub fn timers_fire_in_deadline_order_and_cancel_works(model: Model) {
    let (tx, rx) = channel();
    let server = serve(model, move || Timers(tx.clone()));
    let mut c = client(server.addr);
    assert_eq!(read_to_eof(&mut c), b"t2t1");
    for expected in ["timer:2", "timer:1", "lost:LocalClosed"] {
        assert_eq!(next(&rx), expected);
    }
    assert_quiet(&rx);
}

/// Echoes, with a 100 ms idle timeout (the default hook closes).
struct Idle(Sender<String>);

impl Protocol for Idle {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.set_idle_timeout(Some(Duration::from_millis(100)));
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        t.write(data);
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.0.send(format!("lost:{reason:?}"));
    }
}

pub fn an_idle_connection_is_closed_after_its_timeout(model: Model) {
    let (tx, rx) = channel();
    let server = serve(model, move || Idle(tx.clone()));
    let mut c = client(server.addr);
    assert_eq!(roundtrip(&mut c, b"ping"), b"ping");
    assert_eq!(read_to_eof(&mut c), b"");
    assert_eq!(next(&rx), "lost:LocalClosed");
}

/// Pauses reading at once and resumes from a timer: data sent meanwhile is
/// delivered after the timer.
struct Paused(Sender<String>);

impl Protocol for Paused {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.pause_reading();
        t.call_later(Duration::from_millis(50), 0);
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        let _ = self
            .0
            .send(format!("data:{}", String::from_utf8_lossy(data)));
        t.write(data);
    }
    fn timer_fired(&mut self, t: &mut dyn Transport, _tag: u64) {
        let _ = self.0.send("resume".into());
        t.resume_reading();
    }
}

pub fn paused_reading_waits_for_the_protocol_to_resume(model: Model) {
    let (tx, rx) = channel();
    let server = serve(model, move || Paused(tx.clone()));
    let mut c = client(server.addr);
    c.write_all(b"early").unwrap();
    assert_eq!(read_n(&mut c, 5), b"early");
    assert_eq!(next(&rx), "resume");
    assert_eq!(next(&rx), "data:early");
}

// ------------------------------------------------------------------ half-close

/// Keeps the connection half-open after the peer's FIN, then answers with
/// what it read, reversed, and closes.
struct Reverse(Vec<u8>, Sender<String>);

impl Protocol for Reverse {
    fn allows_half_close(&self) -> bool {
        true
    }
    fn data_received(&mut self, _t: &mut dyn Transport, data: &[u8]) {
        self.0.extend_from_slice(data);
    }
    fn read_connection_lost(&mut self, t: &mut dyn Transport) {
        let _ = self.1.send(format!("eof:closing={}", t.is_closing()));
        self.0.reverse();
        t.write(&self.0);
        t.lose_connection();
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.1.send(format!("lost:{reason:?}"));
    }
}

pub fn a_half_closing_protocol_answers_after_the_peers_fin(model: Model) {
    let (tx, rx) = channel();
    let server = serve(model, move || Reverse(Vec::new(), tx.clone()));
    let mut c = client(server.addr);
    c.write_all(b"stressed").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut c), b"desserts");
    assert_eq!(next(&rx), "eof:closing=false");
    assert_eq!(next(&rx), "lost:LocalClosed");
}

// ------------------------------------------------------------------ faults

pub fn a_panicking_protocol_loses_only_its_own_connection(model: Model) {
    let (tx, rx) = channel();
    let server = serve(model, move || Fragile(tx.clone()));
    let mut others: Vec<_> = (0..20).map(|_| client(server.addr)).collect();
    for (i, s) in others.iter_mut().enumerate() {
        let msg = format!("hello {i}");
        assert_eq!(roundtrip(s, msg.as_bytes()), msg.as_bytes());
    }
    let mut victim = client(server.addr);
    victim.write_all(b"boom").unwrap();
    assert_eq!(
        next(&rx),
        "lost:aborted: the protocol panicked: asked to explode"
    );
    expect_reset(&mut victim);
    for (i, s) in others.iter_mut().enumerate() {
        let msg = format!("still here {i}");
        assert_eq!(roundtrip(s, msg.as_bytes()), msg.as_bytes());
    }
    // New connections are still served.
    let mut late = client(server.addr);
    assert_eq!(roundtrip(&mut late, b"late"), b"late");
    assert_quiet(&rx);
}

pub fn stopping_the_server_closes_every_open_connection(model: Model) {
    let (server, rx) = recording(model, true);
    let mut clients: Vec<_> = (0..3).map(|_| client(server.addr)).collect();
    for c in &mut clients {
        assert_eq!(roundtrip(c, b"hi"), b"hi");
    }
    // Connections run side by side: their events interleave.
    let mut events: Vec<String> = (0..6).map(|_| next(&rx)).collect();
    events.sort();
    assert_eq!(
        events,
        ["data:hi", "data:hi", "data:hi", "made", "made", "made"]
    );
    server.stop();
    for _ in 0..3 {
        assert_eq!(next(&rx), "lost:ReactorStopped");
    }
    for c in &mut clients {
        assert_eq!(read_to_eof(c), b"");
    }
    assert_quiet(&rx);
}

// ------------------------------------------------------------------ deadlines and resets

/// Keeps its connection when its deadline passes, optionally setting a new
/// one; reports the hook and the end.
struct KeepsPastDeadline {
    tx: Sender<String>,
    extend_to: Option<Duration>,
}

impl Protocol for KeepsPastDeadline {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        transport.set_deadline(Some(Duration::from_millis(100)));
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn timeout_connection(&mut self, transport: &mut dyn Transport, timeout: Timeout) {
        let _ = self.tx.send(format!("timeout:{timeout:?}"));
        if let Some(after) = self.extend_to.take() {
            transport.set_deadline(Some(after));
        }
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(format!("lost:{reason:?}"));
    }
}

pub fn a_connection_kept_past_its_deadline_is_aborted_after_the_grace(model: Model) {
    let (tx, rx) = channel();
    let server = serve(model, move || KeepsPastDeadline {
        tx: tx.clone(),
        extend_to: None,
    });
    let mut s = client(server.addr);
    assert_eq!(next(&rx), "timeout:Deadline");
    // Told once, then aborted: not asked again every second.
    assert_eq!(next(&rx), "lost:Aborted");
    expect_reset(&mut s);
}

pub fn a_deadline_set_in_the_hook_replaces_the_old_one(model: Model) {
    let (tx, rx) = channel();
    let server = serve(model, move || KeepsPastDeadline {
        tx: tx.clone(),
        extend_to: Some(Duration::from_millis(300)),
    });
    let _s = client(server.addr);
    let started = Instant::now();
    assert_eq!(next(&rx), "timeout:Deadline");
    // The extended deadline, told once, then the grace, then the abort.
    assert_eq!(next(&rx), "timeout:Deadline");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(next(&rx), "lost:Aborted");
}

/// Stops reading at once (or opts into half-close), and reports the end.
struct NotReading {
    tx: Sender<String>,
    pause: bool,
}

impl Protocol for NotReading {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        if self.pause {
            transport.pause_reading();
        }
        let _ = self.tx.send("made".into());
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn allows_half_close(&self) -> bool {
        true
    }
    fn read_connection_lost(&mut self, _t: &mut dyn Transport) {
        let _ = self.tx.send("read_connection_lost".into());
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(format!("lost:{}", reason.is_clean()));
    }
}

pub fn a_reset_ends_a_connection_that_is_not_reading(model: Model) {
    for pause in [true, false] {
        let (tx, rx) = channel();
        let server = serve(model, move || NotReading {
            tx: tx.clone(),
            pause,
        });
        let s = client(server.addr);
        assert_eq!(next(&rx), "made");
        if !pause {
            s.shutdown(std::net::Shutdown::Write).unwrap();
            assert_eq!(next(&rx), "read_connection_lost");
        }
        reset(s);
        assert_eq!(next(&rx), "lost:false", "paused: {pause}");
    }
}
