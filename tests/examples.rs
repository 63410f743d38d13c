//! Runs the example binaries as a user would and talks to them over loopback.
//!
//! `cargo test` builds the examples before running this file; with a target
//! filter (`cargo test --test examples`) it does not, so build them first with
//! `cargo build --examples`.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::thread;

#[path = "common/programs.rs"]
mod programs;

use programs::*;

/// Whether `reply` is exactly `[YYYY-MM-DD HH:MM:SS] ` followed by `message`.
fn is_stamped(reply: &[u8], message: &[u8]) -> bool {
    const SHAPE: &[u8] = b"[dddd-dd-dd dd:dd:dd] ";
    reply.len() == SHAPE.len() + message.len()
        && reply.iter().zip(SHAPE).all(|(&c, &want)| match want {
            b'd' => c.is_ascii_digit(),
            _ => c == want,
        })
        && reply.ends_with(message)
}

#[test]
fn the_stamp_checker_rejects_near_misses() {
    assert!(is_stamped(b"[2024-02-29 23:59:01] hello", b"hello"));
    assert!(!is_stamped(b"[2024-02-29 23:59:01]hello", b"hello"));
    assert!(!is_stamped(b"[2024-02-29 23:59:1] hello", b"hello"));
    assert!(!is_stamped(b"[2024-02-29T23:59:01] hello", b"hello"));
    assert!(!is_stamped(b"[2024-02-29 23:59:01] hello\n", b"hello"));
    assert!(!is_stamped(b"[2024-02-29 23:59:01] jello", b"hello"));
}

#[test]
fn every_example_explains_its_flags() {
    // Every example in examples/, so a new one cannot be forgotten here.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("examples/ is readable")
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            // A one-file example, or a directory holding a main.rs.
            if entry.path().join("main.rs").is_file() {
                return Some(name);
            }
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 10, "examples found: {names:?}");
    for name in &names {
        let out = run_to_end(Command::new(example(name)).arg("--help"), b"");
        assert!(out.status.success(), "{name} --help: {}", out.status);
        for flag in ["--host", "--port"] {
            assert!(
                out.stdout.contains(flag),
                "{name} --help does not mention {flag}:\n{}",
                out.stdout
            );
        }
    }
    for (name, flags) in [
        ("timestamp_client", &["--timeout"][..]),
        ("timestamp_udp_client", &["--timeout"]),
        (
            "broadcast_sender",
            &["--dest", "--message", "--interval", "--count"],
        ),
        ("broadcast_receiver", &["--count"]),
    ] {
        let out = run_to_end(Command::new(example(name)).arg("--help"), b"");
        for flag in flags {
            assert!(
                out.stdout.contains(flag),
                "{name} --help does not mention {flag}:\n{}",
                out.stdout
            );
        }
    }
}

#[test]
fn timestamp_server_stamps_what_it_receives() {
    let server = Server::start("timestamp_server");
    let mut conn = connect(server.addr);
    conn.write_all(b"hello").unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).unwrap();
    assert!(
        is_stamped(&reply, b"hello"),
        "reply: {:?}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(
        server.stop(),
        Vec::<String>::new(),
        "more than one stdout line"
    );
}

#[test]
fn a_server_that_cannot_bind_says_so_once_and_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run_to_end(
        Command::new(example("timestamp_server"))
            .args(["--port", &port])
            .env("RUST_LOG", "off"),
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {}", out.stderr);
    let expected = format!("timestamp_server: cannot listen on 127.0.0.1:{port}: ");
    assert!(lines[0].starts_with(&expected), "stderr: {}", out.stderr);
}

