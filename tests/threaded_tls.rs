//! The TLS layer under both serving models: the reactor's `listen_tls` and
//! the threaded model's `TlsFactory` run the same `TlsProtocol`, so each
//! body here runs under both and must see the same bytes and callbacks.

mod common;
#[path = "common/models.rs"]
mod models;
#[path = "common/tls.rs"]
mod tls_common;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::mpsc::{channel, Receiver};

use common::{assert_quiet, next, pattern, Echo, Recorder};
use models::{serve_tls, Model, Served};
use tls_common::{connect, Certs, Client};

/// Runs each body once per model, as `reactor_model::NAME` and
/// `threads_model::NAME`.
macro_rules! under_both_models {
    ($($body:ident),* $(,)?) => {
        mod reactor_model {
            $(#[test] fn $body() { crate::$body(crate::Model::Reactor) })*
        }
        mod threads_model {
            $(#[test] fn $body() { crate::$body(crate::Model::Threads) })*
        }
    };
}

under_both_models!(
    tls_echo_returns_four_mebibytes_byte_for_byte,
    tls_callbacks_run_in_order_after_the_handshake,
    tls_a_fin_without_close_notify_is_truncated,
    tls_a_failed_handshake_never_makes_the_protocol,
);

/// A TLS server of [`Recorder`]s (echoing) under `model`, and the channel
/// they report on.
fn recording(model: Model, certs: &Certs) -> (Served, Receiver<String>) {
    let (tx, rx) = channel();
    let server = serve_tls(model, certs.server_config(), move || Recorder {
        tx: tx.clone(),
        echo: true,
    });
    (server, rx)
}

/// Reads until the server's close_notify and end-of-file: a clean end.
fn read_to_clean_end(client: &mut Client) -> Vec<u8> {
    let mut rest = Vec::new();
    client
        .read_to_end(&mut rest)
        .expect("close_notify, then end-of-file");
    rest
}

fn tls_echo_returns_four_mebibytes_byte_for_byte(model: Model) {
    let certs = Certs::new("models-echo");
    let server = serve_tls(model, certs.server_config(), || Echo);
    let mut client = connect(server.addr, "localhost", certs.client_config());
    let total = 4 << 20;
    let data = pattern(total, 13);
    // Send in 100 KB pieces with at most 512 KiB unanswered, reading
    // between: a threaded server blocks writing back to a client that
    // does not read.
    let mut sent = 0;
    let mut back = Vec::with_capacity(total);
    let mut buf = vec![0; 256 * 1024];
    while back.len() < total {
        if sent < total && sent - back.len() < 512 << 10 {
            let size = 100_000.min(total - sent);
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
    client.conn.send_close_notify();
    client.flush().unwrap();
    assert_eq!(read_to_clean_end(&mut client), b"");
}

fn tls_callbacks_run_in_order_after_the_handshake(model: Model) {
    let certs = Certs::new("models-order");
    let (server, rx) = recording(model, &certs);
    let mut client = connect(server.addr, "localhost", certs.client_config());
    // Connected over TCP, no handshake yet: the protocol is not made.
    assert_quiet(&rx);
    client.write_all(b"abc").unwrap();
    let mut back = [0; 3];
    client.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"abc");
    assert_eq!(next(&rx), "made");
    assert_eq!(next(&rx), "data:abc");
    client.conn.send_close_notify();
    client.flush().unwrap();
    // The server answers with its own close_notify, then closes.
    assert_eq!(read_to_clean_end(&mut client), b"");
    assert_eq!(next(&rx), "lost:PeerClosed");
    assert_quiet(&rx);
}

fn tls_a_fin_without_close_notify_is_truncated(model: Model) {
    let certs = Certs::new("models-truncated");
    let (server, rx) = recording(model, &certs);
    let mut client = connect(server.addr, "localhost", certs.client_config());
    client.write_all(b"half a mess").unwrap();
    let mut back = [0; 11];
    client.read_exact(&mut back).unwrap();
    assert_eq!(next(&rx), "made");
    assert_eq!(next(&rx), "data:half a mess");
    // A FIN with no close_notify before it.
    client.sock.shutdown(Shutdown::Write).unwrap();
    assert_eq!(next(&rx), "lost:Truncated");
    assert_quiet(&rx);
}

fn tls_a_failed_handshake_never_makes_the_protocol(model: Model) {
    let certs = Certs::new("models-refused");
    let (server, rx) = recording(model, &certs);
    let wrong = std::sync::Arc::new(reactor::tls::client_config(&certs.other_ca).unwrap());
    let mut client = connect(server.addr, "localhost", wrong);
    let err = client
        .write_all(b"never delivered")
        .and_then(|()| client.flush())
        .and_then(|()| client.read(&mut [0; 16]))
        .expect_err("the handshake must fail");
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    // The client sent its alert; the server closes without making anything.
    let mut rest = Vec::new();
    let _ = client.sock.read_to_end(&mut rest);
    assert_quiet(&rx);
}
