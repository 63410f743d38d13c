//! Issue 12, "a stop that loses nothing": `echo_server --graceful` stopped by
//! SIGTERM while 500 clients are mid-transfer keeps reading and echoing
//! until each peer has half-closed or gone quiet, so every byte each client
//! sent comes back, then a clean EOF, and the process exits 0 within its
//! grace period.
//!
//! The clients run in one mio poll loop on the test's thread. The two
//! tests run one at a time ([`serial`]): each loads the machine.

mod common;
#[path = "common/programs.rs"]
mod programs;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use common::serial;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// Connections open at SIGTERM.
const CLIENTS: usize = 500;
/// Bytes each client sends in all.
const STREAM: usize = 256 << 10;
/// Bytes each client may send before the signal: it goes when every
/// client has had some echo back, and each has more to send after it.
const BEFORE_SIGNAL: usize = STREAM / 2;
/// Bytes per write.
const CHUNK: usize = 4 << 10;
/// The server's grace period, in seconds (`--grace`).
const GRACE_SECS: u64 = 10;
const GRACE: Duration = Duration::from_secs(GRACE_SECS);

/// Every client's stream is this table, read cyclically from an offset of
/// its own, so a byte echoed to the wrong client or out of place shows; the
/// length is prime, so no two of the 500 offsets line up.
const TABLE_LEN: usize = 65_521;

/// The offset in the table where client `client`'s stream starts.
fn start_of(client: usize) -> usize {
    client * 131 % TABLE_LEN
}

/// Client `client`'s bytes from `at` on, `out.len()` of them.
fn stream_bytes(table: &[u8], client: usize, at: usize, out: &mut [u8]) {
    let mut from = (start_of(client) + at) % TABLE_LEN;
    let mut done = 0;
    while done < out.len() {
        let n = (out.len() - done).min(TABLE_LEN - from);
        out[done..done + n].copy_from_slice(&table[from..from + n]);
        done += n;
        from = 0;
    }
}

/// How a client ends its stream once it has sent it all.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ending {
    /// `shutdown(Write)`: the server reads our FIN behind the rest.
    HalfClose,
    /// Nothing: the server closes once we have been quiet for its `--quiet`.
    Quiet,
}

/// How a client's connection ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum End {
    /// A clean EOF.
    Eof,
    /// A read or write error (a reset, most likely).
    Error(ErrorKind),
}

/// One client: what it sent, what came back, how it ended.
struct Client {
    stream: TcpStream,
    sent: usize,
    echoed: usize,
    /// Where the echo first differed from what was sent.
    wrong_at: Option<usize>,
    half_closed: bool,
    end: Option<End>,
}

impl Client {
    /// Sends as far as `limit` (or until the socket would block), then
    /// half-closes if `ending` says so and the whole stream is out.
    fn send(&mut self, table: &[u8], me: usize, limit: usize, ending: Ending) {
        let mut chunk = [0; CHUNK];
        while self.end.is_none() && self.sent < limit {
            let len = CHUNK.min(limit - self.sent);
            stream_bytes(table, me, self.sent, &mut chunk[..len]);
            match self.stream.write(&chunk[..len]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => self.end = Some(End::Error(e.kind())),
            }
        }
        if self.sent == STREAM && ending == Ending::HalfClose && !self.half_closed {
            self.half_closed = true;
            if let Err(e) = self.stream.shutdown(Shutdown::Write) {
                self.end = Some(End::Error(e.kind()));
            }
        }
    }

