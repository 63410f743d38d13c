//! How UNIX connections end and hold back, on the reactor: half-close,
//! `lose_connection` flushing, what an abort and a stop tell the peer (a
//! UNIX socket has no reset), flow control against a peer that stops
//! reading, the write cap; and TLS over a UNIX socket.

mod common;
#[cfg(feature = "tls")]
#[path = "common/tls.rs"]
mod tls_common;
#[path = "unix_support/mod.rs"]
mod unix_support;

use std::io::{ErrorKind, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use common::{assert_quiet, next, pattern, ReactorThread, WAIT};
use reactor::{ConnectionId, Protocol, Reason, Transport, DEFAULT_HIGH_WATERMARK};
use unix_support::{read_to_end, unix_client, unix_reactor, TempDir};

/// A reactor serving `factory`'s protocols on a socket file in `dir`;
/// returns the server and the file's path.
fn serve<P: Protocol>(
    dir: &TempDir,
    factory: impl FnMut() -> P + Send + 'static,
) -> (ReactorThread, std::path::PathBuf) {
    let path = dir.join("s.sock");
    let server_path = path.clone();
    let server = unix_reactor(move |r| r.listen_unix(&server_path, factory).map(drop));
    (server, path)
}

// ------------------------------------------------------------ half-close

/// Collects a request until the peer's FIN, then answers it reversed.
struct ReverseAtEnd {
    tx: Sender<String>,
    request: Vec<u8>,
}

impl Protocol for ReverseAtEnd {
    fn data_received(&mut self, _t: &mut dyn Transport, data: &[u8]) {
        self.request.extend_from_slice(data);
    }
    fn allows_half_close(&self) -> bool {
        true
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

#[test]
fn a_half_closing_server_answers_after_the_clients_end() {
    let dir = TempDir::new("half");
    let (tx, rx) = channel();
    let (server, path) = serve(&dir, move || ReverseAtEnd {
        tx: tx.clone(),
        request: Vec::new(),
    });
    let mut c = unix_client(&path);
    c.write_all(b"hello, ").unwrap();
    c.write_all(b"world").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), (b"dlrow ,olleh".to_vec(), Ok(())));
    assert_eq!(next(&rx), "read_connection_lost");
    assert_eq!(next(&rx), "lost:LocalClosed");
    assert_quiet(&rx);
    server.stop();
}

/// Says goodbye and shuts its writing side, then reports what still comes.
struct SayByeAndListen(Sender<String>);

impl Protocol for SayByeAndListen {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.write(b"bye");
        t.lose_write_connection();
    }
    fn data_received(&mut self, _t: &mut dyn Transport, data: &[u8]) {
        let _ = self
            .0
            .send(format!("data:{}", String::from_utf8_lossy(data)));
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.0.send(format!("lost:{reason:?}"));
    }
}

#[test]
fn a_server_that_shuts_its_writing_side_goes_on_reading() {
    let dir = TempDir::new("shutwrite");
    let (tx, rx) = channel();
    let (server, path) = serve(&dir, move || SayByeAndListen(tx.clone()));
    let mut c = unix_client(&path);
    assert_eq!(read_to_end(&mut c), (b"bye".to_vec(), Ok(())));
    c.write_all(b"still here").unwrap();
    assert_eq!(next(&rx), "data:still here");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(next(&rx), "lost:PeerClosed");
    assert_quiet(&rx);
    server.stop();
}

// ------------------------------------------------------- flushing, ends

/// Writes `data` at once, then closes: the close waits for the flush.
struct SendAndClose(Vec<u8>, Sender<String>);

impl Protocol for SendAndClose {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let _ = self.1.send("made".into());
        t.write(&self.0);
        t.lose_connection();
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.1.send(format!("lost:{reason:?}"));
    }
}

#[test]
fn lose_connection_flushes_every_byte_to_a_slow_reader_then_ends_cleanly() {
    let dir = TempDir::new("flush");
    let data = pattern(4 << 20, 3);
    let sent = data.clone();
    let (tx, rx) = channel();
    let (server, path) = serve(&dir, move || SendAndClose(sent.clone(), tx.clone()));
    let mut c = unix_client(&path);
    assert_eq!(next(&rx), "made");
    // Four MiB do not fit in the socket: most wait in the reactor's buffer
    // while the client is not reading, and the close waits with them.
    assert_quiet(&rx);
    let (got, end) = read_to_end(&mut c);
    assert_eq!(end, Ok(()));
    assert!(
        got == data,
        "{} of {} bytes, or not those",
        got.len(),
        data.len()
    );
    assert_eq!(next(&rx), "lost:LocalClosed");
    server.stop();
}

