//! The reactor's TLS against other implementations, over loopback:
//! `openssl s_client` and Python's `ssl` module as clients of `listen_tls`,
//! and a Python `ssl` server that `connect_tls` connects to. Each test
//! skips, saying why, only if its program is missing.

mod common;
#[path = "common/tls.rs"]
mod tls_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread;
use std::time::Duration;

use reactor::{ClientFactory, Factory, Protocol, Reactor, Reason, Transport};

use common::{localhost, next, pattern, ReactorThread, Recorder, WAIT};
use tls_common::Certs;

/// Whether `program` runs; if not, says so (the test then skips).
fn available(program: &str, version_arg: &str) -> bool {
    let ok = Command::new(program)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("skipped: `{program} {version_arg}` does not run here");
    }
    ok
}

/// A child process, killed and reaped on drop so no test leaks one.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// Waits for the child to exit (its stdout already ended) and fails
    /// the test, with its stderr, unless it exited 0.
    fn assert_success(mut self, stderr: Receiver<Vec<u8>>) {
        let status = self.0.wait().expect("wait for the child");
        let stderr = stderr.recv_timeout(WAIT).unwrap_or_default();
        assert!(
            status.success(),
            "{status}; stderr: {}",
            String::from_utf8_lossy(&stderr)
        );
    }
}

/// Reads `from` on a thread, passing on each chunk as it comes; the
/// channel closes at end-of-file.
fn chunks(mut from: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads `from` to the end on a thread; the receiver gets all of it.
fn all_of(mut from: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        let mut all = Vec::new();
        let _ = from.read_to_end(&mut all);
        let _ = tx.send(all);
    });
    rx
}

/// Reads `from` line by line on a thread.
fn lines(from: impl Read + Send + 'static) -> Receiver<String> {
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
}

/// Collects chunks from `rx` until `n` bytes came, failing after [`WAIT`]
/// per chunk or on end-of-file.
fn collect(rx: &Receiver<Vec<u8>>, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        match rx.recv_timeout(WAIT) {
            Ok(chunk) => got.extend_from_slice(&chunk),
            Err(e) => panic!("{e} after {} of {n} bytes: {got:?}", got.len()),
        }
    }
    got
}

/// Waits for the end-of-file on a [`chunks`] channel, failing on more bytes.
fn expect_eof(rx: &Receiver<Vec<u8>>) {
    match rx.recv_timeout(WAIT) {
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {}
        Ok(extra) => panic!("unexpected output: {}", String::from_utf8_lossy(&extra)),
        Err(e) => panic!("no end-of-file: {e}"),
    }
}

/// A reactor thread serving echoing [`Recorder`]s over TLS.
fn recording_tls_server(certs: &Certs) -> (ReactorThread, Receiver<String>) {
    let (tx, rx) = channel();
    let config = certs.server_config();
    let server = ReactorThread::start(move |r| {
        Ok(r.listen_tls(localhost(), config, move || Recorder {
            tx: tx.clone(),
            echo: true,
        })?
        .local_addr())
    });
    (server, rx)
}

/// The Python helper script next to this file.
fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tls_interop.py")
}

// ------------------------------------------------------------------ openssl s_client

