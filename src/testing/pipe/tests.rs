//! The pipe itself (closes, resets, half-close, the round bound), and the
//! TLS layer over it: handshake, exact bytes, clean and truncated ends,
//! many tiny writes in one record.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::{Pipe, Side};
use crate::protocol::Protocol;
use crate::reason::Reason;
use crate::tls::{rustls, TlsProtocol, TlsRole};
use crate::transport::Transport;

/// The callbacks a protocol heard, in order, shared with the test.
type Log = Rc<RefCell<Vec<String>>>;

/// Records its callbacks; writes `greeting` once made; `then` decides
/// what it does with each chunk it receives.
struct Recorder {
    log: Log,
    greeting: Vec<u8>,
    then: Then,
}

#[derive(Clone, Copy)]
enum Then {
    /// Keeps reading.
    Listen,
    /// Echoes.
    Echo,
    /// Closes with `lose_connection`.
    Close,
    /// Writes, then aborts (dropping what it wrote).
    Abort,
}

impl Recorder {
    fn new(log: &Log, greeting: &[u8], then: Then) -> Recorder {
        Recorder {
            log: log.clone(),
            greeting: greeting.to_vec(),
            then,
        }
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        self.log.borrow_mut().push("made".into());
        if !self.greeting.is_empty() {
            t.write(&self.greeting);
        }
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        self.log
            .borrow_mut()
            .push(format!("data:{}", String::from_utf8_lossy(data)));
        match self.then {
            Then::Listen => {}
            Then::Echo => t.write(data),
            Then::Close => t.lose_connection(),
            Then::Abort => {
                t.write(b"lost in the reset");
                t.abort_connection();
            }
        }
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        self.log.borrow_mut().push(format!("lost:{reason:?}"));
    }
}

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn taken(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.borrow_mut())
}

// ------------------------------------------------------------------ the pipe

#[test]
fn bytes_cross_and_lose_connection_ends_both_sides_cleanly() {
    let (c, s) = (log(), log());
    let mut pipe = Pipe::new(
        Recorder::new(&c, b"ping", Then::Close),
        Recorder::new(&s, b"", Then::Echo),
    );
    pipe.pump();
    assert_eq!(taken(&c), ["made", "data:ping", "lost:LocalClosed"]);
    assert_eq!(taken(&s), ["made", "data:ping", "lost:PeerClosed"]);
    assert_eq!(pipe.lost(Side::Client), Some(&Reason::LocalClosed));
    assert_eq!(pipe.lost(Side::Server), Some(&Reason::PeerClosed));
}

#[test]
fn an_abort_drops_what_was_written_and_resets_the_peer() {
    let (c, s) = (log(), log());
    let mut pipe = Pipe::new(
        Recorder::new(&c, b"go", Then::Listen),
        Recorder::new(&s, b"", Then::Abort),
    );
    pipe.pump();
    assert_eq!(taken(&s), ["made", "data:go", "lost:Aborted"]);
    assert_eq!(
        taken(&c),
        [
            "made",
            "lost:Error { kind: ConnectionReset, os_code: None }"
        ]
    );
}

/// Allows half-close: answers the peer's end-of-file with what it read,
/// reversed, then closes.
struct Reverse(Vec<u8>, Log);

impl Protocol for Reverse {
    fn allows_half_close(&self) -> bool {
        true
    }
    fn data_received(&mut self, _t: &mut dyn Transport, data: &[u8]) {
        self.0.extend_from_slice(data);
    }
    fn read_connection_lost(&mut self, t: &mut dyn Transport) {
        self.1.borrow_mut().push("eof".into());
        self.0.reverse();
        t.write(&self.0);
        t.lose_connection();
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        self.1.borrow_mut().push(format!("lost:{reason:?}"));
    }
}

#[test]
fn a_half_close_lets_the_peer_answer_before_the_end() {
    let (c, s) = (log(), log());
    let mut pipe = Pipe::new(
        Recorder::new(&c, b"stressed", Then::Listen),
        Reverse(Vec::new(), s.clone()),
    );
    pipe.transport(Side::Client).lose_write_connection();
    pipe.pump();
    assert_eq!(taken(&s), ["eof", "lost:LocalClosed"]);
    assert_eq!(taken(&c), ["made", "data:desserts", "lost:PeerClosed"]);
}

#[test]
fn paused_reading_holds_the_data_until_resumed() {
    let (c, s) = (log(), log());
    let mut pipe = Pipe::new(
        Recorder::new(&c, b"early", Then::Listen),
        Recorder::new(&s, b"", Then::Listen),
    );
    pipe.transport(Side::Server).pause_reading();
    pipe.pump();
    assert_eq!(taken(&s), ["made"]);
    pipe.transport(Side::Server).resume_reading();
    pipe.pump();
    assert_eq!(taken(&s), ["data:early"]);
}

#[test]
#[should_panic(expected = "still talking after 10000 rounds")]
fn two_echoes_never_fall_quiet_and_pump_says_so() {
    let (c, s) = (log(), log());
    let mut pipe = Pipe::new(
        Recorder::new(&c, b"ping", Then::Echo),
        Recorder::new(&s, b"", Then::Echo),
    );
    pipe.pump();
}

// ------------------------------------------------------------------ TLS over the pipe