#[test]
fn timestamp_client_sends_each_line_and_prints_each_reply() {
    let server = Server::start("timestamp_server");
    let out = run_to_end(
        Command::new(example("timestamp_client"))
            .args(["--host", "127.0.0.1", "--port"])
            .arg(server.addr.port().to_string())
            .env("RUST_LOG", "off"),
        b"one\ntwo\n\nthree\n",
    );
    out.assert_success();
    assert_eq!(out.stderr, "");
    let lines: Vec<&str> = out.stdout.split_terminator('\n').collect();
    assert!(out.stdout.ends_with('\n'), "stdout: {:?}", out.stdout);
    assert_eq!(lines.len(), 2, "stdout: {:?}", out.stdout);
    assert!(is_stamped(lines[0].as_bytes(), b"one"), "{:?}", lines[0]);
    assert!(is_stamped(lines[1].as_bytes(), b"two"), "{:?}", lines[1]);
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn timestamp_client_that_cannot_connect_says_so_once_and_exits_1() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let out = run_to_end(
        Command::new(example("timestamp_client"))
            .args(["--port", &port.to_string()])
            .env("RUST_LOG", "off"),
        b"never sent\n",
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {:?}", out.stderr);
    let expected = format!("timestamp_client: cannot connect to 127.0.0.1:{port}: ");
    assert!(lines[0].starts_with(&expected), "stderr: {:?}", out.stderr);
    assert!(
        lines[0].to_lowercase().contains("refused"),
        "stderr: {:?}",
        out.stderr
    );
}

#[test]
fn echo_server_returns_a_mebibyte_intact() {
    let server = Server::start("echo_server");
    let conn = connect(server.addr);
    // xorshift: varied bytes, no repeating pattern a misplaced chunk could hide in.
    let mut x: u32 = 0x9e37_79b9;
    let data: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let mut writer = conn.try_clone().unwrap();
    let sent = data.clone();
    // Written from another thread: the echo comes back while we still send.
    let sender = thread::spawn(move || writer.write_all(&sent));
    let mut back = vec![0; data.len()];
    (&conn).read_exact(&mut back).expect("the whole echo");
    sender.join().unwrap().expect("send everything");
    let first_difference = back.iter().zip(&data).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "echo differs");
    assert_eq!(server.stop(), Vec::<String>::new());
}

/// A UDP socket on loopback whose reads give up after [`WAIT`].
fn udp_socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket
}

/// The next datagram on `socket`, and who sent it.
fn receive(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0; 65_536];
    let (n, from) = socket
        .recv_from(&mut buf)
        .expect("a datagram within the wait");
    buf.truncate(n);
    (buf, from)
}

