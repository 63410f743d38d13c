//! What every example shares, checked on the built binaries: `--version`,
//! the `...connected from: ADDR` and `ADDR: closed (REASON)` log lines of
//! every TCP server, `--listen ENDPOINT` on every TCP server and
//! `--connect ENDPOINT` on every client, `--listen udp:...` on every UDP
//! server and `--connect udp:...` on the UDP client, the hints that end
//! address errors, and default ports that no two examples share.
//!
//! `cargo test` builds the examples first; with a target filter
//! (`cargo test --test example_conventions`), run `cargo build --examples`
//! first.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread;
use std::time::Instant;

#[path = "common/programs.rs"]
mod programs;

#[path = "../examples/common/hints.rs"]
mod hints;

use programs::{example, run_to_end, Running, WAIT};

/// Examples another change is moving into the benchmark workspace member;
/// that member's tests check its own programs.
const MOVING: &[&str] = &[
    "compare",
    "echo_load",
    "udp_load",
    "tls_load",
    "tokio_echo_server",
    "tokio_udp_echo_server",
    "tokio_tls_echo_server",
    "hyper_hello",
    "mio_echo_server",
];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Every example in examples/ (a one-file example or a directory with a
/// main.rs) but those in [`MOVING`], with the path of its main source.
fn examples() -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(examples_dir())
        .expect("examples/ is readable")
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let main = entry.path().join("main.rs");
            if main.is_file() {
                return Some((name, main));
            }
            Some((name.strip_suffix(".rs")?.to_string(), entry.path()))
        })
        .filter(|(name, _)| !MOVING.contains(&name.as_str()))
        .collect();
    found.sort();
    assert!(found.len() >= 20, "examples found: {found:?}");
    found
}

#[test]
fn every_example_answers_version() {
    for (name, _) in examples() {
        let out = run_to_end(Command::new(example(&name)).arg("--version"), b"");
        assert!(out.status.success(), "{name} --version: {}", out.status);
        assert_eq!(
            out.stdout,
            format!("reactor {}\n", env!("CARGO_PKG_VERSION")),
            "{name} --version"
        );
    }
}

/// A server started with `RUST_LOG=info`: its address, and its stdout
/// after the `listening on` line and its stderr, a line at a time.
struct Logging {
    /// Where it listens, for an IP listener (`0.0.0.0:0` for a UNIX one).
    addr: SocketAddr,
    /// Where it said it listens: the rest of its `listening on` line.
    announced: String,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    child: Running,
}

impl Logging {
    /// `name ARGS` on any free port (`--port 0`).
    fn start(name: &str, args: &[&str]) -> Logging {
        Logging::start_on(name, &["--port", "0"], args)
    }