/// A client and server configuration: a self-signed certificate for
/// localhost, trusted by the client.
fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let localhost = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = localhost.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(localhost.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// `client` and `server` wrapped in TLS and connected.
fn tls_pipe(
    client: impl Protocol + 'static,
    server: impl Protocol + 'static,
) -> Pipe<TlsProtocol, TlsProtocol> {
    let (server_config, client_config) = configs();
    let client = TlsProtocol::new(
        TlsRole::client(client_config, "localhost").unwrap(),
        Box::new(client),
    )
    .unwrap();
    let server = TlsProtocol::new(TlsRole::server(server_config), Box::new(server)).unwrap();
    Pipe::new(client, server)
}

/// Reports `made` with what the handshake negotiated.
struct Negotiated(Log);

impl Protocol for Negotiated {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let info = t.tls_info().expect("TLS info once made");
        self.0.borrow_mut().push(format!(
            "made {:?} sni={:?}",
            info.version, info.server_name
        ));
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
}

#[test]
fn the_handshake_completes_in_memory_and_only_then_are_the_protocols_made() {
    let (c, s) = (log(), log());
    let mut pipe = tls_pipe(Negotiated(c.clone()), Negotiated(s.clone()));
    // The client hello is written; nobody is made before the handshake.
    assert!(!pipe.transport(Side::Client).value().is_empty());
    assert!(c.borrow().is_empty() && s.borrow().is_empty());
    pipe.pump();
    assert_eq!(taken(&c), ["made TLSv1_3 sni=Some(\"localhost\")"]);
    assert_eq!(taken(&s), ["made TLSv1_3 sni=Some(\"localhost\")"]);
    assert_eq!(pipe.lost(Side::Client), None);
    assert_eq!(pipe.lost(Side::Server), None);
}

/// Writes `send` once made; keeps everything it receives.
struct Collect {
    send: Vec<u8>,
    got: Rc<RefCell<Vec<u8>>>,
}

impl Protocol for Collect {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.write(&self.send);
    }
    fn data_received(&mut self, _t: &mut dyn Transport, data: &[u8]) {
        self.got.borrow_mut().extend_from_slice(data);
    }
}

/// Deterministic pseudo-random bytes (xorshift).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn exact_bytes_cross_both_ways_over_many_records() {
    // Several records each way (a record holds at most 16 KiB).
    let (to_server, to_client) = (pattern(100_000, 3), pattern(70_001, 5));
    let (at_server, at_client) = (Rc::default(), Rc::default());
    let mut pipe = tls_pipe(
        Collect {
            send: to_server.clone(),
            got: Rc::clone(&at_client),
        },
        Collect {
            send: to_client.clone(),
            got: Rc::clone(&at_server),
        },
    );
    let moved = pipe.pump();
    assert!(
        *at_server.borrow() == to_server,
        "the server got other bytes"
    );
    assert!(
        *at_client.borrow() == to_client,
        "the client got other bytes"
    );
    // Ciphertext: the plaintext plus handshakes and record overhead.
    assert!(moved > 170_001, "moved {moved}");
}

#[test]
fn close_notify_ends_the_far_side_cleanly_with_peer_closed() {
    let (c, s) = (log(), log());
    let mut pipe = tls_pipe(
        Recorder::new(&c, b"bye", Then::Listen),
        Recorder::new(&s, b"", Then::Close),
    );
    pipe.pump();
    assert_eq!(taken(&s), ["made", "data:bye", "lost:LocalClosed"]);
    assert_eq!(taken(&c), ["made", "lost:PeerClosed"]);
}

#[test]
fn a_connection_dropped_without_close_notify_is_truncated() {
    let (c, s) = (log(), log());
    let mut pipe = tls_pipe(
        Recorder::new(&c, b"partial", Then::Listen),
        Recorder::new(&s, b"", Then::Listen),
    );
    pipe.pump();
    assert_eq!(taken(&s), ["made", "data:partial"]);
    // The client's socket closes under its layer: a FIN, no close_notify.
    pipe.transport(Side::Client).lose_connection();
    pipe.pump();
    assert_eq!(taken(&s), ["lost:Truncated"]);
    assert_eq!(taken(&c), ["made", "lost:LocalClosed"]);
}

/// Writes `count` single bytes from one timer callback.
struct Dribble {
    count: usize,
}

impl Protocol for Dribble {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.call_later(Duration::from_secs(1), 0);
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn timer_fired(&mut self, t: &mut dyn Transport, _tag: u64) {
        for i in 0..self.count {
            t.write(&[b'a' + (i % 26) as u8]);
        }
    }
}

#[test]
fn a_thousand_one_byte_writes_in_one_callback_become_one_record() {
    let got = Rc::default();
    let mut pipe = tls_pipe(
        Collect {
            send: Vec::new(),
            got: Rc::clone(&got),
        },
        Dribble { count: 1000 },
    );
    pipe.pump();
    assert!(pipe.transport(Side::Server).value().is_empty());
    pipe.advance(Duration::from_secs(1));
    // One record: 1,000 bytes plus ~22 of header, type and tag; a record
    // per write would be ~22,000.
    let ciphertext = pipe.transport(Side::Server).value().len();
    assert!(ciphertext < 1000 + 200, "{ciphertext} bytes of ciphertext");
    pipe.pump();
    let expected: Vec<u8> = (0..1000).map(|i| b'a' + (i % 26) as u8).collect();
    assert!(*got.borrow() == expected);
}
