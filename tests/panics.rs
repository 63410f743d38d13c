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

// Finding 7: panic isolation had holes. `allows_half_close` ran outside
// the panic guard, user `Drop`s ran outside any, and a panicking
// `client_connection_failed` skipped `stop_factory`.

/// Echoes; panics when asked whether it handles half-close; reports how
/// it ended.
struct PanicsWhenAskedAboutHalfClose(Sender<String>);

impl Protocol for PanicsWhenAskedAboutHalfClose {
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        t.write(data);
    }
    fn allows_half_close(&self) -> bool {
        panic!("bug in allows_half_close");
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.0.send(format!("lost:{reason:?}"));
    }
}

#[test]
fn a_panicking_allows_half_close_aborts_its_connection_and_the_reactor_serves_on_and_runs_again() {
    let (events_tx, events) = channel();
    let (addrs_tx, addrs) = channel();
    // The reactor runs twice on its own thread; each run's outcome is
    // reported, a panic out of `run` included.
    let reactor = std::thread::spawn(move || {
        let mut r = reactor::Reactor::new().unwrap();
        let handle = r.handle().unwrap();
        for _run in 0..2 {
            let tx = events_tx.clone();
            let fragile = r
                .listen_tcp(localhost(), move || {
                    PanicsWhenAskedAboutHalfClose(tx.clone())
                })
                .unwrap()
                .local_addr();
            let echo = r.listen_tcp(localhost(), || common::Echo).unwrap();
            addrs_tx
                .send((fragile, echo.local_addr(), handle.clone()))
                .unwrap();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.run()));
            let said = match outcome {
                Ok(Ok(())) => "run:Ok".to_string(),
                Ok(Err(e)) => format!("run:Err({e})"),
                Err(_) => "run:panicked".to_string(),
            };
            let _ = events_tx.send(said);
        }
    });
    for run in 0..2 {
        let (fragile, echo, handle) = addrs.recv_timeout(common::WAIT).unwrap();
        let mut bystander = client(echo);
        assert_eq!(roundtrip(&mut bystander, b"before"), b"before");
        let mut victim = client(fragile);
        assert_eq!(roundtrip(&mut victim, b"hi"), b"hi", "run {run}");
        victim.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(
            next(&events),
            "lost:Panicked(\"bug in allows_half_close\")",
            "run {run}"
        );
        let mut rest = Vec::new();
        let end = victim.read_to_end(&mut rest);
        assert!(rest.is_empty());
        assert_eq!(
            end.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionReset)
        );
        // Reads still work: the shared read buffer is back in place.
        assert_eq!(roundtrip(&mut bystander, b"after"), b"after", "run {run}");
        handle.stop();
        assert_eq!(next(&events), "run:Ok", "run {run}");
    }
    reactor.join().unwrap();
}

#[test]
fn a_panicking_allows_half_close_aborts_its_connection_under_the_threaded_server_too() {
    let (tx, rx) = channel();
    let server = reactor::threaded::listen_tcp(localhost(), move || {
        PanicsWhenAskedAboutHalfClose(tx.clone())
    })
    .unwrap();
    let mut victim = client(server.local_addr());
    assert_eq!(roundtrip(&mut victim, b"hi"), b"hi");
    victim.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(next(&rx), "lost:Panicked(\"bug in allows_half_close\")");
    let mut rest = Vec::new();
    let end = victim.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert_eq!(
        end.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
    server.shutdown();
}

/// Reports `name:dropped` when dropped, then panics (unless already
/// unwinding, which would abort the process).
struct PanicsWhenDropped {
    name: &'static str,
    tx: Sender<String>,
}

impl Drop for PanicsWhenDropped {
    fn drop(&mut self) {
        let _ = self.tx.send(format!("{}:dropped", self.name));
        if !std::thread::panicking() {
            panic!("bug in Drop of {}", self.name);
        }
    }
}

/// Echoes; reports how it ended; its `Drop` panics.
struct EchoPanickingOnDrop {
    tx: Sender<String>,
    _bomb: PanicsWhenDropped,
}

impl Protocol for EchoPanickingOnDrop {
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        t.write(data);
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(format!("lost:{reason:?}"));
    }
}

#[test]
fn a_protocol_whose_drop_panics_costs_only_its_own_connection() {
    let (tx, rx) = channel();
    let server = listening(move || EchoPanickingOnDrop {
        tx: tx.clone(),
        _bomb: PanicsWhenDropped {
            name: "protocol",
            tx: tx.clone(),
        },
    });
    let mut first = client(server.addr);
    assert_eq!(roundtrip(&mut first, b"one"), b"one");
    drop(first);
    assert_eq!(next(&rx), "lost:PeerClosed");
    assert_eq!(next(&rx), "protocol:dropped");
    let mut second = client(server.addr);
    assert_eq!(roundtrip(&mut second, b"two"), b"two");
    // `run` returns Ok (the thread unwraps it) though the second drop
    // panics too.
    server.stop();
    assert_eq!(next(&rx), "lost:ReactorStopped");
    assert_eq!(next(&rx), "protocol:dropped");
    common::assert_quiet(&rx);
}

