//! `echo_load`, both engines (the reactor and `--io-uring`), against servers
//! in this process that echo faithfully, corrupt one byte, or replay an old
//! message: the load's verdict must be exact, or its figures mean nothing.
//!
//! Needs the example binaries: `cargo test` builds them; with a target
//! filter, run `cargo build --workspace --examples` first.

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/programs.rs"]
mod programs;

use std::process::Command;

use common::{listening, Echo};
use programs::{example, run_to_end};
use reactor::{Protocol, Transport};

const SIZE: usize = 512;

/// What one `echo_load` run reported.
#[derive(Debug)]
struct Report {
    msgs: u64,
    errors: u64,
}

/// Runs echo_load with one connection for 0.3 s; None when the io_uring
/// engine cannot run on this machine (said on stderr: the test is skipped).
fn load(addr: std::net::SocketAddr, io_uring: bool) -> Option<Report> {
    let port = addr.port().to_string();
    let size = SIZE.to_string();
    let mut args = vec![
        "--port", &port, "--conns", "1", "--size", &size, "--secs", "0.3",
    ];
    if io_uring {
        args.push("--io-uring");
    }
    let out = run_to_end(Command::new(example("echo_load")).args(&args), b"");
    if io_uring && !out.status.success() && out.stderr.contains("io_uring is not available") {
        // Only where this process cannot set up such a ring either: a ring
        // that works here and not there is a bug in the load.
        assert!(
            !io_uring_works(),
            "echo_load says io_uring is unavailable, but it works here: {}",
            out.stderr
        );
        eprintln!("skipped: {}", out.stderr.trim());
        return None;
    }
    assert!(
        out.status.success(),
        "echo_load {args:?}: {}\n{}",
        out.status,
        out.stderr
    );
    let line = out.stdout.lines().next().expect("a result line");
    let field = |name: &str| -> u64 {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    };
    Some(Report {
        msgs: field("msgs"),
        errors: field("errors"),
    })
}

/// Whether this process can set up the ring `echo_load --io-uring` uses.
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

/// Echoes faithfully, except that the byte at stream offset 1,000 (the
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

/// Answers every message with the first one it received: a stale echo.
#[derive(Default)]
struct ReplayFirst {
    first: Vec<u8>,
    pending: usize,
}

impl Protocol for ReplayFirst {
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        let missing = SIZE.saturating_sub(self.first.len());
        self.first
            .extend_from_slice(&data[..missing.min(data.len())]);
        self.pending += data.len();
        while self.pending >= SIZE && self.first.len() == SIZE {
            self.pending -= SIZE;
            transport.write(&self.first);
        }
    }
}

/// Echoes faithfully, but sends one byte too many after the third message.
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

fn faithful_echo_has_no_errors(io_uring: bool) {
    let server = listening(|| Echo);
    if let Some(r) = load(server.addr, io_uring) {
        assert!(r.msgs > 10, "{r:?}");
        assert_eq!(r.errors, 0, "{r:?}");
    }
}

fn one_flipped_byte_is_one_error(io_uring: bool) {
    let server = listening(|| FlipOneByte { seen: 0 });
    if let Some(r) = load(server.addr, io_uring) {
        assert!(r.msgs > 10, "{r:?}");
        assert_eq!(r.errors, 1, "{r:?}");
    }
}

fn a_replayed_message_is_an_error_every_time(io_uring: bool) {
    let server = listening(ReplayFirst::default);
    if let Some(r) = load(server.addr, io_uring) {
        assert!(r.msgs > 10, "{r:?}");
        // Only the first answer is the message it answers.
        assert_eq!(r.errors, r.msgs - 1, "{r:?}");
    }
}

fn a_surplus_byte_is_one_error_and_ends_the_run(io_uring: bool) {
    let server = listening(|| OneByteTooMany { seen: 0 });
    if let Some(r) = load(server.addr, io_uring) {
        // Two whole messages; the third came back with a byte too many.
        assert_eq!(r.msgs, 2, "{r:?}");
        assert_eq!(r.errors, 1, "{r:?}");
    }
}

#[test]
fn reactor_engine_faithful_echo_has_no_errors() {
    faithful_echo_has_no_errors(false);
}

#[test]
fn reactor_engine_counts_one_flipped_byte_once() {
    one_flipped_byte_is_one_error(false);
}

#[test]
fn reactor_engine_catches_replayed_messages() {
    a_replayed_message_is_an_error_every_time(false);
}

#[test]
fn reactor_engine_counts_a_surplus_byte_once() {
    a_surplus_byte_is_one_error_and_ends_the_run(false);
}

#[cfg(target_os = "linux")]
#[test]
fn io_uring_engine_faithful_echo_has_no_errors() {
    faithful_echo_has_no_errors(true);
}

#[cfg(target_os = "linux")]
#[test]
fn io_uring_engine_counts_one_flipped_byte_once() {
    one_flipped_byte_is_one_error(true);
}

#[cfg(target_os = "linux")]
#[test]
fn io_uring_engine_catches_replayed_messages() {
    a_replayed_message_is_an_error_every_time(true);
}

#[cfg(target_os = "linux")]
#[test]
fn io_uring_engine_counts_a_surplus_byte_once() {
    a_surplus_byte_is_one_error_and_ends_the_run(true);
}

#[cfg(target_os = "linux")]
#[test]
fn io_uring_engine_takes_messages_larger_than_the_socket_buffers() {
    // 8 MB does not fit in one send: the kernel takes it in parts.
    let server = listening(|| Echo);
    let port = server.addr.port().to_string();
    let args = [
        "--port",
        &port,
        "--conns",
        "2",
        "--size",
        "8000000",
        "--secs",
        "0.5",
        "--io-uring",
    ];
    let out = run_to_end(Command::new(example("echo_load")).args(args), b"");
    if !out.status.success() && out.stderr.contains("io_uring is not available") {
        assert!(!io_uring_works(), "{}", out.stderr);
        return;
    }
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains(" errors=0"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(!out.stdout.contains(" msgs=0 "), "{}", out.stdout);
}

#[test]
fn io_uring_engine_refuses_idle_mode() {
    let out = run_to_end(
        Command::new(example("echo_load")).args(["--io-uring", "--idle", "--port", "9"]),
        b"",
    );
    assert!(!out.status.success());
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
}

/// The hand-written mio baseline of `bench/echo.sh` must echo exactly too,
/// including when the client stops reading: the server then gets
/// `WouldBlock` on its write, keeps the remainder, stops reading, and once
/// the client reads again must flush and go back to reading what waited.
#[test]
fn the_mio_baseline_echoes_every_byte() {
    use std::io::{ErrorKind, Read, Write};
    use std::time::Duration;

    let server = programs::Server::start("mio_echo_server");
    if let Some(r) = load(server.addr, false) {
        assert!(r.msgs > 10, "{r:?}");
        assert_eq!(r.errors, 0, "{r:?}");
    }
    let mut stream = programs::connect(server.addr);
    // Write without reading until nothing more goes in for 200 ms: every
    // buffer on the way is full and the server has stopped reading.
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut sent = Vec::new();
    let mut seed = 0;
    loop {
        let chunk = common::pattern(64 * 1024, seed);
        match stream.write(&chunk) {
            Ok(n) => sent.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("write: {e}"),
        }
        seed += 1;
        assert!(sent.len() < 256 << 20, "the server never stopped reading");
    }
    stream.set_read_timeout(Some(common::WAIT)).unwrap();
    let mut back = vec![0u8; sent.len()];
    stream.read_exact(&mut back).expect("the whole echo");
    assert!(back == sent, "the echo of {} bytes differs", sent.len());
}
