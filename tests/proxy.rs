//! PROXY protocol listeners over real sockets: the protocol is built for,
//! and made with, the client the header names; the bytes after the header
//! are its first data however the header was cut; a bad, missing or late
//! header closes that connection alone and says why; `Optional` serves
//! direct clients; the per-peer limit counts clients, not the proxy; a
//! stop lets a connection finish its header; TLS follows the header; a
//! UNIX listener takes headers as a TCP one does.

mod common;
#[path = "common/tls.rs"]
mod tls_common;
#[path = "unix_support/mod.rs"]
mod unix_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use common::{capture_warnings, localhost, next, warnings, ReactorThread, WAIT};
use reactor::{
    Factory, ListenOptions, ListenerHandle, ListenerStats, Protocol, ProxyProtocol, Reason,
    Transport,
};

/// What a client sends after its header, in the same write.
const TRAILING: &[u8] = b"hello after the header";

/// Tells every step of a connection's life on a channel: the peer its
/// protocol was built for, `made` with `peer_addr`, each chunk of data
/// (echoed back), and the reason it was lost.
struct Recording(Sender<String>);

impl Factory for Recording {
    fn build_protocol(&mut self, peer: SocketAddr) -> Box<dyn Protocol> {
        let _ = self.0.send(format!("built for {peer}"));
        Box::new(Recorder(self.0.clone()))
    }
}

struct Recorder(Sender<String>);

impl Protocol for Recorder {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let _ = self.0.send(format!("made {}", t.peer_addr()));
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        let _ = self
            .0
            .send(format!("data {}", String::from_utf8_lossy(data)));
        t.write(data);
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.0.send(format!("lost {reason:?}"));
    }
}

/// A reactor thread with a recording listener of `options`, its handle,
/// and the channel its connections report on.
fn server(options: ListenOptions) -> (ReactorThread, ListenerHandle, Receiver<String>) {
    let (tx, rx) = channel();
    let (handle_tx, handle_rx) = channel();
    let server = ReactorThread::start(move |r| {
        let listener = r.listen_tcp_with(localhost(), Recording(tx), options)?;
        handle_tx.send(listener).unwrap();
        Ok(listener.local_addr())
    });
    (server, handle_rx.recv().unwrap(), rx)
}

fn proxied(mode: ProxyProtocol) -> ListenOptions {
    ListenOptions {
        proxy_protocol: Some(mode),
        ..ListenOptions::default()
    }
}

fn stats(server: &ReactorThread, listener: ListenerHandle) -> ListenerStats {
    server
        .call(move |r| r.listener_stats(&listener))
        .expect("the listener is there")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads exactly `expected`'s length and checks it.
fn expect_reply(stream: &mut TcpStream, expected: &[u8]) {
    let mut got = vec![0; expected.len()];
    stream.read_exact(&mut got).expect("the echo");
    assert_eq!(got, expected);
}

/// Checks the server ends the connection (a reset or a FIN) without
/// sending anything.
fn expect_closed(stream: &mut TcpStream) {
    let mut buf = [0; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("got {:?} instead of a close", &buf[..n]),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

/// A version 2 `PROXY` header for TCP from `source` to `destination`,
/// with an authority TLV.
fn v2(source: &str, destination: &str) -> Vec<u8> {
    let (s, d): (SocketAddr, SocketAddr) = (source.parse().unwrap(), destination.parse().unwrap());
    let mut body = Vec::new();
    let family = match (s, d) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            body.extend_from_slice(&s.ip().octets());
            body.extend_from_slice(&d.ip().octets());
            0x11
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            body.extend_from_slice(&s.ip().octets());
            body.extend_from_slice(&d.ip().octets());
            0x21
        }
        _ => panic!("one family"),
    };
    body.extend_from_slice(&s.port().to_be_bytes());
    body.extend_from_slice(&d.port().to_be_bytes());
    body.extend_from_slice(b"\x02\x00\x0bexample.com");
    v2_raw(1, family, &body)
}

fn v2_raw(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x20 | command, family]);
    header.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    header.extend_from_slice(body);
    header
}

