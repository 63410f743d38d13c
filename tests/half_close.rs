//! Half-close: a protocol that opts in keeps writing after the peer's FIN,
//! and any protocol can close its own writing side and keep reading.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::mpsc::{channel, Sender};

use common::{assert_quiet, client, listening, localhost, next, ReactorThread};
use reactor::{Protocol, Reason, Transport};

/// Collects a request until the peer's FIN, then answers it reversed.
struct ReverseAtEnd {
    tx: Sender<String>,
    request: Vec<u8>,
    opt_in: bool,
}

impl Protocol for ReverseAtEnd {
    fn data_received(&mut self, _t: &mut dyn Transport, data: &[u8]) {
        self.request.extend_from_slice(data);
    }
    fn allows_half_close(&self) -> bool {
        self.opt_in
    }
    fn read_connection_lost(&mut self, transport: &mut dyn Transport) {
        let _ = self.tx.send("read_connection_lost".into());
        self.request.reverse();
        transport.write(&self.request);
        transport.lose_connection();
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(format!("lost:{reason:?}"));
    }
}

fn reverse_server(opt_in: bool) -> (ReactorThread, std::sync::mpsc::Receiver<String>) {
    let (tx, rx) = channel();
    let server = listening(move || ReverseAtEnd {
        tx: tx.clone(),
        request: Vec::new(),
        opt_in,
    });
    (server, rx)
}

#[test]
fn an_opted_in_server_answers_after_the_clients_fin_then_closes() {
    let (server, rx) = reverse_server(true);
    let mut s = client(server.addr);
    s.write_all(b"hello, ").unwrap();
    s.write_all(b"world").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    assert_eq!(answer, b"dlrow ,olleh");
    assert_eq!(next(&rx), "read_connection_lost");
    assert_eq!(next(&rx), "lost:LocalClosed");
    assert_quiet(&rx);
}

#[test]
fn by_default_the_peers_fin_ends_the_connection_as_in_twisted() {
    let (server, rx) = reverse_server(false);
    let mut s = client(server.addr);
    s.write_all(b"hello").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    assert_eq!(answer, b"");
    assert_eq!(next(&rx), "lost:PeerClosed");
    assert_quiet(&rx);
}

/// Says goodbye and closes its writing side at once, then reports what it
/// still reads.
struct GoodbyeFirst(Sender<String>);

impl Protocol for GoodbyeFirst {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        transport.write(b"goodbye");
        transport.lose_write_connection();
        // Ignored: the writing side is closing.
        transport.write(b" and more");
    }
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        let _ = self.0.send(format!(
            "data:{}:{}",
            String::from_utf8_lossy(data),
            transport.is_closing()
        ));
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.0.send(format!("lost:{reason:?}"));
    }
}

#[test]
fn lose_write_connection_sends_eof_and_keeps_reading_until_the_peer_closes() {
    let (tx, rx) = channel();
    let server = listening(move || GoodbyeFirst(tx.clone()));
    let mut s = client(server.addr);
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"goodbye");
    s.write_all(b"still talking").unwrap();
    assert_eq!(next(&rx), "data:still talking:false");
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(next(&rx), "lost:PeerClosed");
    assert_quiet(&rx);
}

/// Counts lines until the peer's FIN, then says how many.
struct CountLines(usize);

impl reactor::framing::LineHandler for CountLines {
    fn line_received(&mut self, _lines: &mut reactor::framing::Lines<'_>, _line: &[u8]) {
        self.0 += 1;
    }
    fn allows_half_close(&self) -> bool {
        true
    }
    fn read_connection_lost(&mut self, lines: &mut reactor::framing::Lines<'_>) {
        lines.send_line(format!("{} lines", self.0).as_bytes());
        lines.transport().lose_connection();
    }
}

#[test]
fn a_line_handler_can_opt_into_half_close_through_its_receiver() {
    let server = ReactorThread::start(|r| {
        let factory = || reactor::framing::LineReceiver::new(CountLines(0));
        Ok(r.listen_tcp(localhost(), factory)?.local_addr())
    });
    let mut s = client(server.addr);
    s.write_all(b"a\r\nb\r\nc\r\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    assert_eq!(answer, b"3 lines\r\n");
}