/// Checks that nothing more is waiting on `socket`.
fn expect_no_more_datagrams(socket: &UdpSocket) {
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0; 1024];
    match socket.recv_from(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((n, from)) => panic!(
            "one datagram too many from {from}: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[test]
fn timestamp_udp_server_stamps_each_datagram_back_to_its_sender() {
    let server = Server::start("timestamp_udp_server");
    let socket = udp_socket();
    socket.send_to(b"hello", server.addr).unwrap();
    let (reply, from) = receive(&socket);
    assert_eq!(from, server.addr);
    assert!(
        is_stamped(&reply, b"hello"),
        "reply: {:?}",
        String::from_utf8_lossy(&reply)
    );
    // A longer datagram, then an empty one: the reused reply buffer must
    // not leak bytes of an earlier reply into a later one.
    socket.send_to(b"a longer message", server.addr).unwrap();
    let (reply, _) = receive(&socket);
    assert!(is_stamped(&reply, b"a longer message"), "{reply:?}");
    socket.send_to(b"", server.addr).unwrap();
    let (reply, _) = receive(&socket);
    assert!(
        is_stamped(&reply, b""),
        "reply: {:?}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(
        server.stop(),
        Vec::<String>::new(),
        "more than one stdout line"
    );
}

/// Runs `timestamp_udp_client` against `port` with `input` on its stdin.
fn timestamp_udp_client(port: u16, extra: &[&str], input: &[u8]) -> Output {
    run_to_end(
        Command::new(example("timestamp_udp_client"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(extra)
            .env("RUST_LOG", "off"),
        input,
    )
}

#[test]
fn timestamp_udp_client_sends_each_line_and_prints_each_reply() {
    let server = Server::start("timestamp_udp_server");
    let out = timestamp_udp_client(server.addr.port(), &[], b"one\ntwo\n\nthree\n");
    out.assert_success();
    assert_eq!(out.stderr, "");
    assert!(out.stdout.ends_with('\n'), "stdout: {:?}", out.stdout);
    let lines: Vec<&str> = out.stdout.split_terminator('\n').collect();
    assert_eq!(lines.len(), 2, "stdout: {:?}", out.stdout);
    assert!(is_stamped(lines[0].as_bytes(), b"one"), "{:?}", lines[0]);
    assert!(is_stamped(lines[1].as_bytes(), b"two"), "{:?}", lines[1]);
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn timestamp_udp_client_told_the_port_is_closed_says_so_once_and_exits_1() {
    let port = udp_socket().local_addr().unwrap().port();
    let out = timestamp_udp_client(port, &[], b"hello\nnever sent\n");
    assert_eq!(out.status.code(), Some(1), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {:?}", out.stderr);
    assert!(
        lines[0].starts_with("timestamp_udp_client: ") && lines[0].contains("refused"),
        "stderr: {:?}",
        out.stderr
    );
}

#[test]
fn timestamp_udp_client_goes_on_after_a_missing_reply() {
    let silent = udp_socket();
    let port = silent.local_addr().unwrap().port();
    let out = timestamp_udp_client(port, &["--timeout", "0.2"], b"one\ntwo\n");
    out.assert_success();
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "timestamp_udp_client: no reply within 0.2 s\n".repeat(2)
    );
    assert_eq!(receive(&silent).0, b"one");
    assert_eq!(receive(&silent).0, b"two");
    expect_no_more_datagrams(&silent);
}

#[test]
fn timestamp_udp_client_does_not_take_a_late_reply_for_the_next_lines() {
    let fake = udp_socket();
    let port = fake.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (one, first) = receive(&fake);
        assert_eq!(one, b"one");
        // "two" comes only once the client has given up on "one"; then the
        // late reply to "one" goes out first, where "one" came from.
        let (two, second) = receive(&fake);
        assert_eq!(two, b"two");
        fake.send_to(b"late reply to one", first).unwrap();
        fake.send_to(b"reply to two", second).unwrap();
    });
    let out = timestamp_udp_client(port, &["--timeout", "1"], b"one\ntwo\n");
    server.join().expect("the fake server saw both lines");
    out.assert_success();
    assert_eq!(out.stdout, "reply to two\n");
    assert_eq!(out.stderr, "timestamp_udp_client: no reply within 1 s\n");
}

#[test]
fn broadcast_sender_sends_its_message_count_times_then_exits_0() {
    let receiver = udp_socket();
    let dest = receiver.local_addr().unwrap().to_string();
    let out = run_to_end(
        Command::new(example("broadcast_sender"))
            .args(["--dest", &dest, "--count", "3", "--interval", "0.05"])
            .args(["--message", "hello, everyone"])
            .env("RUST_LOG", "off"),
        b"",
    );
    out.assert_success();
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "");
    // Loopback delivers during the send, so all of them are here by now.
    let (first, sender) = receive(&receiver);
    assert_eq!(first, b"hello, everyone");
    for _ in 1..3 {
        let (data, from) = receive(&receiver);
        assert_eq!(data, b"hello, everyone");
        assert_eq!(from, sender, "all from the one socket");
    }
    expect_no_more_datagrams(&receiver);
}

#[test]
fn broadcast_receiver_prints_each_datagram_and_exits_after_count() {
    let receiver = Server::start_with("broadcast_receiver", &["--count", "2"]);
    let socket = udp_socket();
    let from = socket.local_addr().unwrap();
    // Three at once, likely read in one wake-up: the third must not be printed.
    for message in ["first", "second", "third"] {
        socket.send_to(message.as_bytes(), receiver.addr).unwrap();
    }
    let (status, lines) = receiver.wait_for_exit();
    assert!(status.success(), "{status}");
    assert_eq!(
        lines,
        [
            format!("from {from}: first"),
            format!("from {from}: second")
        ]
    );
}

#[test]
fn udp_upper_server_upper_cases_each_datagram_back_to_its_sender() {
    let server = Server::start("udp_upper_server");
    let socket = udp_socket();
    for (sent, expected) in [
        (
            &b"Hello, World 123 \xc3\xbc!"[..],
            &b"HELLO, WORLD 123 \xc3\xbc!"[..],
        ),
        (b"", b""),
        (b"ok", b"OK"),
    ] {
        socket.send_to(sent, server.addr).unwrap();
        let (reply, from) = receive(&socket);
        assert_eq!(from, server.addr);
        assert_eq!(
            String::from_utf8_lossy(&reply),
            String::from_utf8_lossy(expected)
        );
    }
    assert_eq!(server.stop(), Vec::<String>::new());
}