/// Sends `header` and [`TRAILING`] cut at every position in turn, one
/// connection each (in one write for position 0; else with a round trip
/// through the reactor between the two pieces, so they usually arrive
/// apart), and checks the connection is built for and made with
/// `client` (the socket's own address where `None`), gets the trailing
/// bytes as its first data and echoes them.
fn check_made(server: &ReactorThread, rx: &Receiver<String>, header: &[u8], client: Option<&str>) {
    let input = [header, TRAILING].concat();
    for cut in 0..input.len() {
        let mut stream = connect(server.addr);
        let expected = client.map_or_else(
            || stream.local_addr().unwrap().to_string(),
            |c| c.to_string(),
        );
        if cut == 0 {
            stream.write_all(&input).unwrap();
        } else {
            stream.write_all(&input[..cut]).unwrap();
            server.call(|_| ());
            stream.write_all(&input[cut..]).unwrap();
        }
        assert_eq!(next(rx), format!("built for {expected}"), "cut at {cut}");
        assert_eq!(next(rx), format!("made {expected}"), "cut at {cut}");
        let mut data = String::new();
        while data.len() < TRAILING.len() {
            data.push_str(next(rx).strip_prefix("data ").expect("data"));
        }
        assert_eq!(data.as_bytes(), TRAILING, "cut at {cut}");
        expect_reply(&mut stream, TRAILING);
        drop(stream);
        assert_eq!(next(rx), "lost PeerClosed");
    }
}

#[test]
fn the_protocol_is_made_for_the_client_the_header_names_and_gets_what_follows() {
    let (server, _, rx) = server(proxied(ProxyProtocol::Required));
    let v1 = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n";
    check_made(&server, &rx, v1, Some("192.0.2.7:56324"));
    let v1_6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 443\r\n";
    check_made(&server, &rx, v1_6, Some("[2001:db8::7]:65535"));
    let v2_4 = v2("192.0.2.8:1234", "198.51.100.1:443");
    check_made(&server, &rx, &v2_4, Some("192.0.2.8:1234"));
    let v2_6 = v2("[2001:db8::8]:1234", "[2001:db8::1]:443");
    check_made(&server, &rx, &v2_6, Some("[2001:db8::8]:1234"));
    // LOCAL (a proxy's own health check) and UNKNOWN: the socket's address.
    check_made(&server, &rx, &v2_raw(0, 0, &[]), None);
    check_made(&server, &rx, b"PROXY UNKNOWN\r\n", None);
}

#[test]
fn a_bad_header_closes_only_its_connection_and_says_why() {
    capture_warnings();
    let (server, listener, rx) = server(proxied(ProxyProtocol::Required));
    // A good connection, open all along.
    let mut good = connect(server.addr);
    good.write_all(&v2("192.0.2.1:1000", "198.51.100.1:443"))
        .unwrap();
    assert_eq!(next(&rx), "built for 192.0.2.1:1000");
    assert_eq!(next(&rx), "made 192.0.2.1:1000");
    let mut too_long = b"PROXY UNKNOWN ".to_vec();
    too_long.resize(200, b'x');
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            "no PROXY header: the first bytes are not a PROXY protocol signature",
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n".to_vec(),
            "PROXY v1 header with a bad destination port",
        ),
        (
            b"PROXY junk\r\n".to_vec(),
            "PROXY v1 header with a bad protocol",
        ),
        (
            too_long,
            "PROXY v1 header without CRLF in its first 107 bytes",
        ),
        (
            v2_raw(1, 0x21, &[0; 12]),
            "PROXY v2 header of length 12, short of the 36 its addresses take",
        ),
        (
            v2_raw(1, 0x11, &[0; 5000]),
            "PROXY v2 header of length 5000, over the limit of 4096",
        ),
        (
            v2_raw(3, 0x11, &[0; 12]),
            "PROXY v2 header with command 3, neither LOCAL nor PROXY",
        ),
    ];
    for (i, (input, reason)) in cases.iter().enumerate() {
        let mut bad = connect(server.addr);
        let before = warnings().len();
        // The peer may reset before everything is written.
        let _ = bad.write_all(input);
        expect_closed(&mut bad);
        let failures = i as u64 + 1;
        common::wait_until("the failure is counted", || {
            stats(&server, listener).proxy_header_failures == failures
        });
        let said = warnings()[before..].join("\n");
        assert!(said.contains(reason), "{said:?} does not say {reason:?}");
        // The good connection is untouched.
        good.write_all(b"still here").unwrap();
        expect_reply(&mut good, b"still here");
        assert_eq!(next(&rx), "data still here");
        // A good header ends the burst, so the next failure warns again.
        let mut other = connect(server.addr);
        other
            .write_all(&v2("192.0.2.9:9", "198.51.100.1:443"))
            .unwrap();
        assert_eq!(next(&rx), "built for 192.0.2.9:9");
        assert_eq!(next(&rx), "made 192.0.2.9:9");
        drop(other);
        assert_eq!(next(&rx), "lost PeerClosed");
    }
    // No protocol was built for any bad one.
    assert!(rx.try_recv().is_err());
    assert_eq!(stats(&server, listener).refused, 0);
}