/// Pauses reading, says `hi`, and hands its id over, so the test can end
/// the connection while input from the peer waits unread.
struct HoldInput(Sender<ConnectionId>, Sender<String>);

impl Protocol for HoldInput {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.pause_reading();
        t.write(b"hi");
        let _ = self.0.send(t.id());
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.1.send(format!("lost:{reason:?}"));
    }
}

fn holding_server(
    dir: &TempDir,
) -> (
    ReactorThread,
    std::path::PathBuf,
    Receiver<ConnectionId>,
    Receiver<String>,
) {
    let (ids, id_rx) = channel();
    let (tx, rx) = channel();
    let (server, path) = serve(dir, move || HoldInput(ids.clone(), tx.clone()));
    (server, path, id_rx, rx)
}

/// What the peer of an aborted UNIX connection sees, which is not a TCP
/// reset: what was sent, then ECONNRESET if input the server had not read
/// was queued at its end, or a clean end-of-file if none was.
#[test]
fn an_abort_is_a_reset_for_the_peer_only_over_unread_input() {
    let dir = TempDir::new("abort");
    let (server, path, ids, rx) = holding_server(&dir);

    let mut with_unread = unix_client(&path);
    let id = ids.recv_timeout(WAIT).unwrap();
    // Queued at the server's end when write returns: a UNIX write hands
    // the bytes to the peer's receive queue.
    with_unread.write_all(b"never read").unwrap();
    server.call(move |r| r.abort_connection(id));
    assert_eq!(next(&rx), "lost:Aborted");
    assert_eq!(
        read_to_end(&mut with_unread),
        (b"hi".to_vec(), Err(ErrorKind::ConnectionReset))
    );

    let mut quiet = unix_client(&path);
    let id = ids.recv_timeout(WAIT).unwrap();
    server.call(move |r| r.abort_connection(id));
    assert_eq!(next(&rx), "lost:Aborted");
    assert_eq!(read_to_end(&mut quiet), (b"hi".to_vec(), Ok(())));
    server.stop();
}

/// A stop closes a connection whose input nobody read as a loss: counted
/// where it waits (not read to be counted, which would empty the queue and
/// make the close look clean), so the peer's read fails.
#[test]
fn a_stop_over_unread_input_makes_the_unix_peer_see_an_error() {
    let dir = TempDir::new("stop");
    let (server, path, ids, rx) = holding_server(&dir);
    let mut c = unix_client(&path);
    ids.recv_timeout(WAIT).unwrap();
    c.write_all(b"unread!").unwrap();
    server.stop();
    assert_eq!(
        next(&rx),
        "lost:Discarded { unsent: 0, unread: 7, cause: ReactorStopped }"
    );
    assert_eq!(
        read_to_end(&mut c),
        (b"hi".to_vec(), Err(ErrorKind::ConnectionReset))
    );
}

// ---------------------------------------------------------- flow control

/// A push producer: writes a pattern 16 KiB per turn of the loop (a timer
/// chain), stops when paused and goes on when resumed, closes at the end;
/// counts what it has written and reports each pause.
struct Producer {
    data: Arc<Vec<u8>>,
    written: Arc<AtomicUsize>,
    paused: bool,
    /// A timer of the chain is pending: one chain at a time.
    scheduled: bool,
    ids: Sender<ConnectionId>,
    tx: Sender<String>,
}

impl Producer {
    fn produce(&mut self, t: &mut dyn Transport) {
        if self.paused || self.scheduled {
            return;
        }
        let at = self.written.load(Ordering::SeqCst);
        let end = (at + 16 * 1024).min(self.data.len());
        t.write(&self.data[at..end]);
        self.written.store(end, Ordering::SeqCst);
        if end == self.data.len() {
            t.lose_connection();
        } else {
            self.scheduled = true;
            t.call_later(Duration::ZERO, 0);
        }
    }
}

impl Protocol for Producer {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let _ = self.ids.send(t.id());
        self.produce(t);
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn timer_fired(&mut self, t: &mut dyn Transport, _tag: u64) {
        self.scheduled = false;
        self.produce(t);
    }
    fn pause_producing(&mut self, _t: &mut dyn Transport) {
        self.paused = true;
        let _ = self.tx.send("paused".into());
    }
    fn resume_producing(&mut self, t: &mut dyn Transport) {
        self.paused = false;
        self.produce(t);
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(format!("lost:{reason:?}"));
    }
}

