//! Endpoint strings listening and connecting for real: `tcp:` on the
//! interface it names and with the backlog it names, `tls:` with
//! certificate files on disk (server and client), and the errors a user
//! sees when an endpoint cannot be used.

mod common;
#[path = "common/tls.rs"]
mod tls_common;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use common::{Echo, ReactorThread, WAIT};
use reactor::endpoint::{ClientEndpoint, ServerEndpoint};
use reactor::{client_factory, Protocol, Reactor, Reason, Transport};
use tls_common::Certs;

fn server(s: &str) -> ServerEndpoint {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn client(s: &str) -> ClientEndpoint {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// A reactor thread echoing on `endpoint`; its address is where it listens.
fn echo_on(endpoint: &str) -> ReactorThread {
    let endpoint = server(endpoint);
    ReactorThread::start(move |r| {
        let listening = r.listen_on(&endpoint, || Echo)?;
        Ok(listening
            .local_addr()
            .socket_addr()
            .expect("an IP listener"))
    })
}

/// Sends `message` to `addr` and reads back as many bytes.
fn exchange(addr: SocketAddr, message: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(message).unwrap();
    let mut answer = vec![0; message.len()];
    stream.read_exact(&mut answer).unwrap();
    answer
}

#[test]
fn tcp_listens_on_the_interface_it_names() {
    let server = echo_on("tcp:0:interface=127.0.0.2");
    assert_eq!(server.addr.ip(), std::net::Ipv4Addr::new(127, 0, 0, 2));
    assert_eq!(exchange(server.addr, b"on .2"), b"on .2");
    // Bound to 127.0.0.2 alone: the same port on 127.0.0.1 is closed (a
    // listener on every interface, the default, would answer there too).
    let other = SocketAddr::from(([127, 0, 0, 1], server.addr.port()));
    let refused = TcpStream::connect(other).expect_err("nothing listens on 127.0.0.1");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
}

/// How many of `tries` connects to `addr` complete within 700 ms each,
/// while nothing accepts: the listen queue's length plus one, on Linux.
fn queued_connects(addr: SocketAddr, tries: usize) -> usize {
    let mut held = Vec::new();
    for _ in 0..tries {
        // Under the 1 s after which a dropped SYN is sent again (and
        // dropped again: the queue stays full).
        match TcpStream::connect_timeout(&addr, Duration::from_millis(700)) {
            Ok(stream) => held.push(stream),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
                break;
            }
        }
    }
    held.len()
}

#[test]
fn tcp_listens_with_the_backlog_it_names() {
    // The reactor never runs, so nothing is accepted: connections wait in
    // the listen queue until it is full, and the next SYN is dropped.
    let mut reactor = Reactor::new().unwrap();
    let short = reactor
        .listen_on(&server("tcp:0:interface=127.0.0.1:backlog=2"), || Echo)
        .unwrap();
    let default = reactor
        .listen_on(&server("tcp:0:interface=127.0.0.1"), || Echo)
        .unwrap();
    let at = |l: &reactor::endpoint::Listening| l.local_addr().socket_addr().unwrap();
    assert_eq!(queued_connects(at(&short), 5), 3, "backlog 2 queues 3");
    assert_eq!(
        queued_connects(at(&default), 5),
        5,
        "the default queues more"
    );
}

/// Records what a client connection hears, and stops its reactor when the
/// connection ends or fails.
struct Heard {
    data: Rc<RefCell<Vec<u8>>>,
    expect: usize,
}

impl Protocol for Heard {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        transport.write(b"over tls, from an endpoint");
    }
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        self.data.borrow_mut().extend_from_slice(data);
        if self.data.borrow().len() >= self.expect {
            transport.lose_connection();
        }
    }
    fn connection_lost(&mut self, transport: &mut dyn Transport, _reason: &Reason) {
        if let Some(reactor) = transport.reactor() {
            reactor.stop();
        }
    }
}

