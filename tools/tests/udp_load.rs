//! `udp_load`, lock-step and with a window of requests in flight, its
//! sockets connected or not, against
//! UDP servers in this process that echo faithfully, answer a window in
//! reverse order, or garble every other answer: the load's verdict must be
//! exact, or its figures mean nothing.
//!
//! Needs the example binaries: `cargo test` builds them; with a target
//! filter, run `cargo build --workspace --examples` first.

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/programs.rs"]
mod programs;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;

use common::{localhost, ReactorThread};
use programs::{example, run_to_end};
use reactor::{DatagramProtocol, DatagramTransport};

const WINDOW: usize = 8;

/// What one `udp_load` run reported.
#[derive(Debug)]
struct Report {
    msgs: u64,
    errors: u64,
    lost: u64,
    late: u64,
}

/// Runs udp_load with two clients of `window` requests for 0.3 s, their
/// sockets connected or not.
fn load(addr: SocketAddr, window: usize, connected: bool) -> Report {
    let port = addr.port().to_string();
    let window = window.to_string();
    let mut args = vec!["--port", &port, "--clients", "2", "--size", "64"];
    args.extend(["--window", &window, "--secs", "0.3"]);
    if !connected {
        args.push("--unconnected");
    }
    let out = run_to_end(Command::new(example("udp_load")).args(&args), b"");
    assert!(
        out.status.success(),
        "udp_load {args:?}: {}\n{}",
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
    Report {
        msgs: field("msgs"),
        errors: field("errors"),
        lost: field("lost"),
        late: field("late"),
    }
}

fn serve(protocol: impl DatagramProtocol + Send) -> ReactorThread {
    ReactorThread::start(move |r| Ok(r.listen_udp(localhost(), protocol)?.local_addr()))
}

/// Answers every datagram to its sender, unchanged.
struct Echo;

impl DatagramProtocol for Echo {
    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        t.write_to(data, from);
    }
}

/// Holds each sender's datagrams until it has [`WINDOW`], then answers them
/// newest first.
#[derive(Default)]
struct Reversed(HashMap<SocketAddr, Vec<Vec<u8>>>);

impl DatagramProtocol for Reversed {
    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        let held = self.0.entry(from).or_default();
        held.push(data.to_vec());
        if held.len() == WINDOW {
            for d in held.drain(..).rev() {
                t.write_to(&d, from);
            }
        }
    }
}

/// Echoes, flipping a byte of every other answer.
#[derive(Default)]
struct GarbleEveryOther(u64);

impl DatagramProtocol for GarbleEveryOther {
    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        self.0 += 1;
        let mut answer = data.to_vec();
        if self.0 % 2 == 0 {
            answer[10] ^= 0x5a;
        }
        t.write_to(&answer, from);
    }
}

#[test]
fn a_faithful_echo_answers_every_request_lock_step_or_windowed() {
    let server = serve(Echo);
    for (window, connected) in [(1, true), (WINDOW, true), (WINDOW, false)] {
        let r = load(server.addr, window, connected);
        let run = format!("window {window}, connected {connected}");
        assert!(r.msgs > 10, "{run}: {r:?}");
        assert_eq!((r.errors, r.lost, r.late), (0, 0, 0), "{run}: {r:?}");
    }
}

#[test]
fn answers_out_of_order_within_the_window_all_count() {
    let server = serve(Reversed::default());
    for connected in [true, false] {
        let r = load(server.addr, WINDOW, connected);
        let run = format!("connected {connected}");
        assert!(r.msgs >= 2 * WINDOW as u64, "{run}: {r:?}");
        assert_eq!((r.errors, r.lost, r.late), (0, 0, 0), "{run}: {r:?}");
    }
}

#[test]
fn every_garbled_answer_is_one_error() {
    let server = serve(GarbleEveryOther::default());
    let r = load(server.addr, WINDOW, true);
    // Each garbled answer gives up the oldest request in flight, whose
    // faithful answer (if it comes later) is late, not a second error.
    assert!(r.msgs > 10, "{r:?}");
    assert!(r.errors > 10, "{r:?}");
    assert!(
        r.msgs.abs_diff(r.errors) <= 2 * WINDOW as u64,
        "about one in two: {r:?}"
    );
    // Given up at once, not left to time out.
    assert_eq!((r.lost, r.late), (0, 0), "{r:?}");
}

/// The benchmark's baselines, tokio's server and the blocking floor, must
/// echo exactly too, lock-step and windowed, or their figures mean nothing.
#[test]
fn the_baseline_servers_answer_every_request() {
    for name in ["tokio_udp_echo_server", "blocking_udp_echo_server"] {
        let server = programs::Server::start(name);
        for (window, connected) in [(1, true), (WINDOW, false)] {
            let r = load(server.addr, window, connected);
            let run = format!("{name}, window {window}, connected {connected}");
            assert!(r.msgs > 10, "{run}: {r:?}");
            assert_eq!((r.errors, r.lost, r.late), (0, 0, 0), "{run}: {r:?}");
        }
    }
}