/// Builds echoes; reports `stop_factory`; its `Drop` panics.
struct FactoryPanickingOnDrop(PanicsWhenDropped);

impl reactor::Factory for FactoryPanickingOnDrop {
    fn build_protocol(&mut self, _peer: std::net::SocketAddr) -> Box<dyn Protocol> {
        Box::new(common::Echo)
    }
    fn stop_factory(&mut self) {
        let _ = self.0.tx.send(format!("{}:stop_factory", self.0.name));
    }
}

#[test]
fn a_factory_whose_drop_panics_leaves_the_reactor_serving_and_stopping_cleanly() {
    let (tx, rx) = channel();
    let (handles_tx, handles) = channel();
    let server = ReactorThread::start(move |r| {
        let bomb = |name| {
            FactoryPanickingOnDrop(PanicsWhenDropped {
                name,
                tx: tx.clone(),
            })
        };
        let stopped = r.listen_tcp(localhost(), bomb("stopped"))?;
        let kept = r.listen_tcp(localhost(), bomb("kept"))?;
        handles_tx.send(stopped).unwrap();
        Ok(kept.local_addr())
    });
    let stopped = handles.recv().unwrap();
    assert!(server.call(move |r| r.stop_listening(&stopped)));
    assert_eq!(next(&rx), "stopped:stop_factory");
    assert_eq!(next(&rx), "stopped:dropped");
    let mut c = client(server.addr);
    assert_eq!(roundtrip(&mut c, b"still serving"), b"still serving");
    drop(c);
    // The stop drops the other factory: `run` still returns Ok.
    server.stop();
    assert_eq!(next(&rx), "kept:stop_factory");
    assert_eq!(next(&rx), "kept:dropped");
    common::assert_quiet(&rx);
}

#[test]
fn a_timer_whose_captures_panic_when_dropped_is_cancelled_or_dropped_at_stop_quietly() {
    let (tx, rx) = channel();
    let mut r = reactor::Reactor::new().unwrap();
    let bomb = |name| PanicsWhenDropped {
        name,
        tx: tx.clone(),
    };
    let cancelled = bomb("cancelled");
    let timer = r.call_later(Duration::from_secs(3600), move |_| {
        let _ = &cancelled;
    });
    assert!(r.cancel(timer));
    assert_eq!(next(&rx), "cancelled:dropped");
    let pending = bomb("pending");
    r.call_later(Duration::from_secs(3600), move |_| {
        let _ = &pending;
    });
    r.call_later(Duration::ZERO, |r| r.stop());
    r.run().expect("the stop drops the pending timer quietly");
    assert_eq!(next(&rx), "pending:dropped");
    // And the reactor runs again.
    r.call_later(Duration::ZERO, |r| r.stop());
    r.run().expect("a second run");
    common::assert_quiet(&rx);
}

/// A client factory whose `client_connection_failed` panics; reports its
/// hooks and its drop.
struct FailsLoudly(Sender<String>);

impl reactor::Factory for FailsLoudly {
    fn build_protocol(&mut self, _peer: std::net::SocketAddr) -> Box<dyn Protocol> {
        Box::new(common::Echo)
    }
    fn stop_factory(&mut self) {
        let _ = self.0.send("stop_factory".into());
    }
}

impl reactor::ClientFactory for FailsLoudly {
    fn client_connection_failed(&mut self, _r: &mut reactor::Reactor, reason: &Reason) {
        let _ = self.0.send(format!("failed:{reason:?}"));
        panic!("bug in client_connection_failed");
    }
}

impl Drop for FailsLoudly {
    fn drop(&mut self) {
        let _ = self.0.send("dropped".into());
    }
}

#[test]
fn a_connect_that_fails_at_once_still_stops_its_factory_when_the_failure_hook_panics() {
    let (tx, rx) = channel();
    let server = listening(|| common::Echo);
    // TCP never connects to a multicast group: Linux refuses it inside
    // connect(2) (ENETUNREACH), before any packet is sent, so this is the
    // path where `connect_tcp` fails before it has a connection.
    let unconnectable: std::net::SocketAddr = "224.0.0.1:9".parse().unwrap();
    let under_way = server.call(move |r| {
        r.connect_tcp(unconnectable, FailsLoudly(tx), common::WAIT);
        r.connection_count()
    });
    assert_eq!(under_way, 0, "the connect did not fail at once");
    let failed = next(&rx);
    assert!(failed.starts_with("failed:Error {"), "{failed}");
    assert_eq!(next(&rx), "stop_factory");
    assert_eq!(next(&rx), "dropped");
    let mut c = client(server.addr);
    assert_eq!(roundtrip(&mut c, b"still serving"), b"still serving");
    common::assert_quiet(&rx);
}