#[test]
fn a_header_that_does_not_come_in_time_closes_the_connection() {
    capture_warnings();
    let timeout = Duration::from_millis(300);
    let options = ListenOptions {
        proxy_header_timeout: timeout,
        ..proxied(ProxyProtocol::Required)
    };
    let (server, listener, rx) = server(options);
    for (sent, came) in [(&b"PROXY TCP4 1.2"[..], 14), (b"", 0)] {
        let mut slow = connect(server.addr);
        slow.write_all(sent).unwrap();
        let start = Instant::now();
        expect_closed(&mut slow);
        assert!(start.elapsed() >= timeout - Duration::from_millis(50));
        let reason = format!("no whole PROXY header within 300ms ({came} bytes came)");
        common::wait_until("the timeout is logged", || {
            warnings().iter().any(|w| w.contains(&reason))
        });
        // A good header in between ends the burst of warnings.
        let mut good = connect(server.addr);
        good.write_all(b"PROXY UNKNOWN\r\n").unwrap();
        next(&rx);
        next(&rx);
    }
    assert_eq!(stats(&server, listener).proxy_header_failures, 2);
}

#[test]
fn optional_serves_a_direct_client_under_its_own_address() {
    // A timeout far past the test's wait: a direct client that speaks first
    // must be served at once, not when it passes.
    let options = ListenOptions {
        proxy_header_timeout: Duration::from_secs(3600),
        ..proxied(ProxyProtocol::Optional)
    };
    let (server, _, rx) = server(options);
    let mut direct = connect(server.addr);
    let own = direct.local_addr().unwrap();
    direct.write_all(b"hello").unwrap();
    assert_eq!(next(&rx), format!("built for {own}"));
    assert_eq!(next(&rx), format!("made {own}"));
    assert_eq!(next(&rx), "data hello");
    expect_reply(&mut direct, b"hello");
    // A header is still taken.
    check_made(
        &server,
        &rx,
        b"PROXY TCP4 192.0.2.7 198.51.100.1 5 6\r\n",
        Some("192.0.2.7:5"),
    );
    // A direct client that waits for the server to speak is served once
    // the header timeout has passed.
    let options = ListenOptions {
        proxy_header_timeout: Duration::from_millis(200),
        ..proxied(ProxyProtocol::Optional)
    };
    let (server, _, rx) = self::server(options);
    let silent = connect(server.addr);
    assert_eq!(
        next(&rx),
        format!("built for {}", silent.local_addr().unwrap())
    );
    assert_eq!(next(&rx), format!("made {}", silent.local_addr().unwrap()));
}

