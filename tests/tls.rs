//! TLS on the reactor: listen_tls, connect_tls, start_tls, and what the
//! layer promises (exact bytes, coalesced records, flow control, clean and
//! truncated ends, handshake failures and timeouts), over loopback.

mod common;
#[path = "common/tls.rs"]
mod tls_common;

use std::io::{Read, Write};
use std::sync::mpsc::channel;
use std::time::Duration;

use reactor::framing::{LineHandler, LineReceiver, Lines};
use reactor::tls::TlsRole;
use reactor::{Protocol, Reason, Transport};

use common::{localhost, next, pattern, Echo, ReactorThread};
use tls_common::{connect, recording_tls_server, tls_server, Certs};

#[test]
fn sixty_four_mebibytes_echo_byte_for_byte_in_random_sized_chunks() {
    let certs = Certs::new("bulk");
    let server = tls_server(&certs, || Echo);
    let mut client = connect(server.addr, "localhost", certs.client_config());
    let total = 64 << 20;
    let data = pattern(total, 7);
    // Writes and reads interleave on one stream: send a random-sized chunk,
    // read back whatever is ready, until everything came back.
    let mut sizes = pattern(4096, 11).into_iter().cycle();
    let mut sent = 0;
    let mut back = Vec::with_capacity(total);
    let mut buf = vec![0; 256 * 1024];
    while back.len() < total {
        if sent < total && sent - back.len() < 4 << 20 {
            let size = (1 + sizes.next().unwrap() as usize * 300).min(total - sent);
            client.write_all(&data[sent..sent + size]).unwrap();
            client.flush().unwrap();
            sent += size;
            continue;
        }
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed after {} bytes", back.len());
        back.extend_from_slice(&buf[..n]);
    }
    assert!(back == data, "the echo differs from what was sent");
}

#[test]
fn the_protocol_is_made_after_the_handshake_and_sees_what_it_negotiated() {
    let certs = Certs::new("info");
    let (tx, rx) = channel();
    let mut config = reactor::tls::server_config(&certs.server_cert, &certs.server_key).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let config = std::sync::Arc::new(config);
    struct Info(std::sync::mpsc::Sender<String>);
    impl Protocol for Info {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            let info = t.tls_info().expect("TLS info once made");
            let _ = self.0.send(format!(
                "made {:?} alpn={:?} sni={:?} certs={}",
                info.version,
                info.alpn.as_deref().map(String::from_utf8_lossy),
                info.server_name,
                info.peer_certificates.len()
            ));
        }
        fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
            t.write(data);
        }
        fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
            let _ = self.0.send(format!("lost {reason:?}"));
        }
    }
    let server = ReactorThread::start(move |r| {
        let tx = tx.clone();
        Ok(r.listen_tls(localhost(), config, move || Info(tx.clone()))?
            .local_addr())
    });
    let mut client_config = reactor::tls::client_config(&certs.ca).unwrap();
    client_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut client = connect(server.addr, "localhost", std::sync::Arc::new(client_config));
    client.write_all(b"ping").unwrap();
    let mut back = [0; 4];
    client.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    assert_eq!(
        next(&rx),
        "made TLSv1_3 alpn=Some(\"http/1.1\") sni=Some(\"localhost\") certs=0"
    );
    client.conn.send_close_notify();
    client.flush().unwrap();
    drop(client);
    assert_eq!(next(&rx), "lost PeerClosed");
}

// ------------------------------------------------------------ STARTTLS

/// Lines in plaintext until `STARTTLS`, answered by `GO`, then the same
/// line protocol over TLS: every line echoed with the layer it came over.
struct StartTlsServer {
    config: std::sync::Arc<reactor::tls::ServerConfig>,
    tx: std::sync::mpsc::Sender<String>,
}

impl LineHandler for StartTlsServer {
    fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
        let layer = if lines.transport().tls_info().is_some() {
            "tls"
        } else {
            "plain"
        };
        let line = String::from_utf8_lossy(line).into_owned();
        let _ = self.tx.send(format!("server got {layer}:{line}"));
        lines.send_line(format!("{layer}:{line}").as_bytes());
        if line == "STARTTLS" {
            lines.send_line(b"GO");
            let role = TlsRole::server(self.config.clone());
            lines.transport().start_tls(role).unwrap();
            // Already TLS: a second upgrade is refused.
            let again = lines
                .transport()
                .start_tls(TlsRole::server(self.config.clone()));
            assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
        }
    }
    fn connection_lost(&mut self, _lines: &mut Lines<'_>, reason: &Reason, _rest: &[u8]) {
        let _ = self.tx.send(format!("server lost {reason:?}"));
    }
}

