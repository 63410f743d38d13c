//! `timestamp_client` and `chat_client`, the clients that read standard
//! input on the reactor, run as a user would: across a restart of their
//! server on the same port with `--reconnect`, and failing in one line
//! without it.
//!
//! `cargo test` builds the examples first; with a target filter (`cargo
//! test --test reconnecting_examples`) run `cargo build --examples` first.

#[path = "common/programs.rs"]
mod programs;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::thread;

use programs::{connect, example, expect, read_in_background, run_to_end, Running, Server, WAIT};

/// Whether `reply` is exactly `[YYYY-MM-DD HH:MM:SS] ` followed by `message`.
fn is_stamped(reply: &str, message: &str) -> bool {
    const SHAPE: &[u8] = b"[dddd-dd-dd dd:dd:dd] ";
    let reply = reply.as_bytes();
    reply.len() == SHAPE.len() + message.len()
        && reply.iter().zip(SHAPE).all(|(&c, &want)| match want {
            b'd' => c.is_ascii_digit(),
            _ => c == want,
        })
        && reply.ends_with(message.as_bytes())
}

/// The lines `from` prints, as they come.
fn lines(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn next_line(rx: &Receiver<String>, what: &str) -> String {
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|e| panic!("no {what}: {e}"))
}

/// A server example started on `port` (the one a stopped one had), killed
/// when dropped.
fn restart(name: &str, addr: SocketAddr) -> Running {
    let mut child = Command::new(example(name))
        .args(["--host", "127.0.0.1", "--port", &addr.port().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the server");
    let stdout = lines(child.stdout.take().unwrap());
    let running = Running(child);
    assert_eq!(
        next_line(&stdout, "listening line"),
        format!("listening on {addr}")
    );
    running
}

/// A client example with piped standard I/O.
struct Client {
    process: Running,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl Client {
    fn start(name: &str, args: &[&str], log: &str) -> Client {
        let mut child: Child = Command::new(example(name))
            .args(args)
            .env("RUST_LOG", log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the client");
        let stdin = child.stdin.take();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Client {
            process: Running(child),
            stdin,
            stdout,
            stderr,
        }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    /// Closes its stdin and waits for it to exit 0; returns what else it
    /// printed on stdout.
    fn finish(mut self) -> Vec<String> {
        drop(self.stdin.take());
        let mut rest = Vec::new();
        loop {
            match self.stdout.recv_timeout(WAIT) {
                Ok(line) => rest.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("the client did not exit"),
            }
        }
        let status = self.process.0.wait().unwrap();
        let errors: Vec<String> = self.stderr.try_iter().collect();
        assert!(status.success(), "{status}; stderr: {errors:?}");
        rest
    }

    /// Waits until it logs a line containing every one of `words`.
    fn wait_for_log(&self, words: &[&str]) -> String {
        loop {
            let line = next_line(&self.stderr, "log line");
            if words.iter().all(|w| line.contains(w)) {
                return line;
            }
        }
    }
}

#[test]
fn timestamp_client_with_reconnect_goes_on_across_a_server_restart() {
    let server = Server::start("timestamp_server");
    let addr = server.addr;
    let port = addr.port().to_string();
    let args = ["--port", &port, "--reconnect", "--reconnect-delay", "0.05"];
    let mut client = Client::start("timestamp_client", &args, "off");
    client.type_line("before");
    let reply = next_line(&client.stdout, "first reply");
    assert!(is_stamped(&reply, "before"), "{reply:?}");
    server.stop();
    let _again = restart("timestamp_server", addr);
    client.type_line("after");
    let reply = next_line(&client.stdout, "reply from the new server");
    assert!(is_stamped(&reply, "after"), "{reply:?}");
    assert_eq!(client.finish(), Vec::<String>::new());
}

#[test]
fn timestamp_client_with_reconnect_sends_an_unanswered_line_again() {
    // A stand-in server: the first connection takes the line and hangs up
    // without a reply; the second must get the same line again.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let args = ["--port", &port, "--reconnect", "--reconnect-delay", "0.05"];
    let mut client = Client::start("timestamp_client", &args, "off");
    client.type_line("lost in transit");
    let read_line = |conn: &mut TcpStream| {
        conn.set_read_timeout(Some(WAIT)).unwrap();
        let mut line = vec![0; b"lost in transit".len()];
        conn.read_exact(&mut line).unwrap();
        line
    };
    let (mut first, _) = listener.accept().unwrap();
    assert_eq!(read_line(&mut first), b"lost in transit");
    drop(first);
    let (mut second, _) = listener.accept().unwrap();
    assert_eq!(read_line(&mut second), b"lost in transit");
    second
        .write_all(b"[2000-01-01 00:00:00] lost in transit")
        .unwrap();
    let reply = next_line(&client.stdout, "reply");
    assert_eq!(reply, "[2000-01-01 00:00:00] lost in transit");
    drop(client.stdin.take());
    // It hangs up once every line has its reply.
    let mut rest = Vec::new();
    second.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"");
    assert_eq!(client.finish(), Vec::<String>::new());
}

/// Joins the chat server at `addr` as `name`, over a plain socket.
fn join(addr: SocketAddr, name: &str) -> TcpStream {
    let mut conn = connect(addr);
    expect(&mut conn, b"What's your name?\n");
    conn.write_all(format!("{name}\n").as_bytes()).unwrap();
    expect(&mut conn, format!("Welcome, {name}!\n").as_bytes());
    conn
}

#[test]
fn chat_client_with_reconnect_joins_again_under_its_name_after_a_server_restart() {
    let server = Server::start("chat_server");
    let addr = server.addr;
    let mut bob = join(addr, "bob");
    let port = addr.port().to_string();
    let args = [
        "--port",
        &port,
        "--name",
        "alice",
        "--reconnect",
        "--reconnect-delay",
        "0.25",
    ];
    // Its log says when an attempt failed, which the test waits for.
    let mut alice = Client::start("chat_client", &args, "info");
    expect(&mut bob, b"* alice joined\n");
    assert_eq!(next_line(&alice.stdout, "welcome"), "Welcome, alice!");
    alice.type_line("before");
    expect(&mut bob, b"alice: before\n");

    server.stop();
    // Once an attempt found nobody listening, the next one is at least
    // 0.25 × e² × 0.64 s (1.2 s) away: time for the new server to start and
    // bob to join before alice comes back, so bob sees her join.
    alice.wait_for_log(&["cannot connect", "retrying in"]);
    let _again = restart("chat_server", addr);
    let mut bob = join(addr, "bob");
    expect(&mut bob, b"* alice joined\n");
    assert_eq!(
        next_line(&alice.stdout, "second welcome"),
        "Welcome, alice!"
    );
    alice.type_line("after");
    expect(&mut bob, b"alice: after\n");
    bob.write_all(b"hi alice\n").unwrap();
    assert_eq!(next_line(&alice.stdout, "bob's line"), "bob: hi alice");
    assert_eq!(alice.finish(), Vec::<String>::new());
    expect(&mut bob, b"* alice left\n");
}

#[test]
fn chat_client_without_a_name_joins_under_the_first_line_typed() {
    let server = Server::start("chat_server");
    let mut bob = join(server.addr, "bob");
    let port = server.addr.port().to_string();
    let mut carol = Client::start("chat_client", &["--port", &port], "off");
    assert_eq!(next_line(&carol.stdout, "question"), "What's your name?");
    carol.type_line("carol");
    assert_eq!(next_line(&carol.stdout, "welcome"), "Welcome, carol!");
    expect(&mut bob, b"* carol joined\n");
    carol.type_line("hello");
    expect(&mut bob, b"carol: hello\n");
    assert_eq!(carol.finish(), Vec::<String>::new());
    expect(&mut bob, b"* carol left\n");
}

#[test]
fn chat_client_that_cannot_connect_says_so_once_and_exits_1() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let out = run_to_end(
        Command::new(example("chat_client"))
            .args(["--port", &port.to_string(), "--name", "alice"])
            .env("RUST_LOG", "off"),
        b"never sent\n",
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {:?}", out.stderr);
    let expected = format!("chat_client: cannot connect to 127.0.0.1:{port}: ");
    assert!(lines[0].starts_with(&expected), "stderr: {:?}", out.stderr);
    assert!(lines[0].contains("refused"), "stderr: {:?}", out.stderr);
}

#[test]
fn chat_client_whose_name_is_taken_says_so_and_exits_1() {
    let server = Server::start("chat_server");
    let _alice = join(server.addr, "alice");
    let port = server.addr.port().to_string();
    let args = ["--port", &port, "--name", "alice", "--reconnect"];
    let mut child = Command::new(example("chat_client"))
        .args(args)
        .env("RUST_LOG", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _stdin = child.stdin.take();
    let stdout = read_in_background(child.stdout.take().unwrap());
    let stderr = read_in_background(child.stderr.take().unwrap());
    let mut child = Running(child);
    let out = stdout.recv_timeout(WAIT).expect("stdout did not end");
    let err = stderr.recv_timeout(WAIT).expect("stderr did not end");
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "The name alice is taken. Bye.\n"
    );
    assert_eq!(
        String::from_utf8(err).unwrap(),
        "chat_client: The name alice is taken. Bye.\n"
    );
}