#[test]
fn the_per_peer_limit_counts_the_client_the_header_names() {
    let options = ListenOptions {
        max_connections_per_peer: Some(1),
        ..proxied(ProxyProtocol::Required)
    };
    let (server, listener, rx) = server(options);
    // Two connections from the same proxy wait for their headers at once:
    // neither counts against the per-peer limit before its header.
    let mut a = connect(server.addr);
    let mut b = connect(server.addr);
    common::wait_until("both are accepted", || stats(&server, listener).open == 2);
    a.write_all(b"PROXY TCP4 192.0.2.1 198.51.100.1 1000 443\r\n")
        .unwrap();
    b.write_all(b"PROXY TCP4 192.0.2.2 198.51.100.1 1000 443\r\n")
        .unwrap();
    let mut made: Vec<String> = (0..4).map(|_| next(&rx)).collect();
    made.sort();
    assert_eq!(
        made,
        [
            "built for 192.0.2.1:1000",
            "built for 192.0.2.2:1000",
            "made 192.0.2.1:1000",
            "made 192.0.2.2:1000"
        ]
    );
    // A second connection from 192.0.2.1 is over its limit.
    let mut c = connect(server.addr);
    c.write_all(b"PROXY TCP4 192.0.2.1 198.51.100.1 2000 443\r\n")
        .unwrap();
    expect_closed(&mut c);
    let now = stats(&server, listener);
    assert_eq!((now.refused, now.open), (1, 2));
    // Once the first is gone, it is let in.
    drop(a);
    assert_eq!(next(&rx), "lost PeerClosed");
    common::wait_until("the first is released", || {
        stats(&server, listener).open == 1
    });
    let mut d = connect(server.addr);
    d.write_all(b"PROXY TCP4 192.0.2.1 198.51.100.1 3000 443\r\n")
        .unwrap();
    assert_eq!(next(&rx), "built for 192.0.2.1:3000");
    assert_eq!(next(&rx), "made 192.0.2.1:3000");
    b.write_all(b"b").unwrap();
    expect_reply(&mut b, b"b");
}

#[test]
fn a_stop_lets_a_connection_finish_its_header() {
    let (tx, rx) = channel();
    let (stopping_tx, stopping) = channel();
    let server = ReactorThread::start(move |r| {
        r.add_shutdown_hook(move |_| stopping_tx.send(()).unwrap());
        let options = proxied(ProxyProtocol::Required);
        Ok(r.listen_tcp_with(localhost(), Recording(tx), options)?
            .local_addr())
    });
    let mut client = connect(server.addr);
    common::wait_until("it is accepted", || {
        server.call(|r| r.connection_count()) == 1
    });
    server.handle.stop();
    stopping.recv_timeout(WAIT).expect("the stop began");
    // The stop has asked every made connection; this one comes after.
    client
        .write_all(b"PROXY TCP4 192.0.2.1 198.51.100.1 1000 443\r\nlast words")
        .unwrap();
    assert_eq!(next(&rx), "built for 192.0.2.1:1000");
    assert_eq!(next(&rx), "made 192.0.2.1:1000");
    assert_eq!(next(&rx), "data last words");
    expect_reply(&mut client, b"last words");
    // Then it is closed as the stop closes every connection.
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert_eq!(next(&rx), "lost ReactorStopped");
    server.stop();
}

#[test]
fn tls_follows_the_header() {
    let certs = tls_common::Certs::new("proxy");
    let config = certs.server_config();
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let options = proxied(ProxyProtocol::Required);
        Ok(
            r.listen_tls_with(localhost(), config, Recording(tx), options)?
                .local_addr(),
        )
    });
    let mut tcp = connect(server.addr);
    tcp.write_all(&v2("192.0.2.5:4321", "198.51.100.1:443"))
        .unwrap();
    let name = reactor::tls::ServerName::try_from("localhost").unwrap();
    let tls = reactor::tls::rustls::ClientConnection::new(certs.client_config(), name).unwrap();
    let mut client = reactor::tls::rustls::StreamOwned::new(tls, tcp);
    client.write_all(b"secret").unwrap();
    let mut echo = [0; 6];
    client.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"secret");
    assert_eq!(next(&rx), "built for 192.0.2.5:4321");
    assert_eq!(next(&rx), "made 192.0.2.5:4321");
    assert_eq!(next(&rx), "data secret");
}

