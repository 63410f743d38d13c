//! `--proxy-protocol` on timestamp_server, echo_server and http_hello: a
//! client behind a PROXY header is answered as usual and logged under the
//! address the header names; `=optional` also serves a direct client;
//! without the flag a header is the protocol's data, as before.

#[path = "common/programs.rs"]
mod programs;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread;

use programs::{Running, WAIT};

/// A server example started with `args`, its stderr lines on a channel.
struct Logged {
    addr: SocketAddr,
    stderr: Receiver<String>,
    _process: Running,
}

fn start(name: &str, args: &[&str]) -> Logged {
    let mut child = Command::new(programs::example(name))
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the server");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let process = Running(child);
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{name} said {first:?}"));
    let (tx, lines) = channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Logged {
        addr,
        stderr: lines,
        _process: process,
    }
}

impl Logged {
    /// Waits for the `...connected from:` line and returns its address.
    fn connected_from(&self) -> String {
        loop {
            let line = self
                .stderr
                .recv_timeout(WAIT)
                .expect("a `connected from` line");
            if let Some((_, addr)) = line.split_once("...connected from: ") {
                return addr.to_string();
            }
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

/// Reads until `stream` has sent something ending in `end`.
fn read_until(stream: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0; 1024];
    while !got.ends_with(end) {
        let n = stream.read(&mut buf).expect("the answer");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

const V1: &[u8] = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n";

/// A version 2 header for 192.0.2.8:1234 → 198.51.100.1:443.
fn v2() -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    header.extend_from_slice(&[192, 0, 2, 8, 198, 51, 100, 1, 0x04, 0xd2, 0x01, 0xbb]);
    header
}

#[test]
fn each_server_logs_the_client_the_header_names() {
    let http = b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    for (name, header, client) in [
        ("echo_server", V1.to_vec(), "192.0.2.7:56324"),
        ("timestamp_server", v2(), "192.0.2.8:1234"),
        ("http_hello", v2(), "192.0.2.8:1234"),
    ] {
        let server = start(name, &["--proxy-protocol"]);
        let mut stream = connect(server.addr);
        let ask: &[u8] = if name == "http_hello" {
            http
        } else {
            b"ping\n"
        };
        stream.write_all(&[&header[..], ask].concat()).unwrap();
        let answer = read_until(
            &mut stream,
            if name == "http_hello" {
                b"hello world\n"
            } else {
                b"ping\n"
            },
        );
        if name == "timestamp_server" {
            assert!(answer.starts_with(b"["), "{name}: {answer:?}");
        } else if name == "echo_server" {
            assert_eq!(answer, b"ping\n");
        }
        assert_eq!(server.connected_from(), client, "{name}");
        // Without a header, a required listener closes the connection.
        let mut direct = connect(server.addr);
        direct.write_all(ask).unwrap();
        let mut rest = Vec::new();
        let _ = direct.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{name} answered a client without a header");
    }
}

#[test]
fn optional_also_serves_a_direct_client() {
    let server = start("echo_server", &["--proxy-protocol=optional"]);
    let mut direct = connect(server.addr);
    direct.write_all(b"direct\n").unwrap();
    assert_eq!(read_until(&mut direct, b"direct\n"), b"direct\n");
    assert_eq!(
        server.connected_from(),
        direct.local_addr().unwrap().to_string()
    );
    let mut proxied = connect(server.addr);
    proxied.write_all(&[V1, b"via\n"].concat()).unwrap();
    assert_eq!(read_until(&mut proxied, b"via\n"), b"via\n");
    assert_eq!(server.connected_from(), "192.0.2.7:56324");
}

#[test]
fn without_the_flag_a_header_is_data() {
    let server = start("echo_server", &[]);
    let mut stream = connect(server.addr);
    stream.write_all(V1).unwrap();
    assert_eq!(read_until(&mut stream, b"\r\n"), V1);
    assert_eq!(
        server.connected_from(),
        stream.local_addr().unwrap().to_string()
    );
}

#[test]
fn the_threaded_model_refuses_the_flag() {
    let out = programs::run_to_end(
        Command::new(programs::example("echo_server")).args([
            "--port",
            "0",
            "--model",
            "threads",
            "--proxy-protocol",
        ]),
        b"",
    );
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("--proxy-protocol is the reactor's"),
        "{}",
        out.stderr
    );
}

#[test]
fn every_reactor_of_a_pool_takes_the_header() {
    for name in ["echo_server", "http_hello"] {
        let server = start(name, &["--reactors", "2", "--proxy-protocol"]);
        // Enough connections that both reactors take some.
        for port in 1000..1008u16 {
            let header = format!("PROXY TCP4 192.0.2.7 198.51.100.1 {port} 443\r\n");
            let mut stream = connect(server.addr);
            let ask: &[u8] = if name == "http_hello" {
                b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
            } else {
                b"ping\n"
            };
            stream
                .write_all(&[header.as_bytes(), ask].concat())
                .unwrap();
            let end: &[u8] = if name == "http_hello" {
                b"hello world\n"
            } else {
                b"ping\n"
            };
            read_until(&mut stream, end);
            assert_eq!(
                server.connected_from(),
                format!("192.0.2.7:{port}"),
                "{name}"
            );
        }
    }
}