    /// Reads what the server echoed until the socket would block, checking
    /// it against what was sent.
    fn receive(&mut self, table: &[u8], me: usize, buf: &mut [u8], expected: &mut [u8]) {
        while self.end.is_none() {
            match self.stream.read(buf) {
                Ok(0) => {
                    self.end = Some(End::Eof);
                    // A client closes its end once the server has closed
                    // (a half-closed one already has).
                    if !self.half_closed {
                        let _ = self.stream.shutdown(Shutdown::Write);
                    }
                }
                Ok(n) => {
                    if self.wrong_at.is_none() {
                        stream_bytes(table, me, self.echoed, &mut expected[..n]);
                        if buf[..n] != expected[..n] {
                            let i = (0..n).find(|&i| buf[i] != expected[i]).unwrap_or(0);
                            self.wrong_at = Some(self.echoed + i);
                        }
                    }
                    self.echoed += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => self.end = Some(End::Error(e.kind())),
            }
        }
    }
}

/// What a run found.
struct Outcome {
    clients: Vec<Client>,
    /// Bytes sent and not yet echoed when the signal went.
    in_flight_at_signal: usize,
    /// From SIGTERM to the server's exit.
    exit_after: Duration,
    status: std::process::ExitStatus,
}

/// Starts `echo_server --graceful --grace 10`, connects [`CLIENTS`]
/// clients that stream to it and read the echo, sends SIGTERM once every
/// client has had some echo back, and lets them finish their streams and
/// end them as `ending` says; returns when every connection has ended and
/// the server has exited.
fn stop_mid_transfer(ending: Ending) -> Outcome {
    let server = programs::Server::start_with(
        "echo_server",
        &["--graceful", "--grace", &GRACE_SECS.to_string()],
    );
    let mut poll = Poll::new().unwrap();
    let mut clients: Vec<Client> = (0..CLIENTS)
        .map(|i| connect(&poll, server.addr, i))
        .collect();
    let mut events = Events::with_capacity(1024);
    let table = common::pattern(TABLE_LEN, 12);
    let mut buf = vec![0; 64 << 10];
    let mut expected = vec![0; buf.len()];
    let mut limit = BEFORE_SIGNAL;
    let mut signalled: Option<Instant> = None;
    let mut in_flight_at_signal = 0;
    // Bounded: the grace, plus time to set up and to read what is left.
    let give_up = Instant::now() + GRACE + programs::WAIT;
    while clients.iter().any(|c| c.end.is_none()) {
        assert!(
            Instant::now() < give_up,
            "{} connections still open after the grace period",
            clients.iter().filter(|c| c.end.is_none()).count()
        );
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        for event in &events {
            let me = event.token().0;
            let client = &mut clients[me];
            if event.is_readable() {
                client.receive(&table, me, &mut buf, &mut expected);
            }
            if event.is_writable() {
                client.send(&table, me, limit, ending);
            }
        }
        if signalled.is_none() && clients.iter().all(|c| c.echoed > 0) {
            let pid = server.process.0.id().to_string();
            let killed = Command::new("kill").args(["-TERM", &pid]).status();
            assert!(killed.is_ok_and(|s| s.success()), "cannot send SIGTERM");
            signalled = Some(Instant::now());
            in_flight_at_signal = clients.iter().map(|c| c.sent - c.echoed).sum();
            // Mid-transfer: the rest of each stream goes after the signal.
            // No writable edge is pending for a client that stopped at the
            // old limit, so each is given a go.
            limit = STREAM;
            for (me, client) in clients.iter_mut().enumerate() {
                client.send(&table, me, limit, ending);
            }
        }
    }
    let signalled = signalled.expect("the signal was sent");
    let (status, rest) = server.wait_for_exit();
    let exit_after = signalled.elapsed();
    assert!(rest.is_empty(), "more on stdout: {rest:?}");
    Outcome {
        clients,
        in_flight_at_signal,
        exit_after,
        status,
    }
}

fn connect(poll: &Poll, addr: SocketAddr, i: usize) -> Client {
    let mut stream = TcpStream::connect(addr).expect("connect");
    poll.registry()
        .register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )
        .unwrap();
    Client {
        stream,
        sent: 0,
        echoed: 0,
        wrong_at: None,
        half_closed: false,
        end: None,
    }
}

/// Every client sent its whole stream and got all of it back, unaltered,
/// then a clean EOF; the server exited 0 within its grace.
fn assert_nothing_lost(outcome: &Outcome) {
    let short: Vec<usize> = (0..CLIENTS)
        .filter(|&i| {
            let c = &outcome.clients[i];
            c.sent != STREAM || c.echoed != c.sent
        })
        .collect();
    let lost: usize = outcome
        .clients
        .iter()
        .map(|c| c.sent - c.echoed.min(c.sent))
        .sum();
    let unsent: usize = outcome.clients.iter().map(|c| STREAM - c.sent).sum();
    let errors: Vec<(usize, End)> = (0..CLIENTS)
        .filter_map(|i| match outcome.clients[i].end {
            Some(End::Eof) => None,
            other => Some((i, other.expect("every connection ended"))),
        })
        .collect();
    eprintln!(
        "{CLIENTS} clients, {} bytes in flight at SIGTERM: {} short of their echo, {lost} bytes sent and not echoed, {unsent} not sent, {} ended by an error; the server exited {:?} after SIGTERM",
        outcome.in_flight_at_signal,
        short.len(),
        errors.len(),
        outcome.exit_after
    );
    for (i, c) in outcome.clients.iter().enumerate() {
        assert!(
            c.wrong_at.is_none(),
            "client {i}'s echo differs at byte {:?}",
            c.wrong_at
        );
    }
    assert!(
        errors.is_empty(),
        "{} connections ended by an error, not a clean EOF, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(
        short.is_empty(),
        "{} of {CLIENTS} clients did not get back every byte they sent ({lost} bytes lost, {unsent} could not be sent), e.g. client {}: sent {}, echoed {}",
        short.len(),
        short[0],
        outcome.clients[short[0]].sent,
        outcome.clients[short[0]].echoed
    );
    assert!(
        outcome.status.success(),
        "the server exited with {}",
        outcome.status
    );
    assert!(
        outcome.exit_after < GRACE,
        "the server exited {:?} after SIGTERM, not within its grace of {GRACE:?}",
        outcome.exit_after
    );
}

#[test]
fn sigterm_mid_transfer_echoes_every_byte_of_500_half_closing_clients_then_exits_0() {
    let _serial = serial();
    let outcome = stop_mid_transfer(Ending::HalfClose);
    assert_nothing_lost(&outcome);
}

#[test]
fn sigterm_mid_transfer_echoes_every_byte_of_500_clients_that_go_quiet_then_closes_them() {
    let _serial = serial();
    let outcome = stop_mid_transfer(Ending::Quiet);
    assert_nothing_lost(&outcome);
    // Closed for being quiet (--quiet, 0.5 s by default), not at the end
    // of the grace period.
    assert!(
        outcome.exit_after < GRACE / 2,
        "the server exited {:?} after SIGTERM",
        outcome.exit_after
    );
}