/// Reads a UNIX client's stream to its end and checks the server sent
/// nothing: a close with our unread input queued is an ECONNRESET.
fn expect_unix_closed(stream: &mut std::os::unix::net::UnixStream) {
    let (got, end) = unix_support::read_to_end(stream);
    assert_eq!(got, b"");
    assert!(
        matches!(end, Ok(()) | Err(std::io::ErrorKind::ConnectionReset)),
        "{end:?}"
    );
}

/// A proxy in front of a UNIX socket (nginx or HAProxy to a UNIX backend):
/// the connection is made for the client the header names and gets what
/// follows, however the header was cut; the per-peer limit counts those
/// clients, not the one user every proxied connection comes from; a
/// `LOCAL` header leaves the connection the proxy's own UNIX peer; a bad
/// header closes its connection.
#[test]
fn a_unix_listener_takes_the_header_too() {
    let dir = unix_support::TempDir::new("proxy");
    let path = dir.join("proxied.sock");
    let (tx, rx) = channel();
    let (handle_tx, handle_rx) = channel();
    let options = ListenOptions {
        max_connections_per_peer: Some(1),
        ..proxied(ProxyProtocol::Required)
    };
    let at = path.clone();
    let server = unix_support::unix_reactor(move |r| {
        handle_tx
            .send(r.listen_unix_with(&at, Recording(tx), options)?)
            .unwrap();
        Ok(())
    });
    let listener = handle_rx.recv().unwrap();
    let mut a = unix_support::unix_client(&path);
    a.write_all(b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nfirst")
        .unwrap();
    assert_eq!(next(&rx), "built for 192.0.2.7:56324");
    assert_eq!(next(&rx), "made 192.0.2.7:56324");
    assert_eq!(next(&rx), "data first");
    assert_eq!(unix_support::read_exactly(&mut a, 5), b"first");
    // From the same user, cut inside the header: let in, as another client.
    let header = v2("192.0.2.8:1234", "198.51.100.1:443");
    let mut b = unix_support::unix_client(&path);
    b.write_all(&header[..10]).unwrap();
    server.call(|_| ());
    b.write_all(&[&header[10..], b"second"].concat()).unwrap();
    assert_eq!(next(&rx), "built for 192.0.2.8:1234");
    assert_eq!(next(&rx), "made 192.0.2.8:1234");
    assert_eq!(next(&rx), "data second");
    assert_eq!(unix_support::read_exactly(&mut b, 6), b"second");
    // A second connection from 192.0.2.7 is over its limit.
    let mut c = unix_support::unix_client(&path);
    c.write_all(b"PROXY TCP4 192.0.2.7 198.51.100.1 2 443\r\n")
        .unwrap();
    expect_unix_closed(&mut c);
    common::wait_until("the refusal is counted", || {
        stats(&server, listener).refused == 1
    });
    // The proxy's own health check: made as the UNIX peer it is (the
    // factory gets no IP address for it).
    let mut check = unix_support::unix_client(&path);
    check.write_all(&v2_raw(0, 0, &[])).unwrap();
    assert_eq!(next(&rx), "built for 0.0.0.0:0");
    assert_eq!(next(&rx), "made unix:(unnamed)");
    // Not a header at all.
    let mut bad = unix_support::unix_client(&path);
    bad.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    expect_unix_closed(&mut bad);
    common::wait_until("the failure is counted", || {
        stats(&server, listener).proxy_header_failures == 1
    });
    let now = stats(&server, listener);
    assert_eq!((now.open, now.refused), (3, 1));
    assert!(rx.try_recv().is_err());
}
