//! Mutual TLS: a server built with `server_config_with_client_auth` sees
//! the certificate of a client built with `client_config_with_identity`,
//! and refuses a client without one, before any protocol is made.

mod common;
#[path = "common/tls.rs"]
mod tls_common;

use std::io::{Read, Write};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::time::Duration;

use reactor::{ClientFactory, Factory, Protocol, Reactor, Reason, Transport};

use common::{assert_quiet, localhost, next, wait_until, ReactorThread};
use tls_common::{connect, Certs};

/// Echoes; reports `made` with how many certificates the client showed,
/// and how it ended.
struct PeerCerts(Sender<String>);

impl Protocol for PeerCerts {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let info = t.tls_info().expect("TLS info once made");
        let _ = self
            .0
            .send(format!("made certs={}", info.peer_certificates.len()));
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        t.write(data);
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.0.send(format!("lost:{reason:?}"));
    }
}

fn mutual_config(certs: &Certs) -> Arc<reactor::tls::ServerConfig> {
    Arc::new(
        reactor::tls::server_config_with_client_auth(
            &certs.server_cert,
            &certs.server_key,
            &certs.ca,
        )
        .unwrap(),
    )
}

#[test]
fn a_client_with_a_certificate_is_accepted_and_the_server_sees_its_chain() {
    let certs = Certs::new("mutual-accepted");
    let (tx, rx) = channel();
    let config = mutual_config(&certs);
    let server = ReactorThread::start(move |r| {
        Ok(
            r.listen_tls(localhost(), config, move || PeerCerts(tx.clone()))?
                .local_addr(),
        )
    });
    let identity =
        reactor::tls::client_config_with_identity(&certs.ca, &certs.client_cert, &certs.client_key)
            .unwrap();
    let mut client = connect(server.addr, "localhost", Arc::new(identity));
    client.write_all(b"me").unwrap();
    let mut back = [0; 2];
    client.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"me");
    // client.pem holds the leaf and the authority: both are sent.
    assert_eq!(next(&rx), "made certs=2");
    client.conn.send_close_notify();
    client.flush().unwrap();
    assert_eq!(next(&rx), "lost:PeerClosed");
}

#[test]
fn a_client_without_a_certificate_is_refused_before_any_protocol_is_made() {
    common::capture_warnings();
    let certs = Certs::new("mutual-refused");
    let (tx, rx) = channel();
    let config = mutual_config(&certs);
    let server = ReactorThread::start(move |r| {
        Ok(
            r.listen_tls(localhost(), config, move || PeerCerts(tx.clone()))?
                .local_addr(),
        )
    });
    let mut client = connect(server.addr, "localhost", certs.client_config());
    let local = client.sock.local_addr().unwrap();
    // TLS 1.3: the client finishes its side, then reads the server's alert.
    client.write_all(b"let me in").unwrap();
    client.flush().unwrap();
    let err = client
        .read(&mut [0; 16])
        .expect_err("the server must refuse");
    assert!(err.to_string().contains("CertificateRequired"), "{err}");
    let expected = format!("{local}: TLS failed: handshake failed: ");
    wait_until("the server logs the refusal", || {
        common::warnings()
            .iter()
            .any(|w| w.starts_with(&expected) && w.contains("peer sent no certificates"))
    });
    assert_quiet(&rx);
}

/// Reports what becomes of a `connect_tls` attempt: its protocol's
/// callbacks, or the factory's `client_connection_failed`.
struct Attempt(Sender<String>);

impl Factory for Attempt {
    fn build_protocol(&mut self, _peer: std::net::SocketAddr) -> Box<dyn Protocol> {
        Box::new(PeerCerts(self.0.clone()))
    }
}

impl ClientFactory for Attempt {
    fn client_connection_failed(&mut self, _r: &mut Reactor, reason: &Reason) {
        let _ = self.0.send(format!("failed:{reason:?}"));
    }
}

/// Runs `connect_tls` with `client_config` against a server requiring
/// client certificates, on one reactor; returns what the client side
/// reported, then checks the server never made a protocol.
fn connect_without_certificate(
    certs: &Certs,
    client_config: Arc<reactor::tls::ClientConfig>,
) -> Vec<String> {
    let (server_tx, server_rx) = channel();
    let (client_tx, client_rx) = channel();
    let server_config = mutual_config(certs);
    let _reactor = ReactorThread::start(move |r| {
        let addr = r
            .listen_tls(localhost(), server_config, move || {
                PeerCerts(server_tx.clone())
            })?
            .local_addr();
        let attempt = Attempt(client_tx);
        r.connect_tls(
            addr,
            "localhost",
            client_config,
            attempt,
            Duration::from_secs(10),
        );
        Ok(addr)
    });
    let mut outcome = vec![next(&client_rx)];
    if outcome[0].starts_with("made") {
        outcome.push(next(&client_rx));
    }
    assert_quiet(&client_rx);
    assert_quiet(&server_rx);
    outcome
}

#[test]
fn connect_tls_without_a_certificate_under_tls_1_2_reaches_client_connection_failed() {
    let certs = Certs::new("mutual-connect-12");
    let provider = Arc::new(reactor::tls::rustls::crypto::aws_lc_rs::default_provider());
    let tls12 = reactor::tls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&reactor::tls::rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(reactor::tls::load_roots(&certs.ca).unwrap())
        .with_no_client_auth();
    let outcome = connect_without_certificate(&certs, Arc::new(tls12));
    // The server's refusal comes before the client's handshake completes.
    assert_eq!(outcome.len(), 1, "{outcome:?}");
    assert!(
        outcome[0].starts_with("failed:Tls(\"handshake failed: ")
            && outcome[0].contains("CertificateRequired"),
        "{outcome:?}"
    );
}

#[test]
fn connect_tls_without_a_certificate_under_tls_1_3_is_made_then_lost_with_the_alert() {
    // TLS 1.3 completes the client's handshake before the server checks
    // the client's certificate: the refusal is an alert after it, so the
    // client protocol is made (it sees the server's chain) and then lost.
    let certs = Certs::new("mutual-connect-13");
    let outcome = connect_without_certificate(&certs, certs.client_config());
    assert_eq!(
        outcome,
        [
            "made certs=2",
            "lost:Tls(\"the peer ended the session: received fatal alert: CertificateRequired\")"
        ]
    );
}
