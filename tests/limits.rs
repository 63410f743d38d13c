//! Idle timeouts, deadlines and connection limits: what a server does about
//! peers that go quiet, stay too long, or come too many at once.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    client, listening, localhost, next, roundtrip, wait_until, Echo, ReactorThread, WAIT,
};
use reactor::{ListenOptions, ListenerStats, Protocol, Reason, Timeout, Transport};

/// Reads to the end; true for a clean EOF with nothing before it.
fn closed_cleanly(s: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).is_ok_and(|n| n == 0)
}

#[test]
fn two_thousand_quiet_connections_are_timed_out_and_a_busy_one_is_not() {
    let server = ReactorThread::start(|r| {
        let options = ListenOptions {
            idle_timeout: Some(Duration::from_secs(1)),
            ..ListenOptions::default()
        };
        let listener = r.listen_tcp_with(localhost(), || Echo, options)?;
        Ok(listener.local_addr())
    });
    let mut busy = client(server.addr);
    let quiet: Vec<TcpStream> = (0..2000).map(|_| client(server.addr)).collect();
    // The busy client talks without pause until every quiet one is closed.
    let done = Arc::new(AtomicBool::new(false));
    let talker = {
        let done = done.clone();
        thread::spawn(move || {
            let mut exchanges = 0u64;
            while !done.load(Ordering::Relaxed) {
                assert_eq!(roundtrip(&mut busy, b"ping"), b"ping");
                exchanges += 1;
            }
            (busy, exchanges)
        })
    };
    let started = Instant::now();
    for (i, mut s) in quiet.into_iter().enumerate() {
        assert!(
            closed_cleanly(&mut s),
            "quiet connection {i} was not closed"
        );
    }
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (mut busy, exchanges) = talker.join().expect("the busy client failed");
    assert!(exchanges > 0);
    assert_eq!(roundtrip(&mut busy, b"still here"), b"still here");
    // Closed by the timeout, not at once.
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
}

/// Reports `timeout_connection` and `connection_lost`; sets a deadline.
struct Deadlined(Sender<String>);

impl Protocol for Deadlined {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        transport.set_deadline(Some(Duration::from_millis(200)));
    }
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        transport.write(data);
    }
    fn timeout_connection(&mut self, transport: &mut dyn Transport, timeout: Timeout) {
        let _ = self.0.send(format!("timeout:{timeout:?}"));
        transport.write(b"time is up");
        transport.lose_connection();
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.0.send(format!("lost:{reason:?}"));
    }
}

#[test]
fn a_deadline_ends_even_a_busy_connection() {
    let (tx, rx) = channel();
    let server = listening(move || Deadlined(tx.clone()));
    let mut s = client(server.addr);
    let mut echoed = Vec::new();
    let mut buf = [0; 64];
    let end = Instant::now() + WAIT;
    // Talk until the server hangs up; it must before WAIT.
    loop {
        assert!(Instant::now() < end, "the deadline never came");
        if s.write_all(b"x").is_err() {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => echoed.extend_from_slice(&buf[..n]),
        }
        if echoed.ends_with(b"time is up") {
            break;
        }
    }
    assert!(
        echoed.ends_with(b"time is up"),
        "got {:?}",
        String::from_utf8_lossy(&echoed)
    );
    assert_eq!(next(&rx), "timeout:Deadline");
    assert_eq!(next(&rx), "lost:LocalClosed");
}

#[test]
fn the_eleventh_connection_from_one_address_is_closed_and_the_ten_go_on() {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let options = ListenOptions {
            max_connections_per_peer: Some(10),
            ..ListenOptions::default()
        };
        let listener = r.listen_tcp_with(localhost(), || Echo, options)?;
        tx.send(listener).unwrap();
        Ok(listener.local_addr())
    });
    let listener = rx.recv().unwrap();
    let mut ten: Vec<TcpStream> = (0..10).map(|_| client(server.addr)).collect();
    for s in &mut ten {
        assert_eq!(roundtrip(s, b"in"), b"in");
    }
    let mut eleventh = client(server.addr);
    // Closed unread: a reset if our bytes got there first, else a FIN.
    let _ = eleventh.write_all(b"me too");
    let mut answer = Vec::new();
    let end = eleventh.read_to_end(&mut answer);
    assert!(answer.is_empty(), "the eleventh was served");
    assert!(
        matches!(&end, Ok(0))
            || end
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{end:?}"
    );
    for s in &mut ten {
        assert_eq!(roundtrip(s, b"still in"), b"still in");
    }
    let stats = server.call(move |r| r.listener_stats(&listener)).unwrap();
    assert_eq!((stats.open, stats.refused), (10, 1));
    // One leaves: a newcomer is let in once the server has seen it go.
    drop(ten.pop());
    wait_until("the server has seen the close", || {
        server
            .call(move |r| r.listener_stats(&listener))
            .unwrap()
            .open
            == 9
    });
    let mut newcomer = client(server.addr);
    assert_eq!(roundtrip(&mut newcomer, b"hello"), b"hello");
}

