//! Connecting by host name and to several addresses: lookups off the loop,
//! Happy Eyeballs (RFC 8305) over loopback. An address that "never
//! answers" is a listener whose accept queue is full: the kernel drops
//! further SYNs, so a connect to it hangs until its SYN is sent again.

mod common;
#[path = "common/tls.rs"]
mod tls_common;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ReactorThread, WAIT};
use reactor::{
    ClientFactory, Destination, Factory, Protocol, Reactor, Reason, Transport,
    CONNECTION_ATTEMPT_DELAY,
};

/// What a dialing client saw, and when (since the connect started).
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Made(SocketAddr),
    Data(Vec<u8>),
    Failed(Reason),
    Lost(Reason),
}

type Events = Sender<(Seen, Duration)>;

/// A client that reports its callbacks, and writes `greeting` once made.
struct Client {
    tx: Events,
    start: Instant,
    greeting: &'static [u8],
}

impl Protocol for Client {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let _ = self.tx.send((Seen::Made(peer_ip(t)), self.start.elapsed()));
        if !self.greeting.is_empty() {
            t.write(self.greeting);
        }
    }
    fn data_received(&mut self, _t: &mut dyn Transport, data: &[u8]) {
        let _ = self
            .tx
            .send((Seen::Data(data.to_vec()), self.start.elapsed()));
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self
            .tx
            .send((Seen::Lost(reason.clone()), self.start.elapsed()));
    }
}

/// The peer's IP address and port (every peer here is one).
fn peer_ip(t: &dyn Transport) -> SocketAddr {
    t.peer_addr().socket_addr().expect("an IP peer")
}

struct Dialer {
    tx: Events,
    start: Instant,
    greeting: &'static [u8],
}

impl Dialer {
    fn new(tx: Events) -> Dialer {
        Dialer {
            tx,
            start: Instant::now(),
            greeting: b"",
        }
    }
}

impl Factory for Dialer {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Box<dyn Protocol> {
        Box::new(Client {
            tx: self.tx.clone(),
            start: self.start,
            greeting: self.greeting,
        })
    }
}

impl ClientFactory for Dialer {
    fn client_connection_failed(&mut self, _r: &mut Reactor, reason: &Reason) {
        let _ = self
            .tx
            .send((Seen::Failed(reason.clone()), self.start.elapsed()));
    }
}

fn next(rx: &Receiver<(Seen, Duration)>) -> (Seen, Duration) {
    rx.recv_timeout(WAIT)
        .expect("expected event did not arrive")
}

fn assert_quiet(rx: &Receiver<(Seen, Duration)>) {
    if let Ok(extra) = rx.recv_timeout(Duration::from_millis(200)) {
        panic!("unexpected extra event: {extra:?}");
    }
}

/// A loopback listener that takes no more connections: its queue (room for
/// one with backlog 0) holds a filler nobody accepts, so the kernel drops
/// the next SYN and a connect to it hangs. Keep both alive.
fn blackhole() -> (TcpListener, TcpStream) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&common::localhost().into()).unwrap();
    socket.listen(0).unwrap();
    let listener = TcpListener::from(socket);
    let filler = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    (listener, filler)
}

/// An address on `ip` where nothing listens: bound, then closed again.
fn refusing(ip: &str) -> SocketAddr {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap()
}

/// Sockets of this network namespace in SYN_SENT towards `to` (an IPv4
/// address): a connect attempt still under way there.
fn syn_sent_to(to: SocketAddr) -> usize {
    let SocketAddr::V4(to) = to else {
        panic!("IPv4 only");
    };
    let remote = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(to.ip().octets()),
        to.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(2) == Some(&remote.as_str()) && fields.get(3) == Some(&"02")
        })
        .count()
}

/// A reactor thread that dials `to` with `dialer` as its first act.
fn dialing(
    to: impl Into<Destination> + Send + 'static,
    timeout: Duration,
    configure: impl FnOnce(&mut Reactor) + Send + 'static,
) -> (ReactorThread, Receiver<(Seen, Duration)>) {
    let (tx, rx) = channel();
    let reactor = ReactorThread::start(move |r| {
        configure(r);
        r.connect_tcp(to, Dialer::new(tx), timeout);
        Ok(common::localhost())
    });
    (reactor, rx)
}