#[test]
fn a_producer_is_paused_while_a_unix_peer_does_not_read() {
    let dir = TempDir::new("flow");
    let data = Arc::new(pattern(8 << 20, 5));
    let written = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel();
    let (ids, id_rx) = channel();
    let (d, w) = (data.clone(), written.clone());
    let (server, path) = serve(&dir, move || Producer {
        data: d.clone(),
        written: w.clone(),
        paused: false,
        scheduled: false,
        ids: ids.clone(),
        tx: tx.clone(),
    });
    let mut c = unix_client(&path);
    let id = id_rx.recv_timeout(WAIT).unwrap();
    // The kernel takes what fits, the reactor buffers to the high
    // watermark, and the producer is paused there (it may have been
    // paused and resumed before, while the kernel still took bytes).
    let state = move |r: &mut reactor::Reactor| (r.buffered(id), r.is_write_buffer_full(id));
    loop {
        assert_eq!(next(&rx), "paused");
        if server.call(state).1 {
            break;
        }
    }
    // Held: several turns later it has written no more, short of the eight
    // MiB, and the buffer is bounded by the watermark and one chunk.
    let before = written.load(Ordering::SeqCst);
    let (held, full) = server.call(state);
    assert!(full);
    assert_eq!(server.call(state), (held, true));
    assert_eq!(written.load(Ordering::SeqCst), before);
    assert!(before < data.len(), "wrote everything: {before} bytes");
    assert!(
        held <= DEFAULT_HIGH_WATERMARK + 16 * 1024,
        "{held} bytes buffered"
    );
    // Reading resumes it, to the end.
    let (got, end) = read_to_end(&mut c);
    assert_eq!(end, Ok(()));
    assert!(
        got == *data,
        "{} of {} bytes, or not those",
        got.len(),
        data.len()
    );
    let end = loop {
        match next(&rx) {
            paused if paused == "paused" => {}
            other => break other,
        }
    };
    assert_eq!(end, "lost:LocalClosed");
    server.stop();
}

/// Ignores flow control: writes 256 KiB every millisecond until the cap
/// aborts it (bounded, in case it never does).
struct Flood(Sender<String>, u32);

impl Protocol for Flood {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.set_write_buffer_limit(1 << 20);
        t.call_later(Duration::ZERO, 0);
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn pause_producing(&mut self, _t: &mut dyn Transport) {}
    fn timer_fired(&mut self, t: &mut dyn Transport, _tag: u64) {
        self.1 += 1;
        t.write(&[b'x'; 256 * 1024]);
        if self.1 < 1000 {
            t.call_later(Duration::from_millis(1), 0);
        }
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.0.send(format!("lost:{reason:?}"));
    }
}

/// The cap aborts a writer whose peer stopped reading. The peer then reads
/// what the kernel held for it and a clean end-of-file: over UNIX, with no
/// unread input at the server, an abort cannot be told from an end.
#[test]
fn the_write_cap_aborts_a_writer_whose_unix_peer_stopped_reading() {
    let dir = TempDir::new("cap");
    let (tx, rx) = channel();
    let (server, path) = serve(&dir, move || Flood(tx.clone(), 0));
    let mut c = unix_client(&path);
    assert_eq!(next(&rx), "lost:BufferOverflow { limit: 1048576 }");
    let (got, end) = read_to_end(&mut c);
    assert_eq!(end, Ok(()));
    assert!(
        !got.is_empty() && got.len() < 4 << 20,
        "{} bytes",
        got.len()
    );
    assert!(got.iter().all(|&b| b == b'x'));
    server.stop();
}

// -------------------------------------------------------------------- TLS

#[cfg(feature = "tls")]
mod tls {
    use reactor::tls::rustls::{ClientConnection, StreamOwned};
    use reactor::tls::ServerName;
    use reactor::{client_factory, PeerCredentials};

    use super::*;
    use crate::tls_common::Certs;
    use crate::unix_support::own_credentials;

    /// Reports the peer's address and credentials as the protocol inside
    /// the TLS layer sees them, then echoes.
    struct Inside(Sender<String>);

