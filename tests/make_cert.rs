//! `make_cert`'s certificate does what the TLS examples need: a rustls
//! client that trusts it as its only root completes a real handshake over
//! 127.0.0.1 with a rustls server presenting it, for every name it is made
//! for, and gets back exactly the bytes it sent; it refuses a name the
//! certificate is not for, and a client trusting another `make_cert`
//! certificate refuses the server. Plain rustls over std sockets on
//! threads, so the certificate is checked apart from the crate's own TLS.
//!
//! Needs the example binaries: `cargo test` builds them; with a target
//! filter, run `cargo build --examples` first.

#[path = "common/programs.rs"]
mod programs;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use programs::{example, run_to_end, WAIT};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned,
};

/// A fresh directory under the system's temporary directory, removed when
/// dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("reactor-make-cert-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the scratch directory");
        Scratch(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs make_cert with `args` writing `cert.pem` and `key.pem` (or the
/// given prefix) into `dir`; checks it said so on stderr and nothing on
/// stdout. Returns the certificate's and the key's paths.
fn make_cert(dir: &Scratch, prefix: &str, names: &[&str]) -> (PathBuf, PathBuf) {
    let cert = dir.join(&format!("{prefix}cert.pem"));
    let key = dir.join(&format!("{prefix}key.pem"));
    let mut cmd = Command::new(example("make_cert"));
    cmd.arg("--cert").arg(&cert).arg("--key").arg(&key);
    for name in names {
        cmd.args(["--name", name]);
    }
    let out = run_to_end(&mut cmd, b"");
    out.assert_success();
    assert_eq!(out.stdout, "", "make_cert printed on stdout");
    for path in [&cert, &key] {
        assert!(
            out.stderr.contains(&path.display().to_string()),
            "stderr does not name {}: {}",
            path.display(),
            out.stderr
        );
    }
    (cert, key)
}

fn read_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .expect("open the certificate")
        .collect::<Result<Vec<_>, _>>()
        .expect("parse the certificate PEM")
}

fn server_config(cert: &Path, key: &Path) -> Arc<ServerConfig> {
    let key = PrivateKeyDer::from_pem_file(key).expect("parse the key PEM");
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(read_certs(cert), key)
        .expect("the key goes with the certificate");
    Arc::new(config)
}

/// A client trusting exactly the certificates in `ca`.
fn client_config(ca: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca) {
        roots.add(cert).expect("the certificate is a usable root");
    }
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A rustls echo server on 127.0.0.1 on its own thread, serving `conns`
/// connections one after the other: each is echoed until the client's
/// close_notify, answered with the server's own. Each connection's outcome
/// (bytes echoed, or the error) arrives on the receiver.
struct EchoServer {
    addr: std::net::SocketAddr,
    outcomes: Receiver<Result<usize, String>>,
    thread: JoinHandle<()>,
}

impl EchoServer {
    fn start(config: Arc<ServerConfig>, conns: usize) -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let (tx, outcomes) = channel();
        let thread = thread::spawn(move || {
            for _ in 0..conns {
                let (sock, _) = listener.accept().expect("accept");
                sock.set_read_timeout(Some(WAIT)).unwrap();
                sock.set_write_timeout(Some(WAIT)).unwrap();
                let conn = ServerConnection::new(Arc::clone(&config)).expect("server connection");
                let _ = tx.send(echo_until_close(StreamOwned::new(conn, sock)));
            }
        });
        EchoServer {
            addr,
            outcomes,
            thread,
        }
    }

    /// The next connection's outcome.
    fn outcome(&self) -> Result<usize, String> {
        self.outcomes
            .recv_timeout(WAIT)
            .expect("the server finished no connection in time")
    }

    fn join(self) {
        self.thread.join().expect("server thread panicked");
    }
}

fn echo_until_close(mut tls: StreamOwned<ServerConnection, TcpStream>) -> Result<usize, String> {
    let mut buf = [0u8; 8192];
    let mut echoed = 0;
    loop {
        // Ok(0) is the peer's close_notify; an EOF without it is an error.
        let n = tls.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        tls.write_all(&buf[..n]).map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
        echoed += n;
    }
    tls.conn.send_close_notify();
    tls.flush().map_err(|e| e.to_string())?;
    Ok(echoed)
}

