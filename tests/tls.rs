//! TLS on the reactor: listen_tls, connect_tls, start_tls, and what the
//! layer promises (exact bytes, coalesced records, flow control, clean and
//! truncated ends, handshake failures and timeouts), over loopback.

mod common;
#[path = "common/tls.rs"]
mod tls_common;

use std::io::{Read, Write};
use std::sync::mpsc::channel;

use reactor::{Protocol, Reason, Transport};

use common::{localhost, next, pattern, Echo, ReactorThread, Recorder};
use tls_common::{connect, Certs};

/// A reactor thread serving `factory`'s protocols over TLS.
fn tls_server<P: Protocol>(
    certs: &Certs,
    factory: impl FnMut() -> P + Send + 'static,
) -> ReactorThread {
    let config = certs.server_config();
    ReactorThread::start(move |r| Ok(r.listen_tls(localhost(), config, factory)?.local_addr()))
}

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

#[test]
fn a_peer_that_closes_without_close_notify_is_reported_as_truncated() {
    let certs = Certs::new("truncated");
    let (tx, rx) = channel();
    let config = certs.server_config();
    let server = ReactorThread::start(move |r| {
        let tx = tx.clone();
        Ok(r.listen_tls(localhost(), config, move || Recorder {
            tx: tx.clone(),
            echo: true,
        })?
        .local_addr())
    });
    let mut client = connect(server.addr, "localhost", certs.client_config());
    client.write_all(b"half a mess").unwrap();
    let mut back = [0; 11];
    client.read_exact(&mut back).unwrap();
    assert_eq!(next(&rx), "made");
    assert_eq!(next(&rx), "data:half a mess");
    // A FIN with no close_notify before it.
    client.sock.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(next(&rx), "lost:Truncated");
}
