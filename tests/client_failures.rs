//! A failed client connection is never silent: a closure factory's failure
//! is logged as a warning, and `client_factory` lets a program stop the
//! reactor (or retry) on it.

mod common;

use std::time::Duration;

use reactor::{client_factory, Protocol, Reactor, Transport};

use common::{wait_until, ReactorThread};

struct Silent;
impl Protocol for Silent {
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
}

/// A loopback port nothing listens on.
fn closed_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn a_refused_connect_from_a_closure_factory_is_logged_as_a_warning() {
    common::capture_warnings();
    let addr = closed_port();
    let client = ReactorThread::start(|_| Ok(common::localhost()));
    client.call(move |r: &mut Reactor| {
        r.connect_tcp(addr, || Silent, Duration::from_secs(5));
    });
    wait_until("the refusal is logged", || {
        common::warnings()
            .iter()
            .any(|w| w.starts_with("a client connection failed: connection refused"))
    });
}

#[test]
fn client_factory_hears_the_refusal_and_can_stop_the_reactor() {
    let addr = closed_port();
    let mut reactor = Reactor::new().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let factory = client_factory(
        || Silent,
        move |reactor, reason| {
            let _ = tx.send(reason.to_string());
            reactor.stop();
        },
    );
    reactor.connect_tcp(addr, factory, Duration::from_secs(5));
    // Returns only because the failure stopped it.
    reactor.run().unwrap();
    assert_eq!(rx.try_recv().unwrap(), "connection refused (os error 111)");
}
