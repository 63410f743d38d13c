//! The examples over TLS: `timestamp_server`, `echo_server` (both models),
//! `chat_server` and `http_hello` started with `--tls-cert`/`--tls-key`
//! answer a rustls client with the same bytes as over plain TCP, `http_hello`
//! agrees on ALPN `http/1.1` (with rustls and with `curl`), and
//! `timestamp_client --tls` talks to `timestamp_server` end to end, failing
//! in one line when it does not trust the server.
//!
//! `cargo test` builds the examples before running this file; with a target
//! filter (`cargo test --test examples_tls`) it does not, so build them
//! first with `cargo build --examples`. The `curl` test needs `curl`.

mod common;
#[path = "common/programs.rs"]
mod programs;
#[path = "common/tls.rs"]
mod tls_common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use programs::{example, run_to_end, Output, Server};
use reactor::tls::ClientConfig;
use tls_common::{connect, Certs, Client};

/// The four servers that take `--tls-cert` and `--tls-key`.
const SERVERS: [&str; 4] = [
    "timestamp_server",
    "echo_server",
    "chat_server",
    "http_hello",
];

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";
const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n";

/// Starts server example `name` serving TLS with `certs`' server identity.
fn tls_server(name: &str, certs: &Certs, extra: &[&str]) -> Server {
    let mut args = vec![
        "--tls-cert",
        path_str(&certs.server_cert),
        "--tls-key",
        path_str(&certs.server_key),
    ];
    args.extend_from_slice(extra);
    Server::start_with(name, &args)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// A client configuration trusting `certs`' authority and offering `alpn`.
fn client_config(certs: &Certs, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut config = reactor::tls::client_config(&certs.ca).unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Reads exactly `expected.len()` plaintext bytes and checks they are `expected`.
fn expect(client: &mut Client, expected: &[u8]) {
    let mut got = vec![0; expected.len()];
    if let Err(e) = client.read_exact(&mut got) {
        panic!(
            "waiting for {:?}: {e}",
            String::from_utf8_lossy(&expected[..expected.len().min(80)])
        );
    }
    assert!(
        got == expected,
        "expected {:?}, got {:?}",
        String::from_utf8_lossy(&expected[..expected.len().min(80)]),
        String::from_utf8_lossy(&got[..got.len().min(80)])
    );
}

/// Sends close_notify, then checks the server answers with its own after
/// nothing more: a clean TLS end (a bare TCP close is an error here).
fn expect_clean_end(client: &mut Client) {
    client.conn.send_close_notify();
    client.flush().unwrap();
    let mut rest = Vec::new();
    client
        .read_to_end(&mut rest)
        .expect("a close_notify from the server");
    assert_eq!(String::from_utf8_lossy(&rest), "", "bytes before the close");
}

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
fn timestamp_server_over_tls_stamps_what_it_receives() {
    let certs = Certs::new("ex-ts");
    let server = tls_server("timestamp_server", &certs, &[]);
    let mut conn = connect(server.addr, "localhost", certs.client_config());
    conn.write_all(b"hello").unwrap();
    conn.flush().unwrap();
    let mut reply = vec![0; "[YYYY-MM-DD HH:MM:SS] hello".len()];
    conn.read_exact(&mut reply).expect("the stamped reply");
    assert!(
        is_stamped(&reply, b"hello"),
        "reply: {:?}",
        String::from_utf8_lossy(&reply)
    );
    expect_clean_end(&mut conn);
    assert_eq!(
        server.stop(),
        Vec::<String>::new(),
        "more than one stdout line"
    );
}

#[test]
fn echo_server_over_tls_returns_a_mebibyte_intact_under_both_models() {
    let certs = Certs::new("ex-echo");
    for model in ["reactor", "threads"] {
        let server = tls_server("echo_server", &certs, &["--model", model]);
        let mut conn = connect(server.addr, "localhost", certs.client_config());
        // Lock-step chunks: a blocking rustls stream cannot send and
        // receive at once, and 16 KiB always fits the socket buffers.
        for round in 0..64u64 {
            let chunk = common::pattern(16 << 10, round);
            conn.write_all(&chunk).unwrap();
            conn.flush().unwrap();
            expect(&mut conn, &chunk);
        }
        expect_clean_end(&mut conn);
        assert_eq!(server.stop(), Vec::<String>::new(), "{model}: stdout");
    }
}

/// Joins the chat over TLS under the name `name`.
fn join(server: &Server, certs: &Certs, name: &str) -> Client {
    let mut conn = connect(server.addr, "localhost", certs.client_config());
    expect(&mut conn, b"What's your name?\n");
    conn.write_all(format!("{name}\n").as_bytes()).unwrap();
    conn.flush().unwrap();
    expect(&mut conn, format!("Welcome, {name}!\n").as_bytes());
    conn
}

#[test]
fn chat_server_over_tls_relays_lines_and_announces_joins_and_leaves() {
    let certs = Certs::new("ex-chat");
    let server = tls_server("chat_server", &certs, &[]);
    let mut alice = join(&server, &certs, "alice");
    let mut bob = join(&server, &certs, "bob");
    expect(&mut alice, b"* bob joined\n");
    alice.write_all(b"hi there\r\n").unwrap();
    alice.flush().unwrap();
    expect(&mut bob, b"alice: hi there\n");
    bob.write_all(b"yo\n").unwrap();
    bob.flush().unwrap();
    expect(&mut alice, b"bob: yo\n");
    expect_clean_end(&mut alice);
    expect(&mut bob, b"* alice left\n");
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn http_hello_over_tls_agrees_on_http_1_1_and_keeps_the_connection_alive() {
    let certs = Certs::new("ex-http");
    let server = tls_server("http_hello", &certs, &[]);
    // Offered as a browser does: HTTP/2 first.
    let config = client_config(&certs, &[b"h2", b"http/1.1"]);
    let mut conn = connect(server.addr, "localhost", config);
    for _ in 0..2 {
        conn.write_all(GET).unwrap();
        conn.flush().unwrap();
        expect(&mut conn, OK);
    }
    assert_eq!(
        conn.conn.alpn_protocol().map(String::from_utf8_lossy),
        Some("http/1.1".into())
    );
    expect_clean_end(&mut conn);
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn curl_gets_hello_world_over_https_with_alpn_http_1_1() {
    let certs = Certs::new("ex-curl");
    let server = tls_server("http_hello", &certs, &[]);
    let port = server.addr.port();
    let url = format!("https://localhost:{port}/");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let out = run_to_end(
        Command::new("curl").args([
            "-sSv",
            "--cacert",
            path_str(&certs.ca),
            "--resolve",
            &resolve,
            "-w",
            "%{http_version}",
            &url,
        ]),
        b"",
    );
    out.assert_success();
    assert_eq!(out.stdout, "hello world\n1.1");
    // curl 7.88 says `ALPN: server accepted http/1.1`, older ones `ALPN,
    // server accepted to use http/1.1`; without ALPN, `server did not agree`.
    assert!(
        out.stderr.lines().any(|l| l.contains("ALPN")
            && l.contains("server accepted")
            && l.ends_with("http/1.1")),
        "curl did not agree on http/1.1 by ALPN:\n{}",
        out.stderr
    );
    assert_eq!(server.stop(), Vec::<String>::new());
}

/// Runs `timestamp_client` against `port` with `args`, feeding it `input`,
/// with the default logging (no `RUST_LOG`), as a user runs it.
fn timestamp_client(port: u16, args: &[&str], input: &[u8]) -> Output {
    run_to_end(
        Command::new(example("timestamp_client"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(args)
            .env_remove("RUST_LOG"),
        input,
    )
}

#[test]
fn timestamp_client_over_tls_sends_each_line_and_prints_each_reply() {
    let certs = Certs::new("ex-tsc");
    let server = tls_server("timestamp_server", &certs, &[]);
    let ca = path_str(&certs.ca);
    // The server name is the --host value, 127.0.0.1, then --server-name's.
    for extra in [&[][..], &["--server-name", "localhost"]] {
        let mut args = vec!["--tls", "--ca", ca];
        args.extend_from_slice(extra);
        let out = timestamp_client(server.addr.port(), &args, b"one\ntwo\n\nthree\n");
        out.assert_success();
        assert_eq!(out.stderr, "", "{extra:?}");
        let lines: Vec<&str> = out.stdout.split_terminator('\n').collect();
        assert!(out.stdout.ends_with('\n'), "stdout: {:?}", out.stdout);
        assert_eq!(lines.len(), 2, "stdout: {:?}", out.stdout);
        assert!(is_stamped(lines[0].as_bytes(), b"one"), "{:?}", lines[0]);
        assert!(is_stamped(lines[1].as_bytes(), b"two"), "{:?}", lines[1]);
    }
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn timestamp_client_that_does_not_trust_the_server_says_so_once_and_exits_1() {
    let certs = Certs::new("ex-tsc-bad");
    let server = tls_server("timestamp_server", &certs, &[]);
    let port = server.addr.port();
    let other_ca = path_str(&certs.other_ca);
    let ca = path_str(&certs.ca);
    for (args, why) in [
        (&["--tls", "--ca", other_ca][..], "UnknownIssuer"),
        (
            &["--tls", "--ca", ca, "--server-name", "other.test"],
            "not valid for name \"other.test\"",
        ),
    ] {
        let out = timestamp_client(port, args, b"never sent\n");
        assert_eq!(out.status.code(), Some(1), "stderr: {}", out.stderr);
        assert_eq!(out.stdout, "");
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "stderr: {:?}", out.stderr);
        let expected =
            format!("timestamp_client: cannot connect to 127.0.0.1:{port}: TLS failed: ");
        assert!(lines[0].starts_with(&expected), "stderr: {:?}", out.stderr);
        assert!(lines[0].contains(why), "stderr: {:?}", out.stderr);
    }
    assert_eq!(server.stop(), Vec::<String>::new());
}

/// Runs example `name` with `args` to completion.
fn run(name: &str, args: &[&str]) -> Output {
    run_to_end(
        Command::new(example(name))
            .args(args)
            .env("RUST_LOG", "off"),
        b"",
    )
}

#[test]
fn the_tls_flags_come_in_pairs_and_a_bad_file_is_one_line_and_exit_1() {
    let certs = Certs::new("ex-flags");
    let cert = path_str(&certs.server_cert);
    let key = path_str(&certs.server_key);
    let missing = certs.dir.join("missing.pem");
    let missing = path_str(&missing);
    for name in SERVERS {
        let help = run(name, &["--help"]);
        for flag in ["--tls-cert", "--tls-key"] {
            assert!(
                help.stdout.contains(flag),
                "{name} --help:\n{}",
                help.stdout
            );
        }
        for (given, wanted) in [("--tls-cert", "--tls-key"), ("--tls-key", "--tls-cert")] {
            let out = run(name, &["--port", "0", given, cert]);
            assert_eq!(out.status.code(), Some(2), "{name} {given}: {}", out.stderr);
            assert_eq!(out.stdout, "", "{name} {given}");
            assert!(out.stderr.contains(wanted), "{name}: {}", out.stderr);
        }
        // A missing file, then a key where the certificate should be.
        for (cert_arg, what) in [(missing, "missing.pem"), (key, "no certificate")] {
            let out = run(
                name,
                &["--port", "0", "--tls-cert", cert_arg, "--tls-key", key],
            );
            assert_eq!(out.status.code(), Some(1), "{name}: {}", out.stderr);
            assert_eq!(out.stdout, "", "{name} printed a listening line");
            let lines: Vec<&str> = out.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{name}: {:?}", out.stderr);
            assert!(
                lines[0].starts_with(&format!("{name}: cannot use --tls-cert/--tls-key: ")),
                "{:?}",
                lines[0]
            );
            assert!(lines[0].contains(what), "{:?}", lines[0]);
        }
    }
    let help = run("timestamp_client", &["--help"]);
    for flag in ["--tls", "--ca", "--server-name"] {
        assert!(
            help.stdout.contains(flag),
            "timestamp_client --help:\n{}",
            help.stdout
        );
    }
    for args in [
        &["--tls"][..],
        &["--ca", cert],
        &["--server-name", "localhost"],
    ] {
        let out = run("timestamp_client", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, "", "{args:?}");
    }
}