#[test]
fn localhost_resolves_and_connects_and_what_was_written_meanwhile_goes_first() {
    // IPv4 only: where localhost is also ::1, that attempt is refused and
    // the next one wins.
    let server = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = server.local_addr().unwrap().port();
    let (tx, rx) = channel();
    let reactor = ReactorThread::start(move |r| {
        let dialer = Dialer {
            greeting: b" world",
            ..Dialer::new(tx)
        };
        let id = r.connect_tcp(format!("localhost:{port}"), dialer, WAIT);
        // Written while the name is still being looked up.
        r.write_to(id, b"hello");
        Ok(common::localhost())
    });
    let (mut peer, _) = server.accept().unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(
        next(&rx).0,
        Seen::Made(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    );
    let mut got = [0; 11];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello world");
    assert_eq!(reactor.call(|r| r.connection_count()), 1);
    drop(peer);
    assert_eq!(next(&rx).0, Seen::Lost(Reason::PeerClosed));
    assert_quiet(&rx);
}

#[test]
fn a_name_that_does_not_resolve_fails_saying_so_and_the_loop_runs_meanwhile() {
    // The system's resolver, held until the test has seen the loop keep
    // time while the lookup is under way.
    let (entered_tx, entered) = channel();
    let (release, gate) = channel::<()>();
    let gate = Mutex::new(gate);
    let (tick_tx, ticks) = channel();
    let (reactor, rx) = dialing(("no-such-host.invalid", 80), WAIT, move |r| {
        r.set_resolver(move |host, port| {
            let _ = entered_tx.send(std::thread::current().name().map(str::to_owned));
            // Bounded: a loop blocked by the lookup gets going again.
            let _ = gate.lock().unwrap().recv_timeout(2 * WAIT);
            reactor::resolve_blocking(host, port)
        });
        r.call_every(Duration::from_millis(20), move |_, _| {
            let _ = tick_tx.send(Instant::now());
        });
    });
    let thread = entered
        .recv_timeout(WAIT)
        .expect("the lookup did not start");
    assert_eq!(
        thread
            .as_deref()
            .map(|n| n.starts_with("reactor-resolver-")),
        Some(true),
        "looked up on {thread:?}"
    );
    // Ten ticks on time while the lookup blocks its thread.
    let mut last = ticks.recv_timeout(WAIT).expect("the loop is blocked");
    for _ in 0..10 {
        let tick = ticks.recv_timeout(WAIT).expect("the loop is blocked");
        assert!(
            tick - last < Duration::from_secs(1),
            "a 20 ms tick came {:?} late",
            tick - last
        );
        last = tick;
    }
    assert_eq!(reactor.call(|r| r.connection_count()), 1, "only the dial");
    release.send(()).unwrap();
    let (seen, _) = next(&rx);
    let Seen::Failed(reason) = seen else {
        panic!("{seen:?}");
    };
    let Reason::Unresolved { host, .. } = &reason else {
        panic!("{reason:?}");
    };
    assert_eq!(host, "no-such-host.invalid");
    let text = reason.to_string();
    assert!(
        text.starts_with(r#"could not resolve "no-such-host.invalid": "#),
        "{text}"
    );
    assert_quiet(&rx);
    assert_eq!(reactor.call(|r| r.connection_count()), 0);
}

#[test]
fn a_name_with_no_address_and_a_malformed_destination_fail_saying_so() {
    let (reactor, rx) = dialing(("nowhere.test", 80), WAIT, |r| {
        r.set_resolver(|_, _| Ok(Vec::new()));
    });
    assert_eq!(
        next(&rx).0,
        Seen::Failed(Reason::Unresolved {
            host: "nowhere.test".into(),
            why: "the name has no address".into()
        })
    );
    assert_quiet(&rx);
    drop(reactor);
    let (_reactor, rx) = dialing("localhost", WAIT, |_| {});
    assert_eq!(
        next(&rx).0,
        Seen::Failed(Reason::Unresolved {
            host: "localhost".into(),
            why: "not HOST:PORT (no port)".into()
        })
    );
    assert_quiet(&rx);
}

#[test]
fn an_address_that_never_answers_is_overtaken_after_the_attempt_delay_and_cancelled() {
    let (hole, _filler) = blackhole();
    let hole_addr = hole.local_addr().unwrap();
    let server = TcpListener::bind(common::localhost()).unwrap();
    let good = server.local_addr().unwrap();
    let timeout = Duration::from_secs(20);
    let (reactor, rx) = dialing(vec![hole_addr, good], timeout, |_| {});
    let (seen, after) = next(&rx);
    assert_eq!(seen, Seen::Made(good));
    assert!(
        after >= CONNECTION_ATTEMPT_DELAY - Duration::from_millis(5),
        "made after {after:?}: the second attempt did not wait for the delay"
    );
    assert!(
        after < timeout / 4,
        "made after {after:?}: the second attempt waited for the timeout"
    );
    let (_accepted, _) = server.accept().unwrap();
    // The hanging attempt is gone: its slot, and its socket in the kernel.
    assert_eq!(reactor.call(|r| r.connection_count()), 1);
    assert_eq!(syn_sent_to(hole_addr), 0, "the first attempt still runs");
    assert_quiet(&rx);
}

#[test]
fn the_timeout_covers_every_attempt_and_fails_once() {
    let (hole_a, _filler_a) = blackhole();
    let (hole_b, _filler_b) = blackhole();
    let holes = [hole_a.local_addr().unwrap(), hole_b.local_addr().unwrap()];
    let timeout = Duration::from_secs(3);
    let (reactor, rx) = dialing(holes.to_vec(), timeout, |_| {});
    // The second attempt starts while the first still hangs.
    common::wait_until("both attempts run", || {
        reactor.call(|r| r.connection_count()) == 3
    });
    let (seen, after) = next(&rx);
    assert_eq!(seen, Seen::Failed(Reason::TimedOut));
    assert!(after >= timeout, "failed after {after:?}");
    assert_quiet(&rx);
    assert_eq!(reactor.call(|r| r.connection_count()), 0);
    assert_eq!(syn_sent_to(holes[0]) + syn_sent_to(holes[1]), 0);
}

#[test]
fn a_refused_attempt_starts_the_next_at_once_and_all_refused_fail_once() {
    // A delay no test waits for: only a failure can start the next attempt.
    let slow = |r: &mut Reactor| r.set_connection_attempt_delay(Duration::from_secs(60));
    let server = TcpListener::bind(common::localhost()).unwrap();
    let good = server.local_addr().unwrap();
    let to = vec![refusing("::1"), refusing("127.0.0.1"), good];
    let (_reactor, rx) = dialing(to, WAIT, slow);
    assert_eq!(next(&rx).0, Seen::Made(good));
    assert_quiet(&rx);

    let to = vec![
        refusing("::1"),
        refusing("127.0.0.1"),
        refusing("127.0.0.1"),
    ];
    let (reactor, rx) = dialing(to, WAIT, slow);
    let (seen, _) = next(&rx);
    let Seen::Failed(reason) = seen else {
        panic!("{seen:?}");
    };
    assert_eq!(
        reason.error_kind(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    assert_quiet(&rx);
    assert_eq!(reactor.call(|r| r.connection_count()), 0);
}

#[test]
fn cancelling_a_dial_aborts_its_attempts() {
    let (hole_a, _filler_a) = blackhole();
    let (hole_b, _filler_b) = blackhole();
    let holes = vec![hole_a.local_addr().unwrap(), hole_b.local_addr().unwrap()];
    let (tx, rx) = channel();
    let reactor = ReactorThread::start(move |r| {
        let id = r.connect_tcp(holes, Dialer::new(tx), WAIT);
        r.call_later(CONNECTION_ATTEMPT_DELAY * 2, move |r| r.lose_connection(id));
        Ok(common::localhost())
    });
    assert_eq!(next(&rx).0, Seen::Failed(Reason::Aborted));
    assert_quiet(&rx);
    assert_eq!(reactor.call(|r| r.connection_count()), 0);
}

#[test]
fn a_stop_during_a_lookup_fails_the_connect_once_and_does_not_wait_for_it() {
    let (release, gate) = channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let (entered_tx, entered) = channel();
    let held = Arc::clone(&gate);
    let (reactor, rx) = dialing(("slow.test", 80), WAIT, move |r| {
        // A lookup that could hold the stop for its whole grace.
        r.set_shutdown_grace(Duration::from_secs(60));
        r.set_resolver(move |_, _| {
            let _ = entered_tx.send(());
            // Bounded: a loop blocked by the lookup gets going again.
            let _ = held.lock().unwrap().recv_timeout(WAIT);
            Ok(Vec::new())
        });
    });
    entered
        .recv_timeout(WAIT)
        .expect("the lookup did not start");
    let started = Instant::now();
    reactor.stop();
    assert!(
        started.elapsed() < WAIT,
        "the stop waited {:?} for the lookup",
        started.elapsed()
    );
    assert_eq!(next(&rx).0, Seen::Failed(Reason::ReactorStopped));
    assert_quiet(&rx);
    release.send(()).unwrap();
}

#[test]
fn tls_connects_through_the_attempt_that_wins() {
    let certs = tls_common::Certs::new("happy");
    let (server, server_rx) =
        tls_common::recording_tls_server(&certs, reactor::ListenOptions::default());
    let to = vec![refusing("::1"), server.addr];
    let config = certs.client_config();
    let (tx, rx) = channel();
    let _client = ReactorThread::start(move |r| {
        let dialer = Dialer {
            greeting: b"over tls",
            ..Dialer::new(tx)
        };
        r.connect_tls(to, "localhost", config, dialer, WAIT);
        Ok(common::localhost())
    });
    assert_eq!(common::next(&server_rx), "made");
    assert_eq!(common::next(&server_rx), "data:over tls");
    let Seen::Made(peer) = next(&rx).0 else {
        panic!("not made");
    };
    assert_eq!(peer, server.addr);
    assert_eq!(next(&rx).0, Seen::Data(b"over tls".to_vec()));
}
