//! A panic in user code ends only what it belongs to: the connection whose
//! protocol panicked, or nothing at all for a timer or a factory.

mod common;

use std::io::{Read, Write};
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use common::{client, localhost, next, roundtrip, ReactorThread};
use reactor::{Protocol, Reason, Transport};

/// Echoes, but panics on `boom`; reports how it ended.
struct Fragile(Sender<String>);

impl Protocol for Fragile {
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        if data == b"boom" {
            panic!("asked to explode");
        }
        transport.write(data);
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        if !matches!(reason, Reason::PeerClosed | Reason::ReactorStopped) {
            let _ = self.0.send(format!("lost:{reason}"));
        }
    }
}

#[test]
fn a_panicking_protocol_loses_its_connection_and_a_hundred_others_keep_echoing() {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let factory = move || Fragile(tx.clone());
        Ok(r.listen_tcp(localhost(), factory)?.local_addr())
    });
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
