//! `http_hello`'s two clocks, run with `--head-timeout 1 --idle-timeout 2`:
//! a request head must arrive in full within the head timeout of its first
//! byte however slowly it trickles in (slowloris), a keep-alive connection
//! waiting the idle timeout for its next request is closed (a body that
//! stalls that long gets a `408`), and the clients beside them are served
//! at once.
//!
//! Build the examples first (`cargo build --examples`): a target filter
//! does not.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

#[path = "common/programs.rs"]
mod programs;

use programs::*;

const HEAD_TIMEOUT: Duration = Duration::from_secs(1);
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// How much earlier than due a close may be seen: the server's clock
/// starts a little after ours, never before, but timers are not exact.
const EARLY: Duration = Duration::from_millis(50);

/// How late after its timeout a close may be seen.
const MARGIN: Duration = Duration::from_secs(2);

/// How long a normal request may take beside the slow ones.
const AT_ONCE: Duration = Duration::from_millis(500);

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";
const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 12\r\n\r\nhello world\n";
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\nrequest timeout\n";

/// A slowloris's start: a request line and one header, then no end.
const PARTIAL_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n";

/// What a slowloris trickles, one byte at a time, over and over: whole
/// header lines now and then, never the empty line that ends the head.
const TRICKLE: &[u8] = b"X-Slow: y\r\n";

fn start() -> Server {
    Server::start_with(
        "http_hello",
        &["--head-timeout", "1", "--idle-timeout", "2"],
    )
}