    impl Protocol for Inside {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            let _ = self.0.send(format!(
                "made peer={} cred={:?} tls={}",
                t.peer_addr(),
                t.peer_credentials(),
                t.tls_info().is_some()
            ));
        }
        fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
            t.write(data);
        }
        fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
            let _ = self.0.send(format!("lost:{reason:?}"));
        }
    }

    fn expected_made(peer: &str, cred: PeerCredentials) -> String {
        format!("made peer={peer} cred={:?} tls=true", Some(cred))
    }

    #[test]
    fn tls_over_a_unix_socket_echoes_and_sees_the_peers_credentials() {
        let certs = Certs::new("unix");
        let dir = TempDir::new("tls");
        let path = dir.join("tls.sock");
        let (tx, rx) = channel();
        let (config, server_path) = (certs.server_config(), path.clone());
        let server = unix_reactor(move |r| {
            r.listen_unix_tls(&server_path, config, move || Inside(tx.clone()))
                .map(drop)
        });
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(certs.client_config(), name).unwrap();
        let mut client = StreamOwned::new(conn, unix_client(&path));
        client.write_all(b"over tls").unwrap();
        let mut reply = [0; 8];
        std::io::Read::read_exact(&mut client, &mut reply).unwrap();
        assert_eq!(&reply, b"over tls");
        assert_eq!(
            next(&rx),
            expected_made("unix:(unnamed)", own_credentials())
        );
        client.conn.send_close_notify();
        client.flush().unwrap();
        client.sock.shutdown(Shutdown::Write).unwrap();
        assert_eq!(next(&rx), "lost:PeerClosed");
        server.stop();
    }

    #[test]
    fn the_threaded_model_serves_tls_over_a_unix_socket() {
        use reactor::tls::{TlsFactory, TlsRole};
        let certs = Certs::new("unixthreads");
        let name = crate::unix_support::abstract_name("tls");
        let (tx, rx) = channel();
        let factory = TlsFactory::new(TlsRole::server(certs.server_config()), move || {
            Inside(tx.clone())
        });
        let server = reactor::threaded::listen_unix(&name, factory).unwrap();
        let server_name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(certs.client_config(), server_name).unwrap();
        let mut client = StreamOwned::new(conn, unix_client(&name));
        client.write_all(b"threads").unwrap();
        let mut reply = [0; 7];
        std::io::Read::read_exact(&mut client, &mut reply).unwrap();
        assert_eq!(&reply, b"threads");
        assert_eq!(
            next(&rx),
            expected_made("unix:(unnamed)", own_credentials())
        );
        server.shutdown();
    }

    #[test]
    fn connect_unix_tls_reaches_a_unix_tls_server() {
        let certs = Certs::new("unixclient");
        let dir = TempDir::new("tlsclient");
        let path = dir.join("tls.sock");
        let (tx, rx) = channel();
        let mut reactor = reactor::Reactor::new().unwrap();
        let server_tx = tx.clone();
        reactor
            .listen_unix_tls(&path, certs.server_config(), move || {
                Inside(server_tx.clone())
            })
            .unwrap();
        /// Sends a line, stops the reactor once it comes back.
        struct Hello(Sender<String>);
        impl Protocol for Hello {
            fn connection_made(&mut self, t: &mut dyn Transport) {
                let _ = self.0.send(format!(
                    "client {}",
                    t.peer_credentials() == Some(own_credentials())
                ));
                t.write(b"hello");
            }
            fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
                let _ = self
                    .0
                    .send(format!("client data:{}", String::from_utf8_lossy(data)));
                t.lose_connection();
                if let Some(r) = t.reactor() {
                    r.call_later(Duration::ZERO, |r| r.stop());
                }
            }
        }
        let failed = tx.clone();
        let factory = client_factory(
            move || Hello(tx.clone()),
            move |r, reason| {
                let _ = failed.send(format!("failed:{reason}"));
                r.stop();
            },
        );
        reactor.connect_unix_tls(&path, "localhost", certs.client_config(), factory, WAIT);
        reactor.call_later(WAIT, |r| r.stop());
        reactor.run().unwrap();
        let events: Vec<String> = rx.try_iter().collect();
        let client: Vec<&String> = events.iter().filter(|e| e.starts_with("client")).collect();
        assert_eq!(client, ["client true", "client data:hello"]);
        assert!(
            events.contains(&expected_made("unix:(unnamed)", own_credentials())),
            "{events:?}"
        );
    }
}