#[test]
fn openssl_s_client_gets_exact_bytes_back_and_its_close_notify_is_a_clean_end() {
    if !available("openssl", "version") {
        return;
    }
    let certs = Certs::new("openssl");
    let (server, rx) = recording_tls_server(&certs);
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &server.addr.to_string()])
        .arg("-CAfile")
        .arg(&certs.ca)
        // SNI and the name checked, and a failed verification is fatal.
        .args(["-servername", "localhost", "-verify_hostname", "localhost"])
        .arg("-verify_return_error")
        // Nothing on stdout but what the server sends; end at stdin's EOF.
        .args(["-quiet", "-no_ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openssl");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = chunks(child.stdout.take().unwrap());
    let stderr = all_of(child.stderr.take().unwrap());
    let child = Running(child);

    stdin.write_all(b"hello from openssl\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(collect(&stdout, 19), b"hello from openssl\n");
    assert_eq!(next(&rx), "made");
    assert_eq!(next(&rx), "data:hello from openssl\n");
    stdin.write_all(b"second line\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(collect(&stdout, 12), b"second line\n");
    assert_eq!(next(&rx), "data:second line\n");

    // At stdin's end s_client sends close_notify and closes.
    drop(stdin);
    assert_eq!(next(&rx), "lost:PeerClosed");
    expect_eof(&stdout);
    child.assert_success(stderr);
}

// ------------------------------------------------------------------ Python as a client

/// Echoes; reports `made`, then how it ended and how many bytes it saw.
struct Counted {
    tx: Sender<String>,
    received: usize,
}

impl Protocol for Counted {
    fn connection_made(&mut self, _t: &mut dyn Transport) {
        let _ = self.tx.send("made".into());
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        self.received += data.len();
        t.write(data);
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self
            .tx
            .send(format!("lost:{reason:?} after {} bytes", self.received));
    }
}

#[test]
fn python_ssl_client_gets_exact_bytes_back_and_unwrap_is_a_clean_end() {
    if !available("python3", "--version") {
        return;
    }
    let certs = Certs::new("python-client");
    let (tx, rx) = channel();
    let config = certs.server_config();
    let server = ReactorThread::start(move |r| {
        Ok(r.listen_tls(localhost(), config, move || Counted {
            tx: tx.clone(),
            received: 0,
        })?
        .local_addr())
    });
    let payload = pattern(300_000, 17);
    let mut child = Command::new("python3")
        .arg(script())
        .args(["client", &server.addr.port().to_string()])
        .arg(&certs.ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = all_of(child.stdout.take().unwrap());
    let stderr = all_of(child.stderr.take().unwrap());
    let child = Running(child);
    stdin.write_all(&payload).unwrap();
    drop(stdin);

    assert_eq!(next(&rx), "made");
    // Python's unwrap() sent close_notify and waited for ours.
    assert_eq!(next(&rx), "lost:PeerClosed after 300000 bytes");
    let back = stdout.recv_timeout(WAIT).expect("python's output");
    assert_eq!(back.len(), payload.len());
    assert!(back == payload, "python got other bytes back");
    child.assert_success(stderr);
}

// ------------------------------------------------------------------ Python as a server

/// The bytes the Python server sends (its `pattern`).
fn python_pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + 3) % 256) as u8).collect()
}

/// Sends `send` once made, collects `expect` bytes, compares, then closes
/// (with close_notify); reports each step.
struct Talker {
    tx: Sender<String>,
    send: Vec<u8>,
    expect: Vec<u8>,
    got: Vec<u8>,
}

impl Protocol for Talker {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let _ = self.tx.send("made".into());
        t.write(&self.send);
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        self.got.extend_from_slice(data);
        if self.got.len() >= self.expect.len() {
            let same = self.got == self.expect;
            let _ = self.tx.send(format!(
                "received {} bytes, as sent: {same}",
                self.got.len()
            ));
            t.lose_connection();
        }
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(format!("lost:{reason:?}"));
    }
}

/// Builds one [`Talker`]; reports a failed connection.
struct TalkerFactory(Option<Talker>, Sender<String>);

impl Factory for TalkerFactory {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Box<dyn Protocol> {
        Box::new(self.0.take().expect("one connection"))
    }
}

impl ClientFactory for TalkerFactory {
    fn client_connection_failed(&mut self, _r: &mut Reactor, reason: &Reason) {
        let _ = self.1.send(format!("failed:{reason:?}"));
    }
}

#[test]
fn connect_tls_talks_to_a_python_ssl_server_and_closes_with_close_notify() {
    if !available("python3", "--version") {
        return;
    }
    let certs = Certs::new("python-server");
    let from_python = 70_000;
    let mut child = Command::new("python3")
        .arg(script())
        .arg("server")
        .arg(&certs.server_cert)
        .arg(&certs.server_key)
        .arg(from_python.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let out = lines(child.stdout.take().unwrap());
    let stderr = all_of(child.stderr.take().unwrap());
    let child = Running(child);
    let port_line = out.recv_timeout(WAIT).expect("python's port line");
    let port: u16 = port_line
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a port line: {port_line:?}"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let to_python = pattern(50_000, 23);
    let (tx, rx) = channel();
    let talker = Talker {
        tx: tx.clone(),
        send: to_python.clone(),
        expect: python_pattern(from_python),
        got: Vec::new(),
    };
    let config = certs.client_config();
    let _client = ReactorThread::start(move |r| {
        let factory = TalkerFactory(Some(talker), tx);
        r.connect_tls(addr, "localhost", config, factory, Duration::from_secs(10));
        Ok(addr)
    });
    assert_eq!(next(&rx), "made");
    assert_eq!(next(&rx), "received 70000 bytes, as sent: true");
    assert_eq!(next(&rx), "lost:LocalClosed");
    // Python's recv() returned b"" only because close_notify came (a bare
    // FIN raises there), then it printed what it got.
    let received = out.recv_timeout(WAIT).expect("python's received line");
    let hex: String = to_python.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        received == format!("received {hex}"),
        "python got other bytes: {}...",
        &received[..received.len().min(80)]
    );
    assert_eq!(out.recv_timeout(WAIT).as_deref(), Ok("clean"));
    child.assert_success(stderr);
}
