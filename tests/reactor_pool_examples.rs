//! `echo_server --reactors 2` and `http_hello --reactors 2` as processes:
//! one `listening on` line, two reactor threads with a listener each on
//! the one port, every answer exact; and SIGTERM stops every reactor of a
//! `--graceful` echo server without losing a byte.
//!
//! The examples must be built first (`cargo build --examples`).

#[path = "common/http_answers.rs"]
mod answers;
mod common;
#[path = "common/listeners.rs"]
mod listeners;
#[path = "common/programs.rs"]
mod programs;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;

use listeners::accept_queues;
use programs::{connect, expect, Server};

/// Connections each test makes (enough for the kernel to spread them to
/// both reactors; see tests/reactor_pool.rs).
const CONNECTIONS: usize = 50;

/// The names of the server's threads named `reactor-N`, sorted.
fn reactor_threads(server: &Server) -> Vec<String> {
    let tasks = format!("/proc/{}/task", server.process.0.id());
    let mut names: Vec<String> = std::fs::read_dir(tasks)
        .expect("the server's threads")
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| name.starts_with("reactor-") && !name.starts_with("reactor-pool"))
        .collect();
    names.sort();
    names
}

/// Checks that `server` runs two reactors with a listener each on its port.
fn assert_two_reactors(server: &Server) {
    assert_eq!(reactor_threads(server), ["reactor-0", "reactor-1"]);
    assert_eq!(
        accept_queues(server.addr.port()).len(),
        2,
        "one listening socket per reactor"
    );
}

#[test]
fn echo_server_with_two_reactors_serves_one_port() {
    let server = Server::start_with("echo_server", &["--reactors", "2"]);
    assert_two_reactors(&server);
    for i in 0..CONNECTIONS {
        let mut stream = connect(server.addr);
        let message = format!("echo {i}");
        stream.write_all(message.as_bytes()).unwrap();
        expect(&mut stream, message.as_bytes());
    }
    assert_eq!(server.stop(), Vec::<String>::new(), "one line on stdout");
}

#[test]
fn http_hello_with_two_reactors_serves_one_port() {
    let server = Server::start_with("http_hello", &["--reactors", "2"]);
    assert_two_reactors(&server);
    for _ in 0..CONNECTIONS {
        let mut stream = connect(server.addr);
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&answer),
            String::from_utf8_lossy(answers::OK_CLOSE)
        );
    }
    assert_eq!(server.stop(), Vec::<String>::new(), "one line on stdout");
}

#[test]
fn sigterm_stops_every_reactor_of_a_graceful_echo_server_without_losing_a_byte() {
    // Connections stay open after the signal until their peers half-close.
    let args = ["--reactors", "2", "--graceful", "--quiet", "30"];
    let server = Server::start_with("echo_server", &args);
    assert_two_reactors(&server);
    let mut clients: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|i| {
            let mut stream = connect(server.addr);
            let message = format!("first {i}");
            stream.write_all(message.as_bytes()).unwrap();
            expect(&mut stream, message.as_bytes());
            stream
        })
        .collect();
    let pid = server.process.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.is_ok_and(|s| s.success()), "cannot send SIGTERM");
    for (i, stream) in clients.iter_mut().enumerate() {
        let message = format!("last {i}");
        stream.write_all(message.as_bytes()).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut echo = Vec::new();
        stream
            .read_to_end(&mut echo)
            .expect("the echo, then a clean end");
        assert_eq!(echo, message.as_bytes());
    }
    let (status, rest) = server.wait_for_exit();
    assert!(status.success(), "the server exited with {status}");
    assert_eq!(rest, Vec::<String>::new(), "one line on stdout");
}