/// Connects to `addr` checking the certificate against `name`, sends
/// `message`, and reads back exactly as many bytes; then closes with
/// close_notify and waits for the server's. Returns the echo, or the error
/// (a refused certificate shows up at the first write).
fn exchange(
    config: Arc<ClientConfig>,
    addr: std::net::SocketAddr,
    name: &str,
    message: &[u8],
) -> Result<Vec<u8>, String> {
    let name = ServerName::try_from(name.to_string()).expect("a valid server name");
    let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(addr).expect("connect to the server");
    sock.set_read_timeout(Some(WAIT)).unwrap();
    sock.set_write_timeout(Some(WAIT)).unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    tls.write_all(message).map_err(|e| e.to_string())?;
    tls.flush().map_err(|e| e.to_string())?;
    let mut echo = vec![0u8; message.len()];
    tls.read_exact(&mut echo).map_err(|e| e.to_string())?;
    tls.conn.send_close_notify();
    tls.flush().map_err(|e| e.to_string())?;
    let mut rest = Vec::new();
    match tls.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{} bytes after the echo", rest.len()),
        Err(e) => return Err(format!("no clean close from the server: {e}")),
    }
    Ok(echo)
}

/// Bytes that span several TLS records (at most 16 KiB each) and differ
/// from one position to the next, so a dropped, repeated or reordered
/// record changes the echo.
fn message(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

#[test]
fn default_certificate_serves_every_default_name() {
    let dir = Scratch::new("default");
    let (cert, key) = make_cert(&dir, "", &[]);
    let names = ["localhost", "127.0.0.1", "::1"];
    let server = EchoServer::start(server_config(&cert, &key), names.len());
    let client = client_config(&cert);
    for (i, name) in names.iter().enumerate() {
        let sent = message(40_000 + i, i as u8);
        let echo = exchange(Arc::clone(&client), server.addr, name, &sent)
            .unwrap_or_else(|e| panic!("handshake for {name} failed: {e}"));
        assert!(
            echo == sent,
            "the echo for {name} differs from what was sent"
        );
        assert_eq!(server.outcome(), Ok(sent.len()), "server side for {name}");
    }
    server.join();
}

#[test]
fn the_certificate_is_refused_for_other_names_and_by_other_roots() {
    let dir = Scratch::new("refused");
    let (cert, key) = make_cert(&dir, "", &[]);
    let (other, _) = make_cert(&dir, "other-", &[]);
    let server = EchoServer::start(server_config(&cert, &key), 2);
    let sent = message(100, 7);

    let err = exchange(client_config(&cert), server.addr, "example.com", &sent)
        .expect_err("a name the certificate is not for was accepted");
    assert!(err.contains("not valid for name"), "{err}");
    assert!(server.outcome().is_err(), "the server saw a handshake");

    let err = exchange(client_config(&other), server.addr, "localhost", &sent)
        .expect_err("a client trusting another certificate accepted this one");
    assert!(
        err.contains("BadSignature") || err.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(server.outcome().is_err(), "the server saw a handshake");
    server.join();
}

#[test]
fn names_given_replace_the_defaults() {
    let dir = Scratch::new("names");
    let (cert, key) = make_cert(&dir, "", &["echo.test", "10.1.2.3"]);
    let server = EchoServer::start(server_config(&cert, &key), 3);
    let client = client_config(&cert);
    for name in ["echo.test", "10.1.2.3"] {
        let sent = message(300, 1);
        let echo = exchange(Arc::clone(&client), server.addr, name, &sent)
            .unwrap_or_else(|e| panic!("handshake for {name} failed: {e}"));
        assert!(echo == sent, "the echo for {name} differs");
        assert_eq!(server.outcome(), Ok(sent.len()));
    }
    let err = exchange(client, server.addr, "localhost", b"x")
        .expect_err("a default name survived --name");
    assert!(err.contains("not valid for name"), "{err}");
    assert!(server.outcome().is_err());
    server.join();
}

#[test]
fn the_key_file_is_private() {
    let dir = Scratch::new("mode");
    // An existing, world-readable file is narrowed too.
    fs::write(dir.join("key.pem"), "old").unwrap();
    let (_, key) = make_cert(&dir, "", &[]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key.pem mode {mode:o}");
    }
    let pem = fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
}