/// Says hello in plaintext, asks for STARTTLS, switches on `GO`, then sends
/// a secret (held until the handshake completes) and closes once it is
/// echoed.
struct StartTlsClient {
    config: std::sync::Arc<reactor::tls::ClientConfig>,
    tx: std::sync::mpsc::Sender<String>,
}

impl LineHandler for StartTlsClient {
    fn connection_made(&mut self, lines: &mut Lines<'_>) {
        lines.send_line(b"hello");
        lines.send_line(b"STARTTLS");
    }
    fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
        let line = String::from_utf8_lossy(line).into_owned();
        let secure = lines.transport().tls_info().is_some();
        let _ = self.tx.send(format!("client got {line} (tls: {secure})"));
        match line.as_str() {
            "GO" => {
                let role = TlsRole::client(self.config.clone(), "localhost").unwrap();
                lines.transport().start_tls(role).unwrap();
                lines.send_line(b"secret");
            }
            "tls:secret" => lines.transport().lose_connection(),
            _ => {}
        }
    }
    fn connection_lost(&mut self, lines: &mut Lines<'_>, reason: &Reason, _rest: &[u8]) {
        let _ = self.tx.send(format!("client lost {reason:?}"));
        let _ = lines;
    }
}

#[test]
fn starttls_switches_both_sides_mid_stream_with_exact_bytes_on_each_side_of_the_switch() {
    let certs = Certs::new("starttls");
    let (tx, rx) = channel();
    let (server_config, client_config) = (certs.server_config(), certs.client_config());
    let server_tx = tx.clone();
    let _reactor = ReactorThread::start(move |r| {
        let server = r.listen_tcp(localhost(), move || {
            LineReceiver::new(StartTlsServer {
                config: server_config.clone(),
                tx: server_tx.clone(),
            })
            .with_delimiter(b"\n")
        })?;
        let client = LineReceiver::new(StartTlsClient {
            config: client_config,
            tx,
        })
        .with_delimiter(b"\n");
        let mut client = Some(client);
        r.connect_tcp(
            server.local_addr(),
            move || client.take().unwrap(),
            Duration::from_secs(5),
        );
        Ok(server.local_addr())
    });
    let mut seen: Vec<String> = (0..9).map(|_| next(&rx)).collect();
    // The two sides' reports interleave; each side's order is fixed.
    let server: Vec<_> = seen
        .iter()
        .filter(|l| l.starts_with("server"))
        .cloned()
        .collect();
    seen.retain(|l| l.starts_with("client"));
    assert_eq!(
        server,
        [
            "server got plain:hello",
            "server got plain:STARTTLS",
            "server got tls:secret",
            "server lost PeerClosed",
        ]
    );
    assert_eq!(
        seen,
        [
            "client got plain:hello (tls: false)",
            "client got plain:STARTTLS (tls: false)",
            "client got GO (tls: false)",
            "client got tls:secret (tls: true)",
            "client lost LocalClosed",
        ]
    );
}

// ------------------------------------------------------ failed handshakes

/// Reports how a client connection went: `made`, `data:..`, `failed:..`,
/// `lost:..`.
struct Reporting {
    tx: std::sync::mpsc::Sender<String>,
    send: &'static [u8],
}

impl Protocol for Reporting {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let _ = self.tx.send("made".into());
        t.write(self.send);
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        let _ = self
            .tx
            .send(format!("data:{}", String::from_utf8_lossy(data)));
        t.lose_connection();
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(format!("lost:{reason:?}"));
    }
}

struct ReportingFactory {
    tx: std::sync::mpsc::Sender<String>,
    send: &'static [u8],
}

impl reactor::Factory for ReportingFactory {
    fn build_protocol(&mut self, _peer: std::net::SocketAddr) -> Box<dyn Protocol> {
        Box::new(Reporting {
            tx: self.tx.clone(),
            send: self.send,
        })
    }
}