/// Connects to `endpoint` from a reactor on this thread; what came back,
/// or why the connect failed.
fn run_client(endpoint: &ClientEndpoint, expect: usize) -> Result<Vec<u8>, Reason> {
    run_client_on(Reactor::new().unwrap(), endpoint, expect)
}

/// [`run_client`] on `reactor`, set up as the test needs.
fn run_client_on(
    mut reactor: Reactor,
    endpoint: &ClientEndpoint,
    expect: usize,
) -> Result<Vec<u8>, Reason> {
    let data = Rc::new(RefCell::new(Vec::new()));
    let failed = Rc::new(RefCell::new(None));
    let (heard, why) = (Rc::clone(&data), Rc::clone(&failed));
    let factory = client_factory(
        move || Heard {
            data: Rc::clone(&heard),
            expect,
        },
        move |reactor, reason| {
            *why.borrow_mut() = Some(reason.clone());
            reactor.stop();
        },
    );
    reactor.connect_to(endpoint, factory, WAIT);
    let watchdog = reactor.call_later(WAIT, |r| r.stop());
    reactor.run().unwrap();
    reactor.cancel(watchdog);
    let failure = failed.borrow_mut().take();
    match failure {
        Some(reason) => Err(reason),
        None => Ok(data.take()),
    }
}

#[test]
fn tls_serves_and_connects_with_certificate_files() {
    let certs = Certs::new("endpoints");
    let endpoint = format!(
        "tls:0:cert={}:key={}:interface=127.0.0.1",
        certs.server_cert.display(),
        certs.server_key.display()
    );
    let server = echo_on(&endpoint);
    let target = client(&format!(
        "tls:host=127.0.0.1:port={}:ca={}",
        server.addr.port(),
        certs.ca.display()
    ));
    let message = b"over tls, from an endpoint";
    assert_eq!(run_client(&target, message.len()).unwrap(), message);
    // A blocking rustls client agrees that it is TLS, under the name
    // `localhost` too.
    let mut tls = tls_common::connect(server.addr, "localhost", certs.client_config());
    tls.write_all(b"ping").unwrap();
    let mut answer = [0; 4];
    tls.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"ping");
    // An authority that did not sign the server's certificate: refused.
    let wrong = client(&format!(
        "tls:host=127.0.0.1:port={}:ca={}",
        server.addr.port(),
        certs.other_ca.display()
    ));
    let refused = run_client(&wrong, 1).expect_err("an unknown authority");
    assert!(matches!(refused, Reason::Tls(_)), "{refused:?}");
}

#[test]
fn a_tls_endpoint_whose_files_do_not_serve_fails_before_binding() {
    let certs = Certs::new("endpoints-bad");
    let mut reactor = Reactor::new().unwrap();
    // The client's key with the server's certificate: no identity.
    let mismatched = server(&format!(
        "tls:0:cert={}:key={}:interface=127.0.0.1",
        certs.server_cert.display(),
        certs.client_key.display()
    ));
    let err = reactor.listen_on(&mismatched, || Echo).unwrap_err();
    assert!(
        err.to_string().contains("do not make a server identity"),
        "{err}"
    );
    let missing = server("tls:0:cert=/nonexistent/c.pem:key=/nonexistent/k.pem");
    let err = reactor.listen_on(&missing, || Echo).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    // A client whose `ca` file is missing fails its connect, with the reason.
    let target = client("tls:host=127.0.0.1:port=9:ca=/nonexistent/ca.pem");
    let why = run_client(&target, 1).expect_err("no authorities");
    assert!(
        matches!(&why, Reason::Tls(text) if text.contains("/nonexistent/ca.pem")),
        "{why:?}"
    );
}

