//! `tls_load`, both ping-pong engines (tokio-rustls and `--io-uring`), its
//! handshakes mode and its idle mode, against TLS servers on the reactor in
//! this process that echo faithfully, corrupt one byte, or send one byte too
//! many: the load's verdict must be exact, or `bench/tls.sh`'s figures mean
//! nothing.
//!
//! Needs the example binaries: `cargo test` builds them; with a target
//! filter, run `cargo build --workspace --examples` first.

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/programs.rs"]
mod programs;
#[path = "../../tests/common/tls.rs"]
mod tls_common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use common::{localhost, wait_until, Echo, ReactorThread};
use programs::{example, run_to_end, Running, WAIT};
use reactor::{Protocol, Transport};
use tls_common::Certs;

const SIZE: usize = 512;

/// A reactor thread serving `factory`'s protocols over TLS with `certs`.
fn tls_server<P: Protocol>(
    certs: &Certs,
    factory: impl FnMut() -> P + Send + 'static,
) -> ReactorThread {
    let config = certs.server_config();
    ReactorThread::start(move |r| Ok(r.listen_tls(localhost(), config, factory)?.local_addr()))
}

/// What one `tls_load` run reported.
#[derive(Debug)]
struct Report {
    msgs: u64,
    errors: u64,
    full_handshakes: Option<u64>,
}

/// Runs tls_load against `server` for 0.3 s with one connection of SIZE-byte
/// messages and `extra` arguments; None when the io_uring engine cannot run
/// on this machine (said on stderr: the test is skipped).
fn load(certs: &Certs, server: &ReactorThread, extra: &[&str]) -> Option<Report> {
    let port = server.addr.port().to_string();
    let size = SIZE.to_string();
    let ca = certs.ca.to_str().expect("a UTF-8 path").to_string();
    let mut args = vec![
        "--port", &port, "--ca", &ca, "--conns", "1", "--size", &size, "--secs", "0.3",
    ];
    args.extend_from_slice(extra);
    let out = run_to_end(Command::new(example("tls_load")).args(&args), b"");
    if extra.contains(&"--io-uring")
        && !out.status.success()
        && out.stderr.contains("io_uring is not available")
    {
        // Only where this process cannot set up such a ring either.
        assert!(
            !io_uring_works(),
            "tls_load says io_uring is unavailable, but it works here: {}",
            out.stderr
        );
        eprintln!("skipped: {}", out.stderr.trim());
        return None;
    }
    assert!(
        out.status.success(),
        "tls_load {args:?}: {}\n{}",
        out.status,
        out.stderr
    );
    let line = out.stdout.lines().next().expect("a result line");
    let field = |name: &str| -> Option<u64> {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
    };
    let need = |name: &str| field(name).unwrap_or_else(|| panic!("no {name} in {line:?}"));
    Some(Report {
        msgs: need("msgs"),
        errors: need("errors"),
        full_handshakes: field("full_handshakes"),
    })
}

/// Whether this process can set up the ring `tls_load --io-uring` uses.
#[cfg(target_os = "linux")]
fn io_uring_works() -> bool {
    io_uring::IoUring::<io_uring::squeue::Entry>::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(8)
        .is_ok()
}

#[cfg(not(target_os = "linux"))]
fn io_uring_works() -> bool {
    false
}

/// Echoes faithfully, except that the byte at stream offset 1,000 (in the
/// second message) comes back flipped.
struct FlipOneByte {
    seen: usize,
}

impl Protocol for FlipOneByte {
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        let mut reply = data.to_vec();
        if (self.seen..self.seen + data.len()).contains(&1000) {
            reply[1000 - self.seen] ^= 0x5a;
        }
        self.seen += data.len();
        transport.write(&reply);
    }
}

/// Echoes faithfully, but sends one byte too many with the third message.
struct OneByteTooMany {
    seen: usize,
}

impl Protocol for OneByteTooMany {
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        let before = self.seen;
        self.seen += data.len();
        let mut reply = data.to_vec();
        if before < 3 * SIZE && self.seen >= 3 * SIZE {
            reply.push(b'!');
        }
        transport.write(&reply);
    }
}

/// Echoes faithfully, or with every byte flipped.
struct MaybeFlip {
    flip: bool,
}

impl Protocol for MaybeFlip {
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        let reply: Vec<u8> = data
            .iter()
            .map(|b| if self.flip { !b } else { *b })
            .collect();
        transport.write(&reply);
    }
}

fn faithful_echo_has_no_errors(engine: &[&str]) {
    let certs = Certs::new("load-faithful");
    let server = tls_server(&certs, || Echo);
    if let Some(r) = load(&certs, &server, engine) {
        assert!(r.msgs > 10, "{r:?}");
        assert_eq!(r.errors, 0, "{r:?}");
        assert_eq!(r.full_handshakes, None, "{r:?}");
    }
}

fn one_flipped_byte_is_one_error(engine: &[&str]) {
    let certs = Certs::new("load-flip");
    let server = tls_server(&certs, || FlipOneByte { seen: 0 });
    if let Some(r) = load(&certs, &server, engine) {
        assert!(r.msgs > 10, "{r:?}");
        assert_eq!(r.errors, 1, "{r:?}");
    }
}

fn a_surplus_byte_is_one_error_and_ends_the_run(engine: &[&str]) {
    let certs = Certs::new("load-surplus");
    let server = tls_server(&certs, || OneByteTooMany { seen: 0 });
    if let Some(r) = load(&certs, &server, engine) {
        // Two whole messages; the third came back with a byte too many.
        assert_eq!(r.msgs, 2, "{r:?}");
        assert_eq!(r.errors, 1, "{r:?}");
    }
}