impl reactor::ClientFactory for ReportingFactory {
    fn client_connection_failed(&mut self, _r: &mut reactor::Reactor, reason: &Reason) {
        let _ = self.tx.send(format!("failed:{reason}"));
    }
    fn client_connection_lost(&mut self, _r: &mut reactor::Reactor, reason: &Reason) {
        let _ = self.tx.send(format!("factory lost:{reason:?}"));
    }
}

/// Connects with `connect_tls` from the reactor of `client`, asking for
/// `name` with `config`; returns the channel the connection reports on.
fn tls_client(
    client: &ReactorThread,
    addr: std::net::SocketAddr,
    name: &'static str,
    config: std::sync::Arc<reactor::tls::ClientConfig>,
    timeout: Duration,
) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = channel();
    client.call(move |r| {
        r.connect_tls(
            addr,
            name,
            config,
            ReportingFactory { tx, send: b"ping" },
            timeout,
        );
    });
    rx
}

fn idle_reactor() -> ReactorThread {
    ReactorThread::start(|_| Ok(localhost()))
}

/// The server still serves: a good client gets its echo.
fn still_serves(certs: &Certs, client: &ReactorThread, addr: std::net::SocketAddr) {
    let rx = tls_client(
        client,
        addr,
        "localhost",
        certs.client_config(),
        Duration::from_secs(5),
    );
    assert_eq!(next(&rx), "made");
    assert_eq!(next(&rx), "data:ping");
    assert_eq!(next(&rx), "lost:LocalClosed");
    assert_eq!(next(&rx), "factory lost:LocalClosed");
}

#[test]
fn a_client_expecting_another_host_name_fails_with_a_clear_reason_and_the_server_serves_on() {
    let certs = Certs::new("wrong-name");
    let (server, server_rx) = recording_tls_server(&certs, Default::default());
    let client = idle_reactor();
    let rx = tls_client(
        &client,
        server.addr,
        "wrong.example",
        certs.client_config(),
        Duration::from_secs(5),
    );
    let failed = next(&rx);
    assert!(
        failed.starts_with("failed:TLS failed: handshake failed: invalid peer certificate: certificate not valid for name \"wrong.example\""),
        "{failed}"
    );
    still_serves(&certs, &client, server.addr);
    // The server's protocol was made only for the good client.
    assert_eq!(next(&server_rx), "made");
    assert_eq!(next(&server_rx), "data:ping");
}

#[test]
fn a_client_that_does_not_trust_the_servers_authority_fails_with_a_clear_reason() {
    let certs = Certs::new("unknown-ca");
    let (server, _server_rx) = recording_tls_server(&certs, Default::default());
    let client = idle_reactor();
    let untrusting = std::sync::Arc::new(reactor::tls::client_config(&certs.other_ca).unwrap());
    let rx = tls_client(
        &client,
        server.addr,
        "localhost",
        untrusting,
        Duration::from_secs(5),
    );
    let failed = next(&rx);
    assert!(
        failed.contains("invalid peer certificate: UnknownIssuer"),
        "{failed}"
    );
    still_serves(&certs, &client, server.addr);
}

/// Sends `bytes` to a TLS port over plain TCP and returns what came back
/// before the server closed.
fn plain_to_tls_port(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = common::client(addr);
    s.write_all(bytes).unwrap();
    let mut back = Vec::new();
    match s.read_to_end(&mut back) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    back
}