#[test]
fn tcp_clients_connect_and_hear_refusals() {
    let server = echo_on("tcp:0:interface=127.0.0.1");
    let message = b"over tls, from an endpoint"; // what Heard sends
    let target = client(&format!("tcp:127.0.0.1:{}", server.addr.port()));
    assert_eq!(run_client(&target, message.len()).unwrap(), message);
    let port = server.addr.port();
    server.stop();
    let gone = client(&format!("tcp:host=127.0.0.1:port={port}"));
    let why = run_client(&gone, 1).expect_err("nothing listens");
    assert!(
        matches!(
            why,
            Reason::Error {
                kind: ErrorKind::ConnectionRefused,
                ..
            }
        ),
        "{why:?}"
    );
}

#[test]
fn tcp_and_tls_clients_look_host_names_up() {
    let message = b"over tls, from an endpoint"; // what Heard sends
                                                 // localhost, from the system's resolver (only 127.0.0.1 listens: where
                                                 // localhost is ::1 too, that attempt is refused and the other wins).
    let server = echo_on("tcp:0:interface=127.0.0.1");
    let target = client(&format!("tcp:host=localhost:port={}", server.addr.port()));
    assert_eq!(run_client(&target, message.len()).unwrap(), message);
    // The certificate is checked for the name given.
    let certs = Certs::new("endpoints-names");
    let tls = echo_on(&format!(
        "tls:0:cert={}:key={}:interface=127.0.0.1",
        certs.server_cert.display(),
        certs.server_key.display()
    ));
    let target = client(&format!(
        "tls:host=localhost:port={}:ca={}",
        tls.addr.port(),
        certs.ca.display()
    ));
    assert_eq!(run_client(&target, message.len()).unwrap(), message);
    // A name with no address (a resolver of the test's: no DNS is asked).
    let mut reactor = Reactor::new().unwrap();
    reactor.set_resolver(|_, _| Ok(Vec::new()));
    let nowhere = client("tcp:host=nowhere.test:port=80");
    let why = run_client_on(reactor, &nowhere, 1).unwrap_err();
    assert!(
        matches!(&why, Reason::Unresolved { host, .. } if host == "nowhere.test"),
        "{why:?}"
    );
}

/// A fresh directory for socket files, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("reactor-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn unix_listens_with_its_mode_and_serves_clients() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;
    let dir = TempDir::new("endpoints-unix");
    let path = dir.0.join("echo.sock");
    let endpoint = server(&format!("unix:{}:mode=0604", path.display()));
    let (tx, rx) = std::sync::mpsc::channel();
    let server = ReactorThread::start(move |r| {
        let listening = r.listen_on(&endpoint, || Echo)?;
        tx.send(listening.local_addr().to_string()).unwrap();
        Ok(common::localhost())
    });
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap(),
        format!("unix:{}", path.display())
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o604, "the socket file's mode");
    let mut stream = UnixStream::connect(&path).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(b"over unix").unwrap();
    let mut answer = [0; 9];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"over unix");
    // And a client endpoint, from the reactor.
    let message = b"over tls, from an endpoint"; // what Heard sends
    let target = client(&format!("unix:path={}", path.display()));
    assert_eq!(run_client(&target, message.len()).unwrap(), message);
    server.stop();
}

#[test]
fn unix_abstract_names_need_no_file() {
    let name = format!("reactor-endpoints-{}", std::process::id());
    let endpoint = server(&format!("unix:@{name}"));
    let (tx, rx) = std::sync::mpsc::channel();
    let server = ReactorThread::start(move |r| {
        let listening = r.listen_on(&endpoint, || Echo)?;
        tx.send(listening.local_addr().to_string()).unwrap();
        Ok(common::localhost())
    });
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), format!("unix:@{name}"));
    let message = b"over tls, from an endpoint";
    let target = client(&format!("unix:@{name}"));
    assert_eq!(run_client(&target, message.len()).unwrap(), message);
    server.stop();
    // A name nobody listens on: refused, with the reason.
    let why = run_client(&client(&format!("unix:@{name}-nobody")), 1).unwrap_err();
    assert!(
        matches!(
            why,
            Reason::Error {
                kind: ErrorKind::ConnectionRefused,
                ..
            }
        ),
        "{why:?}"
    );
}
