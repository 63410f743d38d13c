//! A panic in user code ends only what it belongs to: the connection whose
//! protocol panicked, or nothing at all for a timer or a factory.

mod common;

use std::io::{Read, Write};
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use common::{client, listening, localhost, next, roundtrip, Fragile, ReactorThread};
use reactor::{Protocol, Reason, Transport};

#[test]
fn a_panicking_protocol_loses_its_connection_and_a_hundred_others_keep_echoing() {
    let (tx, rx) = channel();
    let server = listening(move || Fragile(tx.clone()));
    let mut others: Vec<_> = (0..100).map(|_| client(server.addr)).collect();
    for (i, s) in others.iter_mut().enumerate() {
        let msg = format!("hello {i}");
        assert_eq!(roundtrip(s, msg.as_bytes()), msg.as_bytes());
    }
    let mut victim = client(server.addr);
    victim.write_all(b"boom").unwrap();
    assert_eq!(
        next(&rx),
        "lost:aborted: the protocol panicked: asked to explode"
    );
    // Aborted: a reset, not a clean end, and nothing was written.
    let mut rest = Vec::new();
    let end = victim.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert_eq!(
        end.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
    for (i, s) in others.iter_mut().enumerate() {
        let msg = format!("still here {i}");
        assert_eq!(roundtrip(s, msg.as_bytes()), msg.as_bytes());
    }
}

#[test]
fn a_panicking_timer_or_factory_is_logged_and_the_reactor_serves_on() {
    let (tx, rx) = channel::<String>();
    let server = ReactorThread::start(move |r| {
        r.call_later(Duration::ZERO, |_| panic!("timer bug"));
        let mut built = 0;
        let factory = move || {
            built += 1;
            if built == 1 {
                panic!("factory bug");
            }
            Fragile(tx.clone())
        };
        Ok(r.listen_tcp(localhost(), factory)?.local_addr())
    });
    // The first connection met the factory's panic and was dropped.
    let mut first = client(server.addr);
    let mut rest = Vec::new();
    assert!(first.read_to_end(&mut rest).is_ok_and(|n| n == 0));
    let mut second = client(server.addr);
    assert_eq!(roundtrip(&mut second, b"fine"), b"fine");
    // And a timer still runs after the one that panicked.
    let (done_tx, done) = channel();
    server.call(move |r| {
        r.call_later(Duration::ZERO, move |_| done_tx.send(()).unwrap());
    });
    done.recv_timeout(common::WAIT).expect("timers still fire");
    drop(rx);
}

/// Panics on its first `fails` builds, then builds echoes.
struct PanicsFirst {
    built: usize,
    fails: usize,
}

impl reactor::Factory for PanicsFirst {
    fn build_protocol(&mut self, _peer: std::net::SocketAddr) -> Box<dyn Protocol> {
        self.built += 1;
        if self.built <= self.fails {
            panic!("build bug");
        }
        Box::new(common::Echo)
    }
}

#[test]
fn a_panicking_factory_does_not_use_up_the_listeners_connection_limit() {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let options = reactor::ListenOptions {
            max_connections: Some(2),
            max_connections_per_peer: Some(2),
            ..reactor::ListenOptions::default()
        };
        let listener =
            r.listen_tcp_with(localhost(), PanicsFirst { built: 0, fails: 2 }, options)?;
        tx.send(listener).unwrap();
        Ok(listener.local_addr())
    });
    let listener = rx.recv().unwrap();
    for _ in 0..2 {
        let mut dropped = client(server.addr);
        let mut rest = Vec::new();
        let _ = dropped.read_to_end(&mut rest);
        assert!(rest.is_empty());
    }
    let stats = server.call(move |r| r.listener_stats(&listener)).unwrap();
    assert_eq!(stats.open, 0, "the panics' admissions were never released");
    let mut s = client(server.addr);
    assert_eq!(roundtrip(&mut s, b"served"), b"served");
}

/// Closes at once and panics in `connection_lost`.
struct PanicsWhenLost;

impl Protocol for PanicsWhenLost {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        transport.lose_connection();
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn connection_lost(&mut self, _t: &mut dyn Transport, _reason: &Reason) {
        panic!("bug in connection_lost");
    }
}

/// A client factory that reports its hooks.
struct ReportingClient(Sender<String>);

impl reactor::Factory for ReportingClient {
    fn build_protocol(&mut self, _peer: std::net::SocketAddr) -> Box<dyn Protocol> {
        Box::new(PanicsWhenLost)
    }
    fn stop_factory(&mut self) {
        let _ = self.0.send("stop_factory".into());
    }
}

impl reactor::ClientFactory for ReportingClient {
    fn client_connection_lost(&mut self, _r: &mut reactor::Reactor, reason: &Reason) {
        let _ = self.0.send(format!("client_connection_lost:{reason:?}"));
    }
}

#[test]
fn a_panic_in_connection_lost_still_lets_the_client_factory_hear_of_it() {
    let (tx, rx) = channel();
    let peer = std::net::TcpListener::bind(localhost()).unwrap();
    let addr = peer.local_addr().unwrap();
    let _reactor = ReactorThread::start(move |r| {
        r.connect_tcp(addr, ReportingClient(tx), common::WAIT);
        Ok(addr)
    });
    let _accepted = peer.accept().unwrap();
    assert_eq!(next(&rx), "client_connection_lost:LocalClosed");
    assert_eq!(next(&rx), "stop_factory");
}