#[test]
fn plaintext_http_or_garbage_sent_to_a_tls_port_costs_only_that_connection() {
    let certs = Certs::new("plaintext");
    let (server, server_rx) = recording_tls_server(&certs, Default::default());
    let back = plain_to_tls_port(server.addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    // A TLS alert record (content type 21), then the close.
    assert_eq!(back.first(), Some(&21), "{back:?}");
    plain_to_tls_port(server.addr, &pattern(3000, 5));
    let client = idle_reactor();
    still_serves(&certs, &client, server.addr);
    // No protocol was made for either bad connection.
    assert_eq!(next(&server_rx), "made");
    assert_eq!(next(&server_rx), "data:ping");
}

#[test]
fn a_handshake_that_never_completes_is_aborted_after_its_timeout() {
    let certs = Certs::new("hs-timeout");
    let options = reactor::ListenOptions {
        tls_handshake_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let (server, server_rx) = recording_tls_server(&certs, options);
    let started = std::time::Instant::now();
    let mut idle = common::client(server.addr);
    // Half a handshake: connected, and silent.
    let mut back = Vec::new();
    let end = idle.read_to_end(&mut back).map_err(|e| e.kind());
    assert_eq!(end, Err(std::io::ErrorKind::ConnectionReset));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(back.is_empty());
    common::wait_until("the aborted connection is gone", || {
        server.call(|r| r.connection_count()) == 0
    });
    let client = idle_reactor();
    still_serves(&certs, &client, server.addr);
    assert_eq!(next(&server_rx), "made");
}

#[test]
fn connect_tls_to_a_server_that_never_answers_the_hello_fails_after_its_timeout() {
    let silent = std::net::TcpListener::bind(localhost()).unwrap();
    let addr = silent.local_addr().unwrap();
    let client = idle_reactor();
    let certs = Certs::new("client-timeout");
    let rx = tls_client(
        &client,
        addr,
        "localhost",
        certs.client_config(),
        Duration::from_millis(300),
    );
    let (_held, _) = silent.accept().unwrap();
    assert_eq!(
        next(&rx),
        "failed:TLS failed: the handshake did not complete within 300ms"
    );
}

// ---------------------------------------------------- records and routing

/// Counts the bytes read through it.
struct Counting {
    inner: std::net::TcpStream,
    read: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[test]
fn a_thousand_one_byte_writes_in_one_callback_go_out_as_one_record() {
    let certs = Certs::new("records");
    struct Chatty;
    impl Protocol for Chatty {
        fn data_received(&mut self, t: &mut dyn Transport, _data: &[u8]) {
            for i in 0..1000u32 {
                t.write(&[b'a' + (i % 26) as u8]);
            }
        }
    }
    let mut config = reactor::tls::server_config(&certs.server_cert, &certs.server_key).unwrap();
    // No session tickets after the handshake: every byte counted below
    // is the reply.
    config.send_tls13_tickets = 0;
    let config = std::sync::Arc::new(config);
    let server = ReactorThread::start(move |r| {
        Ok(r.listen_tls(localhost(), config, || Chatty)?.local_addr())
    });
    let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tcp = common::client(server.addr);
    let name = reactor::tls::ServerName::try_from("localhost").unwrap();
    let conn = reactor::tls::rustls::ClientConnection::new(certs.client_config(), name).unwrap();
    let mut client = reactor::tls::rustls::StreamOwned::new(
        conn,
        Counting {
            inner: tcp,
            read: read.clone(),
        },
    );
    while client.conn.is_handshaking() {
        client.conn.complete_io(&mut client.sock).unwrap();
    }
    let before = read.load(std::sync::atomic::Ordering::Relaxed);
    client.write_all(b"go").unwrap();
    let mut back = vec![0; 1000];
    client.read_exact(&mut back).unwrap();
    let expected: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
    assert_eq!(back, expected);
    let ciphertext = read.load(std::sync::atomic::Ordering::Relaxed) - before;
    // One record: 1,000 bytes plus 22 of header, type and tag. A record per
    // write would be 22,000.
    assert_eq!(ciphertext, 1022);
}

#[test]
fn write_to_reaches_tls_connections_encrypted_from_another_connection_and_from_its_own() {
    let certs = Certs::new("write-to");
    /// Relays every chunk to every member, itself included, through the
    /// reactor rather than its transport.
    struct Relay(std::rc::Rc<std::cell::RefCell<Vec<reactor::ConnectionId>>>);
    impl Protocol for Relay {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            self.0.borrow_mut().push(t.id());
            t.write(b"welcome;");
        }
        fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
            let members = self.0.borrow().clone();
            let reactor = t.reactor().unwrap();
            for id in members {
                reactor.write_to(id, data);
            }
        }
    }
    let config = certs.server_config();
    let server = ReactorThread::start(move |r| {
        let members = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        Ok(
            r.listen_tls(localhost(), config, move || Relay(members.clone()))?
                .local_addr(),
        )
    });
    let mut a = connect(server.addr, "localhost", certs.client_config());
    let mut b = connect(server.addr, "localhost", certs.client_config());
    let mut welcome = [0; 8];
    a.read_exact(&mut welcome).unwrap();
    b.read_exact(&mut welcome).unwrap();
    assert_eq!(&welcome, b"welcome;");
    a.write_all(b"from a;").unwrap();
    let mut got = [0; 7];
    a.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"from a;");
    b.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"from a;");
    b.write_all(b"from b;").unwrap();
    a.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"from b;");
    b.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"from b;");
}