#[test]
fn a_listener_limit_counts_every_peer() {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let options = ListenOptions {
            max_connections: Some(3),
            ..ListenOptions::default()
        };
        let listener = r.listen_tcp_with(localhost(), || Echo, options)?;
        tx.send(listener).unwrap();
        Ok(listener.local_addr())
    });
    let listener = rx.recv().unwrap();
    let mut three: Vec<TcpStream> = (0..3).map(|_| client(server.addr)).collect();
    for s in &mut three {
        assert_eq!(roundtrip(s, b"in"), b"in");
    }
    for _ in 0..2 {
        let mut extra = client(server.addr);
        assert!(closed_cleanly(&mut extra));
    }
    let stats = server.call(move |r| r.listener_stats(&listener)).unwrap();
    assert_eq!((stats.open, stats.refused), (3, 2));
}

/// Extends its deadline by a minute when it passes.
struct Extends(Sender<String>);

impl Protocol for Extends {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        transport.set_deadline(Some(Duration::from_millis(100)));
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn timeout_connection(&mut self, transport: &mut dyn Transport, timeout: Timeout) {
        let _ = self.0.send(format!("timeout:{timeout:?}"));
        transport.set_deadline(Some(Duration::from_secs(60)));
    }
}

#[test]
fn a_deadline_hook_may_extend_the_deadline() {
    let (tx, rx) = channel();
    let server = listening(move || Extends(tx.clone()));
    let mut s = client(server.addr);
    assert_eq!(next(&rx), "timeout:Deadline");
    // Only the extended deadline is pending: no grace timer that would
    // abort the connection or ask again in a second.
    assert_eq!(server.call(|r| r.pending_timers()), 1);
    assert_eq!(roundtrip_or_silence(&mut s), "still open");
}

/// The connection is still open: a write goes through and no EOF is there.
fn roundtrip_or_silence(s: &mut TcpStream) -> &'static str {
    s.write_all(b"x").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0; 1];
    match s.read(&mut buf) {
        Ok(0) => "closed",
        Ok(_) => "answered",
        Err(_) => "still open",
    }
}

/// Says `bye` and hangs up as soon as a connection is made.
struct SaysByeAndHangsUp;

impl Protocol for SaysByeAndHangsUp {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        transport.write(b"bye");
        transport.lose_connection();
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
}

/// Reads everything up to the server's FIN (or a reset).
fn everything_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

/// Issue 12, finding 10: a connection the server closed with
/// `lose_connection` lingers (its descriptor stays open until the peer's
/// FIN, so unread input cannot reset the tail of the reply), and it counts
/// against `max_connections` until its descriptor is closed.
#[test]
fn lingering_connections_count_against_the_listener_limit_until_their_descriptors_close() {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let options = ListenOptions {
            max_connections: Some(2),
            ..ListenOptions::default()
        };
        let listener = r.listen_tcp_with(localhost(), || SaysByeAndHangsUp, options)?;
        tx.send(listener).unwrap();
        Ok(listener.local_addr())
    });
    let listener = rx.recv().unwrap();
    let stats = || server.call(move |r| r.listener_stats(&listener)).unwrap();
    // Two peers get their answer and the server's FIN, but keep their
    // sockets open without a FIN of their own: the server's two lingering
    // descriptors stay open (for up to the linger timeout, 2 s).
    let mut lingering: Vec<TcpStream> = (0..2).map(|_| client(server.addr)).collect();
    for s in &mut lingering {
        assert_eq!(everything_until_closed(s), b"bye");
    }
    assert_eq!(
        stats().open,
        2,
        "lingering descriptors are open connections"
    );
    // A third is over the limit: closed at once, unanswered.
    let mut third = client(server.addr);
    assert_eq!(
        everything_until_closed(&mut third),
        b"",
        "a third connection was served while two descriptors lingered"
    );
    assert_eq!(
        stats(),
        ListenerStats {
            open: 2,
            refused: 1,
            ..ListenerStats::default()
        }
    );
    // One lingering peer closes: the server reads its FIN, closes that
    // descriptor, and has room again.
    drop(lingering.remove(0));
    wait_until("the server has closed the lingering descriptor", || {
        stats().open < 2
    });
    // Closed at the peer's FIN, not by the linger timeout: the other one
    // still lingers.
    assert_eq!(stats().open, 1);
    let mut fourth = client(server.addr);
    assert_eq!(everything_until_closed(&mut fourth), b"bye");
    assert_eq!(stats().refused, 1);
}