#[test]
fn tokio_engine_faithful_echo_has_no_errors() {
    faithful_echo_has_no_errors(&[]);
}

#[test]
fn tokio_engine_counts_one_flipped_byte_once() {
    one_flipped_byte_is_one_error(&[]);
}

#[test]
fn tokio_engine_counts_a_surplus_byte_once() {
    a_surplus_byte_is_one_error_and_ends_the_run(&[]);
}

#[cfg(target_os = "linux")]
#[test]
fn io_uring_engine_faithful_echo_has_no_errors() {
    faithful_echo_has_no_errors(&["--io-uring"]);
}

#[cfg(target_os = "linux")]
#[test]
fn io_uring_engine_counts_one_flipped_byte_once() {
    one_flipped_byte_is_one_error(&["--io-uring"]);
}

#[cfg(target_os = "linux")]
#[test]
fn io_uring_engine_counts_a_surplus_byte_once() {
    a_surplus_byte_is_one_error_and_ends_the_run(&["--io-uring"]);
}

#[test]
fn every_handshake_is_full_and_counted() {
    every_handshake_is_full_and_counted_with(&["--handshakes"]);
}

#[test]
fn every_handshake_is_full_and_counted_with_the_message_after_it() {
    every_handshake_is_full_and_counted_with(&["--handshakes", "--message-after-handshake"]);
}

fn every_handshake_is_full_and_counted_with(args: &[&str]) {
    let certs = Certs::new("load-handshakes");
    let made = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&made);
    let server = tls_server(&certs, move || {
        counter.fetch_add(1, Ordering::SeqCst);
        Echo
    });
    let r = load(&certs, &server, args).expect("a report");
    // A handshake in a debug build takes milliseconds, and more when the
    // server answers the message after the tickets (see tls_load's exchange).
    assert!(r.msgs >= 2, "{r:?}");
    assert_eq!(r.errors, 0, "{r:?}");
    // Resumption is off: each exchange was a full handshake of its own.
    assert_eq!(r.full_handshakes, Some(r.msgs), "{r:?}");
    // One connection per exchange (one more may have been cut by the end).
    let made = made.load(Ordering::SeqCst) as u64;
    assert!(
        made == r.msgs || made == r.msgs + 1,
        "{made} connections, {r:?}"
    );
}

#[test]
fn a_bad_echo_ends_that_handshake_client_with_one_error() {
    let certs = Certs::new("load-handshake-flip");
    let made = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&made);
    // The third connection's echo comes back flipped.
    let server = tls_server(&certs, move || MaybeFlip {
        flip: counter.fetch_add(1, Ordering::SeqCst) == 2,
    });
    let r = load(&certs, &server, &["--handshakes"]).expect("a report");
    assert_eq!(r.msgs, 2, "{r:?}");
    assert_eq!(r.errors, 1, "{r:?}");
    assert_eq!(r.full_handshakes, Some(2), "{r:?}");
}

#[test]
fn idle_connections_are_announced_held_and_released_at_end_of_input() {
    let certs = Certs::new("load-idle");
    let (tx, rx) = channel();
    struct Held(std::sync::mpsc::Sender<&'static str>);
    impl Protocol for Held {
        fn connection_made(&mut self, _t: &mut dyn Transport) {
            let _ = self.0.send("made");
        }
        fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {
            let _ = self.0.send("data");
        }
        fn connection_lost(&mut self, _t: &mut dyn Transport, _r: &reactor::Reason) {
            let _ = self.0.send("lost");
        }
    }
    let server = tls_server(&certs, move || Held(tx.clone()));
    let port = server.addr.port().to_string();
    let mut child = Command::new(example("tls_load"))
        .args(["--port", &port, "--idle", "3", "--hold-secs", "30", "--ca"])
        .arg(&certs.ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tls_load");
    let stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut child = Running(child);
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read tls_load's line");
    assert_eq!(line, "connected 3\n");
    // Each of the three completed its handshake: the server made a protocol.
    for _ in 0..3 {
        assert_eq!(rx.recv_timeout(WAIT), Ok("made"));
    }
    // Held while input stays open (--hold-secs is 30): nothing is lost for a
    // while, and the client is still running.
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(300)),
        Err(RecvTimeoutError::Timeout)
    );
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "tls_load exited early"
    );
    // At end of input the client exits, and all three go.
    drop(stdin);
    let mut lost = 0;
    while lost < 3 {
        assert_eq!(rx.recv_timeout(WAIT), Ok("lost"));
        lost += 1;
    }
    wait_until("tls_load exits", || child.0.try_wait().unwrap().is_some());
    assert!(child.0.wait().unwrap().success());
}

#[test]
fn idle_connections_are_released_after_hold_secs_with_input_open() {
    let certs = Certs::new("load-idle-hold");
    let server = tls_server(&certs, || Echo);
    let port = server.addr.port().to_string();
    let mut child = Command::new(example("tls_load"))
        .args(["--port", &port, "--idle", "2", "--hold-secs", "0.2", "--ca"])
        .arg(&certs.ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tls_load");
    // Input stays open: only --hold-secs can end it.
    let _stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut child = Running(child);
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read tls_load's line");
    assert_eq!(line, "connected 2\n");
    wait_until("tls_load exits", || child.0.try_wait().unwrap().is_some());
    assert!(child.0.wait().unwrap().success());
}

#[test]
fn a_non_loopback_address_is_refused() {
    let certs = Certs::new("load-remote");
    let out = run_to_end(
        Command::new(example("tls_load"))
            .args(["--host", "0.0.0.0", "--port", "9", "--ca"])
            .arg(&certs.ca),
        b"",
    );
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("not a loopback address"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "");
}