/// Reads until the server closes `conn`, failing the test if that has not
/// happened by `by`; returns what arrived and when the close was seen. A
/// reset after the bytes counts as the close: a peer that goes on sending
/// after the server's FIN is reset once the server stops lingering.
fn read_until_closed(conn: &mut TcpStream, by: Instant) -> (Vec<u8>, Instant) {
    let mut got = Vec::new();
    let mut buf = [0; 1024];
    loop {
        let left = by.saturating_duration_since(Instant::now());
        conn.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match conn.read(&mut buf) {
            Ok(0) => return (got, Instant::now()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (got, Instant::now()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => panic!(
                "not closed in time; got {:?}",
                String::from_utf8_lossy(&got)
            ),
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Sends one request on `conn` and returns how long its answer took.
fn timed_request(conn: &mut TcpStream) -> Duration {
    let sent = Instant::now();
    conn.write_all(GET).unwrap();
    expect(conn, OK);
    sent.elapsed()
}

/// Writes one more byte of [`TRICKLE`] to every connection every 300 ms,
/// for at most `rounds` rounds or until `stop`; reports each round done on
/// `done`. Write errors are the server closing, and are ignored.
fn trickle(
    mut conns: Vec<TcpStream>,
    rounds: usize,
    stop: &AtomicBool,
    done: &Sender<usize>,
) -> usize {
    for round in 0..rounds {
        // Pacing the load, not waiting for anything.
        thread::sleep(Duration::from_millis(300));
        if stop.load(Ordering::Relaxed) {
            return round;
        }
        let byte = &TRICKLE[round % TRICKLE.len()..][..1];
        for conn in &mut conns {
            let _ = conn.write(byte);
        }
        let _ = done.send(round + 1);
    }
    rounds
}

#[test]
fn slowloris_heads_get_408_and_close_while_a_normal_client_is_served_at_once() {
    const SLOW: usize = 300;
    // 300 connections, their clones for the trickler, and the server's.
    let _ = rlimit::increase_nofile_limit(4096);
    let server = start();
    let mut slow: Vec<(TcpStream, Instant)> = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        // The server's clock for a first request starts at its accept,
        // after this.
        let opened = Instant::now();
        let mut conn = connect(server.addr);
        conn.set_nodelay(true).unwrap();
        conn.write_all(PARTIAL_HEAD).unwrap();
        slow.push((conn, opened));
    }
    let writers = slow.iter().map(|(c, _)| c.try_clone().unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (done, rounds) = channel();
    let trickler = thread::spawn({
        let stop = Arc::clone(&stop);
        // Enough rounds to outlast the head timeout and the margin.
        move || trickle(writers, 12, &stop, &done)
    });

    // A normal client beside them: at once, and after each of the first
    // three rounds of trickling (the slow heads are all younger than the
    // head timeout then), on a fresh connection and on a kept-alive one.
    let mut kept = connect(server.addr);
    let mut took = vec![
        timed_request(&mut connect(server.addr)),
        timed_request(&mut kept),
    ];
    for round in 1..=3 {
        assert_eq!(rounds.recv_timeout(WAIT), Ok(round));
        took.push(timed_request(&mut connect(server.addr)));
        took.push(timed_request(&mut kept));
    }
    let slowest = took.iter().max().unwrap();
    assert!(
        *slowest < AT_ONCE,
        "a normal request took {slowest:?} beside the slowloris ones: {took:?}"
    );

    // Every slow head: 408, then the close, between the head timeout and
    // the margin after it.
    let mut latest = Duration::ZERO;
    for (i, (conn, opened)) in slow.iter_mut().enumerate() {
        let (got, seen) = read_until_closed(conn, *opened + HEAD_TIMEOUT + MARGIN);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(REQUEST_TIMEOUT),
            "slow connection {i}"
        );
        let after = seen - *opened;
        assert!(
            after >= HEAD_TIMEOUT - EARLY,
            "slow connection {i} closed after {after:?}, before the head timeout"
        );
        latest = latest.max(after);
    }
    stop.store(true, Ordering::Relaxed);
    let trickled = trickler.join().unwrap();
    assert!(
        trickled >= 3,
        "only {trickled} rounds of trickling: the test did not load the server"
    );
    eprintln!(
        "{SLOW} slow heads closed at most {latest:?} after their connect; \
         normal requests took at most {slowest:?}"
    );
}

#[test]
fn the_head_clock_starts_with_the_connection_then_with_each_heads_first_byte() {
    let server = start();
    // Sends nothing: the first request's clock runs from the connection's start.
    let opened = Instant::now();
    let mut silent = connect(server.addr);
    // Sends a request and the start of the next in one write: the second
    // head's clock starts with that read, after the first is answered.
    let mut pipelined = connect(server.addr);
    let sent = Instant::now();
    pipelined.write_all(&[GET, b"GET / HT"].concat()).unwrap();
    expect(&mut pipelined, OK);
    // Keeps its connection quiet past the head timeout (within the idle
    // one) after its answer, then starts a head: its clock starts then.
    let mut paused = connect(server.addr);
    paused.write_all(GET).unwrap();
    expect(&mut paused, OK);
    let answered = Instant::now();

    for (name, conn, from) in [
        ("silent", &mut silent, opened),
        ("pipelined", &mut pipelined, sent),
    ] {
        let (got, seen) = read_until_closed(conn, from + HEAD_TIMEOUT + MARGIN);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(REQUEST_TIMEOUT),
            "{name}"
        );
        let after = seen - from;
        assert!(
            after >= HEAD_TIMEOUT - EARLY,
            "{name} closed after {after:?}"
        );
    }

    // The pause is the scenario, not a wait for anything.
    let pause = HEAD_TIMEOUT + (IDLE_TIMEOUT - HEAD_TIMEOUT) / 2;
    thread::sleep(pause.saturating_sub(answered.elapsed()));
    let started = Instant::now();
    paused.write_all(PARTIAL_HEAD).unwrap();
    let (got, seen) = read_until_closed(&mut paused, started + HEAD_TIMEOUT + MARGIN);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(REQUEST_TIMEOUT),
        "paused"
    );
    let after = seen - started;
    assert!(
        after >= HEAD_TIMEOUT - EARLY,
        "the head begun after a pause closed {after:?} after its first byte"
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_without_an_answer_a_stalled_body_gets_408_and_a_busy_one_stays(
) {
    let server = start();
    let addr = server.addr;
    // Asks every half second for 1.5 idle timeouts, then once more.
    let busy = thread::spawn(move || {
        let mut conn = connect(addr);
        let began = Instant::now();
        while began.elapsed() < IDLE_TIMEOUT + IDLE_TIMEOUT / 2 {
            timed_request(&mut conn);
            // Pacing the requests, not waiting for anything.
            thread::sleep(Duration::from_millis(500));
        }
        timed_request(&mut conn);
        began.elapsed()
    });

    // A body that stalls has a request in progress: it gets the 408.
    let mut stalled = connect(server.addr);
    let stalled_at = Instant::now();
    stalled
        .write_all(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();

    let mut idle = connect(server.addr);
    idle.write_all(GET).unwrap();
    expect(&mut idle, OK);
    let answered = Instant::now();
    let (got, seen) =
        read_until_closed(&mut idle, answered + IDLE_TIMEOUT + Duration::from_secs(3));
    assert_eq!(String::from_utf8_lossy(&got), "", "bytes before the close");
    let after = seen - answered;
    assert!(
        after >= IDLE_TIMEOUT - EARLY,
        "closed {after:?} after its answer, before the idle timeout"
    );

    let (got, seen) = read_until_closed(&mut stalled, stalled_at + IDLE_TIMEOUT + MARGIN);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(REQUEST_TIMEOUT)
    );
    let stalled_for = seen - stalled_at;
    assert!(
        stalled_for >= IDLE_TIMEOUT - EARLY,
        "a stalled body got its 408 after {stalled_for:?}"
    );

    let open_for = busy.join().unwrap();
    assert!(open_for > IDLE_TIMEOUT + IDLE_TIMEOUT / 2);
    eprintln!(
        "idle connection closed {after:?} after its answer; busy one served for {open_for:?}"
    );
}

#[test]
fn the_help_explains_both_timeouts_which_take_fractions_but_not_zero() {
    let out = run_to_end(
        std::process::Command::new(example("http_hello")).arg("--help"),
        b"",
    );
    out.assert_success();
    for text in [
        "--head-timeout <SECS>",
        "408 Request Timeout",
        "[default: 10]",
        "--idle-timeout <SECS>",
        "keep-alive",
        "[default: 60]",
    ] {
        assert!(
            out.stdout.contains(text),
            "{text:?} not in:\n{}",
            out.stdout
        );
    }
    for flag in ["--head-timeout", "--idle-timeout"] {
        let out = run_to_end(
            std::process::Command::new(example("http_hello")).args(["--port", "0", flag, "0"]),
            b"",
        );
        assert!(!out.status.success(), "{flag} 0 accepted");
        assert!(out.stderr.contains("must be more than 0"), "{}", out.stderr);
    }
    let server = Server::start_with(
        "http_hello",
        &["--head-timeout", "0.5", "--idle-timeout", "0.25"],
    );
    let opened = Instant::now();
    let mut conn = connect(server.addr);
    let (got, seen) = read_until_closed(&mut conn, opened + HEAD_TIMEOUT + MARGIN);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(REQUEST_TIMEOUT)
    );
    // Half a second, not rounded to a whole one.
    let after = seen - opened;
    assert!(
        after >= Duration::from_millis(500) - EARLY && after < HEAD_TIMEOUT,
        "closed after {after:?}"
    );
}
