//! How TLS connections end: close_notify on `lose_connection` and on a
//! graceful stop, a peer's close_notify as a clean end, and a FIN without
//! it reported as a possible truncation.

mod common;
#[path = "common/tls.rs"]
mod tls_common;

use std::io::{Read, Write};
use std::sync::mpsc::channel;

use reactor::{OnStop, Protocol, Transport};

use common::{localhost, next, ReactorThread};
use tls_common::{connect, recording_tls_server, tls_server, Certs};

#[test]
fn a_peer_that_closes_without_close_notify_is_reported_as_truncated() {
    let certs = Certs::new("truncated");
    let (server, rx) = recording_tls_server(&certs, Default::default());
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

#[test]
fn lose_connection_sends_close_notify_after_the_data_so_the_peer_sees_a_clean_end() {
    let certs = Certs::new("close-notify");
    struct Bye;
    impl Protocol for Bye {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            t.write(b"bye");
            t.lose_connection();
        }
        fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    }
    let server = tls_server(&certs, || Bye);
    let mut client = connect(server.addr, "localhost", certs.client_config());
    let mut back = Vec::new();
    // rustls reports a FIN without close_notify as UnexpectedEof.
    client.read_to_end(&mut back).expect("a clean TLS end");
    assert_eq!(back, b"bye");
}

#[test]
fn a_graceful_stop_sends_close_notify_after_the_reply_in_progress() {
    let certs = Certs::new("stop");
    /// Answers each chunk, and keeps the connection through a stop until
    /// the peer's next message is answered.
    struct LastWord {
        stopping: bool,
        tx: std::sync::mpsc::Sender<String>,
    }
    impl Protocol for LastWord {
        fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
            t.write(data);
            if self.stopping {
                t.write(b" (last)");
                t.lose_connection();
            }
        }
        fn stopping(&mut self, _t: &mut dyn Transport) -> OnStop {
            self.stopping = true;
            let _ = self.tx.send("stopping".into());
            OnStop::KeepOpen
        }
    }
    let (tx, rx) = channel();
    let server = tls_server(&certs, move || LastWord {
        stopping: false,
        tx: tx.clone(),
    });
    let mut client = connect(server.addr, "localhost", certs.client_config());
    client.write_all(b"one").unwrap();
    let mut back = [0; 3];
    client.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"one");
    let handle = server.handle.clone();
    handle.stop();
    assert_eq!(next(&rx), "stopping");
    client.write_all(b"two").unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).expect("a clean TLS end");
    assert_eq!(rest, b"two (last)");
    server.stop();
}

#[test]
fn a_stop_closing_an_idle_tls_connection_says_close_notify() {
    let certs = Certs::new("stop-idle");
    let (server, rx) = recording_tls_server(&certs, Default::default());
    let mut client = connect(server.addr, "localhost", certs.client_config());
    client.write_all(b"hi").unwrap();
    let mut back = [0; 2];
    client.read_exact(&mut back).unwrap();
    assert_eq!(next(&rx), "made");
    assert_eq!(next(&rx), "data:hi");
    server.stop();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).expect("a clean TLS end");
    assert!(rest.is_empty());
    assert_eq!(next(&rx), "lost:ReactorStopped");
}

#[test]
fn reactor_lose_connection_from_another_connection_says_close_notify_too() {
    let certs = Certs::new("kick");
    /// The first connection to say `kick` closes the other one, through
    /// the reactor.
    struct Kicker(std::rc::Rc<std::cell::RefCell<Vec<reactor::ConnectionId>>>);
    impl Protocol for Kicker {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            self.0.borrow_mut().push(t.id());
            t.write(b"in;");
        }
        fn data_received(&mut self, t: &mut dyn Transport, _data: &[u8]) {
            let me = t.id();
            let others: Vec<_> = self
                .0
                .borrow()
                .iter()
                .copied()
                .filter(|id| *id != me)
                .collect();
            let reactor = t.reactor().unwrap();
            for id in others {
                reactor.write_to(id, b"bye;");
                reactor.lose_connection(id);
            }
        }
    }
    let config = certs.server_config();
    let server = ReactorThread::start(move |r| {
        let members = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        Ok(
            r.listen_tls(localhost(), config, move || Kicker(members.clone()))?
                .local_addr(),
        )
    });
    let mut kicked = connect(server.addr, "localhost", certs.client_config());
    let mut kicker = connect(server.addr, "localhost", certs.client_config());
    let mut welcome = [0; 3];
    kicked.read_exact(&mut welcome).unwrap();
    kicker.read_exact(&mut welcome).unwrap();
    kicker.write_all(b"kick").unwrap();
    let mut rest = Vec::new();
    kicked.read_to_end(&mut rest).expect("a clean TLS end");
    assert_eq!(rest, b"bye;");
}

#[test]
fn a_protocol_that_closes_in_the_middle_of_a_read_ends_cleanly_whatever_follows() {
    let certs = Certs::new("quit");
    struct QuitAtOnce;
    impl Protocol for QuitAtOnce {
        fn data_received(&mut self, t: &mut dyn Transport, _data: &[u8]) {
            t.write(b"ok");
            t.lose_connection();
        }
    }
    let server = tls_server(&certs, || QuitAtOnce);
    let mut client = connect(server.addr, "localhost", certs.client_config());
    // Many records in one go: the first closes the connection, the rest
    // arrive in the same read and must not turn the close into an error.
    let mut burst = b"quit".to_vec();
    burst.extend(std::iter::repeat_n(b'x', 200_000));
    client.write_all(&burst).unwrap();
    let mut back = Vec::new();
    client.read_to_end(&mut back).expect("a clean TLS end");
    assert_eq!(back, b"ok");
}