    /// `name WHERE ARGS`, `WHERE` saying where to listen.
    fn start_on(name: &str, at: &[&str], args: &[&str]) -> Logging {
        let mut child = Command::new(example(name))
            .args(at)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the example");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let child = Running(child);
        let lines = |from: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = channel();
            thread::spawn(move || {
                for line in BufReader::new(from).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let stdout = lines(Box::new(stdout));
        let stderr = lines(Box::new(stderr));
        let first = stdout
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("{name} {args:?} printed no `listening on` line"));
        let announced = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{name}: unexpected first line {first:?}"))
            .to_string();
        let addr = match announced.starts_with("unix:") {
            true => SocketAddr::from(([0, 0, 0, 0], 0)),
            false => announced
                .parse()
                .unwrap_or_else(|_| panic!("{name}: unexpected first line {first:?}")),
        };
        Logging {
            announced,
            addr,
            stdout,
            stderr,
            child,
        }
    }

    /// Stops the server; what it printed on stdout after its first line.
    fn stop(self) -> Vec<String> {
        drop(self.child);
        // The pipe ends when the process does: every line is in by then.
        self.stdout.iter().collect()
    }

    /// Waits (bounded) for a stderr line containing `text`.
    fn expect_log(&self, name: &str, text: &str) {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(text) => return,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("{name} logged no line with {text:?}; it logged: {seen:#?}");
    }
}

/// Calls in an example's source that make it a TCP server.
const TCP_LISTENS: &[&str] = &[
    "listen_tcp",
    "listen_on",
    "TcpServer",
    "common::tls::listen",
];

/// Calls in an example's source that make it a TCP client.
const TCP_CONNECTS: &[&str] = &["connect_tcp", "connect_to", "TcpStream::connect"];

/// Every TCP server with the flags each of its modes needs (a directory of
/// its own for file_server, under `dir`).
fn tcp_servers(dir: &str) -> Vec<(&'static str, Vec<&str>)> {
    let servers: &[(&str, &[&str])] = &[
        ("ack_server", &[]),
        ("chat_server", &[]),
        ("echo_server", &["--model", "reactor"]),
        ("echo_server", &["--model", "threads"]),
        ("file_server", &["--dir", "DIR"]),
        ("file_server", &["--dir", "DIR", "--format", "seed003"]),
        ("http_hello", &[]),
        ("line_timestamp_server", &[]),
        ("socketserver_timestamp_server", &["--server", "threading"]),
        ("socketserver_timestamp_server", &["--server", "tcp"]),
        ("socketserver_upper_server", &["--server", "threading"]),
        ("socketserver_upper_server", &["--server", "tcp"]),
        ("thread_per_connection_server", &[]),
        ("timestamp_server", &[]),
        ("upper_server", &[]),
    ];
    servers
        .iter()
        .map(|(name, args)| {
            let args = args
                .iter()
                .map(|a| if *a == "DIR" { dir } else { *a })
                .collect();
            (*name, args)
        })
        .collect()
}

#[test]
fn every_tcp_server_logs_each_connection_and_its_end() {
    let dir = std::env::temp_dir().join(format!("example_conventions_{}", std::process::id()));
    let dir_arg = dir.to_str().expect("a UTF-8 temp dir").to_string();
    let servers = tcp_servers(&dir_arg);
    // Every TCP server in examples/ is in the list: a new one cannot be
    // forgotten. A TCP server is an example whose source listens on TCP.
    let listed: Vec<&str> = servers.iter().map(|(name, _)| *name).collect();
    for (name, source) in examples() {
        if name == "soak" {
            continue; // Serves only its own load, on ports it picks.
        }
        let text = read_source(&source);
        let tcp = TCP_LISTENS.iter().any(|call| text.contains(call));
        assert!(
            !tcp || listed.contains(&name.as_str()),
            "{name} listens on TCP but is not checked here"
        );
    }
    for (name, args) in &servers {
        let server = Logging::start(name, args);
        let client = TcpStream::connect(server.addr).expect("connect");
        let me = client.local_addr().expect("local address");
        server.expect_log(name, &format!("...connected from: {me}"));
        drop(client);
        server.expect_log(name, &format!("{me}: closed ("));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_tcp_server_listens_on_an_endpoint() {
    let dir = std::env::temp_dir().join(format!("example_endpoints_{}", std::process::id()));
    let dir_arg = dir.to_str().expect("a UTF-8 temp dir").to_string();
    for (name, args) in &tcp_servers(&dir_arg) {
        let at = ["--listen", "tcp:0:interface=127.0.0.1"];
        let server = Logging::start_on(name, &at, args);
        assert_eq!(
            server.addr.ip(),
            std::net::Ipv4Addr::LOCALHOST,
            "{name} {args:?}"
        );
        // Port 0 took a free port, not the example's default: the endpoint,
        // not --host/--port, was used.
        let help = run_to_end(Command::new(example(name)).arg("--help"), b"").stdout;
        let default = default_port(&help).map(|(port, _)| port);
        assert_ne!(Some(server.addr.port()), default, "{name} {args:?}");
        let client = TcpStream::connect(server.addr).expect("connect");
        let me = client.local_addr().expect("local address");
        server.expect_log(name, &format!("...connected from: {me}"));
        drop(client);
        let more = server.stop();
        assert!(
            more.is_empty(),
            "{name} {args:?} printed more on stdout: {more:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_server_but_the_socketserver_ones_listens_on_a_unix_socket() {
    let dir = std::env::temp_dir().join(format!("example_unix_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir_arg = dir.to_str().expect("a UTF-8 temp dir").to_string();
    // The socketserver-style servers bind TCP addresses only (they say so:
    // below); echo_server's thread-per-connection model serves UNIX too.
    let tcp_only = [
        "socketserver_timestamp_server",
        "socketserver_upper_server",
        "thread_per_connection_server",
    ];
    for (i, (name, args)) in tcp_servers(&dir_arg).iter().enumerate() {
        if tcp_only.contains(name) {
            continue;
        }
        let path = dir.join(format!("{i}.sock"));
        let at = ["--listen".to_string(), format!("unix:{}", path.display())];
        let at: Vec<&str> = at.iter().map(String::as_str).collect();
        let server = Logging::start_on(name, &at, args);
        assert_eq!(
            server.announced,
            format!("unix:{}", path.display()),
            "{name}"
        );
        let client = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        server.expect_log(name, "...connected from: unix:");
        drop(client);
        let more = server.stop();
        assert!(
            more.is_empty(),
            "{name} {args:?} printed more on stdout: {more:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn listen_replaces_host_and_port_and_says_what_is_wrong() {
    let err = failure("ack_server", &["--port", "0", "--listen", "tcp:0"]);
    assert!(
        err.contains("cannot be used with") && err.contains("'--listen <ENDPOINT>'"),
        "stderr: {err}"
    );
    let err = failure("ack_server", &["--listen", "tcp:0:bakclog=5"]);
    assert!(
        err.contains(r#"unknown parameter "bakclog" in "tcp:0:bakclog=5""#),
        "stderr: {err}"
    );
    // The threaded servers bind TCP addresses themselves, and say so.
    let err = failure("thread_per_connection_server", &["--listen", "systemd:0"]);
    assert!(
        err.contains("listens on tcp: endpoints only"),
        "stderr: {err}"
    );
}

#[test]
fn every_client_connects_to_an_endpoint() {
    let servers: Vec<String> = tcp_servers("DIR")
        .into_iter()
        .map(|(name, _)| name.to_string())
        .collect();
    let mut clients = Vec::new();
    for (name, source) in examples() {
        let text = read_source(&source);
        let client = TCP_CONNECTS.iter().any(|call| text.contains(call));
        // soak is a load generator of its own servers.
        if !client || servers.contains(&name) || name == "soak" {
            continue;
        }
        let out = run_to_end(Command::new(example(&name)).arg("--help"), b"");
        assert!(
            out.stdout.contains("--connect <ENDPOINT>"),
            "{name} connects but has no --connect"
        );
        clients.push(name);
    }
    assert!(clients.len() >= 2, "clients found: {clients:?}");
    // And they use it: a timestamp exchange and an upload.
    let server = Logging::start("timestamp_server", &[]);
    let endpoint = format!("tcp:host=127.0.0.1:port={}", server.addr.port());
    let out = run_to_end(
        Command::new(example("timestamp_client")).args(["--connect", &endpoint]),
        b"over an endpoint\n",
    );
    out.assert_success();
    assert!(
        out.stdout.contains("over an endpoint"),
        "stdout: {}",
        out.stdout
    );
    let dir = std::env::temp_dir().join(format!("example_connect_{}", std::process::id()));
    let files = Logging::start("file_server", &["--dir", dir.to_str().unwrap()]);
    let upload = dir.with_extension("upload");
    std::fs::write(&upload, b"sent through --connect").unwrap();
    let endpoint = format!("tcp:127.0.0.1:{}", files.addr.port());
    let out = run_to_end(
        Command::new(example("file_client"))
            .args(["--connect", &endpoint, "upload"])
            .arg(&upload)
            .args(["--name", "endpoint.txt"]),
        b"",
    );
    out.assert_success();
    assert_eq!(
        std::fs::read(dir.join("endpoint.txt")).unwrap(),
        b"sent through --connect"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&upload);
}

/// Calls in an example's source that make it a UDP server or sender.
const UDP_BINDS: &[&str] = &["listen_udp", "listen_datagram_on", "UdpServer"];

/// What a UDP server answers to a datagram.
enum Answer {
    /// Exactly these bytes.
    Exactly(&'static [u8]),
    /// `[YYYY-MM-DD HH:MM:SS] ` then the datagram.
    Stamped,
    /// Nothing: it prints `from ADDR: MESSAGE` on stdout instead.
    Printed,
}

/// Every UDP server with the flags each of its modes needs, and what it
/// answers to the datagram `ping`.
fn udp_servers() -> Vec<(&'static str, &'static [&'static str], Answer)> {
    vec![
        ("udp_echo_server", &[], Answer::Exactly(b"ping")),
        ("udp_upper_server", &[], Answer::Exactly(b"PING")),
        ("udp_ack_server", &[], Answer::Exactly(b"Thank for you msg")),
        ("timestamp_udp_server", &[], Answer::Stamped),
        (
            "socketserver_udp_server",
            &["--server", "threading"],
            Answer::Exactly(b"PING"),
        ),
        (
            "socketserver_udp_server",
            &["--server", "udp"],
            Answer::Exactly(b"PING"),
        ),
        ("broadcast_receiver", &[], Answer::Printed),
    ]
}

/// Examples that bind a UDP socket only to send from it: not servers.
/// broadcast_sender's `--host`/`--port` are where it sends from and its
/// `--dest` a broadcast address, which no `--connect` would name better.
const UDP_SENDERS: &[&str] = &["timestamp_udp_client", "broadcast_sender", "soak"];

#[test]
fn every_udp_server_listens_on_an_endpoint() {
    let servers = udp_servers();
    // Every UDP server in examples/ is in the list: a new one cannot be
    // forgotten.
    let listed: Vec<&str> = servers.iter().map(|(name, _, _)| *name).collect();
    for (name, source) in examples() {
        let text = read_source(&source);
        if UDP_BINDS.iter().any(|call| text.contains(call)) {
            assert!(
                listed.contains(&name.as_str()) || UDP_SENDERS.contains(&name.as_str()),
                "{name} binds UDP but is not checked here"
            );
        }
    }
    for (name, args, answer) in &servers {
        let at = ["--listen", "udp:0:interface=127.0.0.1"];
        let server = Logging::start_on(name, &at, args);
        assert_eq!(
            server.addr.ip(),
            std::net::Ipv4Addr::LOCALHOST,
            "{name} {args:?}"
        );
        // Port 0 took a free port, not the example's default: the endpoint,
        // not --host/--port, was used.
        let help = run_to_end(Command::new(example(name)).arg("--help"), b"").stdout;
        assert!(help.contains("udp:PORT[:interface=ADDR]"), "{name} --help");
        let default = default_port(&help).map(|(port, _)| port);
        assert_ne!(Some(server.addr.port()), default, "{name} {args:?}");
        let client = UdpSocket::bind("127.0.0.1:0").expect("bind a client socket");
        client.set_read_timeout(Some(WAIT)).expect("a read timeout");
        client
            .send_to(b"ping", server.addr)
            .expect("send a datagram");
        let me = client.local_addr().expect("local address");
        let mut more = match answer {
            Answer::Printed => {
                let line = server.stdout.recv_timeout(WAIT);
                assert_eq!(line, Ok(format!("from {me}: ping")), "{name}");
                server.stop()
            }
            _ => {
                let mut reply = [0; 100];
                let (n, from) = client
                    .recv_from(&mut reply)
                    .unwrap_or_else(|e| panic!("{name} {args:?} did not answer: {e}"));
                assert_eq!(from, server.addr, "{name} {args:?}");
                let reply = &reply[..n];
                match answer {
                    Answer::Exactly(want) => assert_eq!(reply, *want, "{name} {args:?}"),
                    _ => assert!(
                        reply.starts_with(b"[")
                            && reply.ends_with(b"] ping")
                            && n == "[YYYY-MM-DD HH:MM:SS] ping".len(),
                        "{name}: {:?}",
                        String::from_utf8_lossy(reply)
                    ),
                }
                server.stop()
            }
        };
        more.retain(|line| !line.is_empty());
        assert!(
            more.is_empty(),
            "{name} {args:?} printed more on stdout: {more:?}"
        );
    }
}

#[test]
fn the_udp_client_connects_to_an_endpoint() {
    let out = run_to_end(
        Command::new(example("timestamp_udp_client")).arg("--help"),
        b"",
    );
    assert!(
        out.stdout.contains("--connect <ENDPOINT>")
            && out.stdout.contains("udp:host=HOST:port=PORT"),
        "timestamp_udp_client --help: {}",
        out.stdout
    );
    let server = Logging::start("timestamp_udp_server", &[]);
    let endpoint = format!("udp:host=127.0.0.1:port={}", server.addr.port());
    let out = run_to_end(
        Command::new(example("timestamp_udp_client")).args(["--connect", &endpoint]),
        b"over a udp endpoint\n",
    );
    out.assert_success();
    assert!(
        out.stdout.ends_with("] over a udp endpoint\n") && out.stdout.starts_with('['),
        "stdout: {:?}",
        out.stdout
    );
    server.expect_log(
        "timestamp_udp_server",
        "...received from and returned to: 127.0.0.1:",
    );
    // A malformed endpoint is refused by the parser, naming the bad part.
    let err = failure(
        "timestamp_udp_client",
        &["--connect", "udp:host=127.0.0.1:port=0"],
    );
    assert!(
        err.contains(r#"port "0" is not a number from 1 to 65535 in "udp:host=127.0.0.1:port=0""#),
        "stderr: {err}"
    );
}

#[test]
fn http_hello_logs_one_access_line_per_request() {
    let server = Logging::start("http_hello", &[]);
    let mut client = TcpStream::connect(server.addr).expect("connect");
    let me = client.local_addr().expect("local address");
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send two requests");
    server.expect_log("http_hello", &format!("{me} \"GET /\" 200 12"));
    server.expect_log("http_hello", &format!("{me} \"GET /nope\" 404 10"));
}

/// An example's source: its main file, or every file of its directory.
fn read_source(path: &Path) -> String {
    if path.is_file() && path.file_name().is_some_and(|n| n != "main.rs") {
        return std::fs::read_to_string(path).expect("read the example");
    }
    let dir = path.parent().expect("main.rs has a directory");
    let mut text = String::new();
    for entry in std::fs::read_dir(dir)
        .expect("read the example's directory")
        .flatten()
    {
        text += &std::fs::read_to_string(entry.path()).unwrap_or_default();
    }
    text
}

/// What `name` prints on stderr when started with `args`; it must fail.
fn failure(name: &str, args: &[&str]) -> String {
    let out = run_to_end(Command::new(example(name)).args(args), b"");
    assert!(!out.status.success(), "{name} {args:?} should fail");
    out.stderr
}

#[test]
fn a_port_in_use_says_try_port_0() {
    let held = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = held.local_addr().expect("its address").port().to_string();
    let err = failure("timestamp_server", &["--port", &port]);
    assert!(err.trim_end().ends_with("try --port 0"), "stderr: {err}");
    // The threaded servers bind through the same helper.
    let err = failure("thread_per_connection_server", &["--port", &port]);
    assert!(err.trim_end().ends_with("try --port 0"), "stderr: {err}");
    let held = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
    let port = held.local_addr().expect("its address").port().to_string();
    let err = failure("udp_echo_server", &["--port", &port]);
    assert!(err.trim_end().ends_with("try --port 0"), "stderr: {err}");
}

#[test]
fn a_host_that_looks_like_an_ip_but_is_not_says_so() {
    for host in ["127.0.0.256", "127.0.1", "::g"] {
        let err = failure("ack_server", &["--host", host]);
        assert!(
            err.contains(&format!("{host} looks like an IP address but is not one")),
            "stderr: {err}"
        );
    }
}

#[test]
fn a_privileged_port_says_what_it_needs() {
    // Running as root (as CI does) binds port 80 fine, so the program's
    // message can only be seen unprivileged; the hint's text is checked
    // below either way.
    let probe = TcpListener::bind("127.0.0.1:80");
    match probe {
        Ok(_) => println!("skipped: this user may bind port 80 (root or CAP_NET_BIND_SERVICE)"),
        Err(e) if e.kind() != std::io::ErrorKind::PermissionDenied => {
            println!("skipped: port 80 cannot be probed: {e}")
        }
        Err(_) => {
            let err = failure("ack_server", &["--port", "80"]);
            assert!(
                err.trim_end()
                    .ends_with("needs root or CAP_NET_BIND_SERVICE; try a port above 1023"),
                "stderr: {err}"
            );
        }
    }
    let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
    assert!(hints::cannot_listen(at(80), &denied)
        .ends_with("ports below 1024 need root or CAP_NET_BIND_SERVICE; try a port above 1023"));
    // Above 1023, denial has some other cause: no hint about privileges.
    assert!(!hints::cannot_listen(at(8080), &denied).contains("CAP_NET_BIND_SERVICE"));
}

#[test]
fn the_ip_check_knows_addresses_from_names() {
    for good in ["127.0.0.1", "::1", "localhost", "example.com", "10.0.0.1"] {
        assert_eq!(hints::not_an_ip(good), None, "{good}");
    }
    for bad in ["127.0.0.256", "1.2.3", "1.2.3.4.5", "::g", "1:2:3"] {
        assert!(hints::not_an_ip(bad).is_some(), "{bad}");
    }
}

#[test]
fn default_ports_are_unique_per_protocol() {
    // `--help` shows each default: `--port <PORT>  ... [default: N]`.
    let mut tcp: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    let mut udp: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for (name, source) in examples() {
        let out = run_to_end(Command::new(example(&name)).arg("--help"), b"");
        let Some((port, entry)) = default_port(&out.stdout) else {
            continue;
        };
        // Any free port has nothing to collide with; a client's `--port`
        // is where it connects or sends from, not where it listens.
        if port == 0 || !entry.contains("listen") {
            continue;
        }
        let text = read_source(&source);
        let table = if UDP_BINDS.iter().any(|call| text.contains(call)) {
            &mut udp
        } else if TCP_LISTENS.iter().any(|call| text.contains(call)) {
            &mut tcp
        } else {
            continue;
        };
        table.entry(port).or_default().push(name);
    }
    println!("TCP defaults: {tcp:?}\nUDP defaults: {udp:?}");
    for (kind, table) in [("TCP", &tcp), ("UDP", &udp)] {
        for (port, names) in table {
            assert!(
                names.len() == 1,
                "{kind} port {port} is the default of {names:?}"
            );
        }
    }
    assert!(tcp.len() >= 8 && udp.len() >= 5, "TCP {tcp:?}, UDP {udp:?}");
}

/// The `[default: N]` of `--port` in a `--help` text, and that option's text.
fn default_port(help: &str) -> Option<(u16, &str)> {
    let after = &help[help.find("--port <PORT>")?..];
    // The entry ends where the next option's line begins.
    let end = ["\n  -", "\n      -"]
        .iter()
        .filter_map(|next| after.find(next))
        .min()
        .unwrap_or(after.len());
    let entry = &after[..end];
    let start = entry.find("[default: ")? + "[default: ".len();
    let port = entry[start..].split(']').next()?.parse().ok()?;
    Some((port, entry))
}
