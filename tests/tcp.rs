//! The reactor's TCP behaviour over real loopback sockets: callback order,
//! close reasons, buffering, connects, scale and faults.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use common::*;
use reactor::{ClientFactory, Factory, Protocol, Reactor, Reason, Transport};

#[test]
fn server_callbacks_run_in_order_and_connection_lost_once() {
    let (server, rx) = recording_server(true);
    let mut c = client(server.addr);
    assert_eq!(next(&rx), "made");
    assert_eq!(roundtrip(&mut c, b"abc"), b"abc");
    assert_eq!(next(&rx), "data:abc");
    drop(c);
    assert_eq!(next(&rx), "lost:PeerClosed");
    assert_quiet(&rx);
}

/// Records a client connection's whole life, factory hooks included.
struct ClientRecorder {
    tx: Sender<String>,
    send: &'static [u8],
}

impl Factory for ClientRecorder {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Box<dyn Protocol> {
        let _ = self.tx.send("build".into());
        Box::new(SendThenClose {
            tx: self.tx.clone(),
            send: self.send,
        })
    }
    fn start_factory(&mut self) {
        let _ = self.tx.send("start_factory".into());
    }
    fn stop_factory(&mut self) {
        let _ = self.tx.send("stop_factory".into());
    }
}

impl ClientFactory for ClientRecorder {
    fn started_connecting(&mut self, _r: &mut Reactor) {
        let _ = self.tx.send("started_connecting".into());
    }
    fn client_connection_failed(&mut self, _r: &mut Reactor, reason: &Reason) {
        let _ = self.tx.send(format!("failed:{reason:?}"));
    }
    fn client_connection_lost(&mut self, _r: &mut Reactor, reason: &Reason) {
        let _ = self.tx.send(format!("client_lost:{reason:?}"));
    }
}

/// Sends its message on connect, closes once it is echoed back.
struct SendThenClose {
    tx: Sender<String>,
    send: &'static [u8],
}

impl Protocol for SendThenClose {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let _ = self.tx.send("made".into());
        t.write(self.send);
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        let _ = self
            .tx
            .send(format!("data:{}", String::from_utf8_lossy(data)));
        t.lose_connection();
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(format!("lost:{reason:?}"));
    }
}

#[test]
fn client_callbacks_run_in_order_and_factory_hooks_pair_up() {
    let listener = StdListener::bind(localhost()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = channel();
    let reactor = ReactorThread::start(move |r| {
        r.connect_tcp(addr, ClientRecorder { tx, send: b"ping" }, WAIT);
        Ok(addr)
    });
    let (mut peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(read_n(&mut peer, 4), b"ping");
    peer.write_all(b"pong").unwrap();
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "client closed cleanly after the reply");
    for expected in [
        "start_factory",
        "started_connecting",
        "build",
        "made",
        "data:pong",
        "lost:LocalClosed",
        "client_lost:LocalClosed",
        "stop_factory",
    ] {
        assert_eq!(next(&rx), expected);
    }
    assert_quiet(&rx);
    drop(reactor);
}

#[test]
fn reasons_tell_clean_closes_from_resets() {
    let (server, rx) = recording_server(true);

    let mut c = client(server.addr);
    assert_eq!(next(&rx), "made");
    assert_eq!(roundtrip(&mut c, b"x"), b"x");
    assert_eq!(next(&rx), "data:x");
    reset(c);
    let lost = next(&rx);
    assert_eq!(
        lost,
        "lost:Error { kind: ConnectionReset, os_code: Some(104) }"
    );

    let c = client(server.addr);
    assert_eq!(next(&rx), "made");
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(next(&rx), "lost:PeerClosed");
    assert!(Reason::PeerClosed.is_clean() && Reason::LocalClosed.is_clean());
    assert!(!Reason::Aborted.is_clean());
    let reset_reason = Reason::Error {
        kind: ErrorKind::ConnectionReset,
        os_code: Some(104),
    };
    assert!(!reset_reason.is_clean());
    assert_eq!(reset_reason.to_string(), "connection reset (os error 104)");
}

/// On connect: writes `len` bytes, reports how many were left buffered, then
/// closes the way `abort` says.
struct Blast {
    len: usize,
    abort: bool,
    tx: Sender<String>,
}

impl Protocol for Blast {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.write(&pattern(self.len, 7));
        let _ = self.tx.send(format!("buffered>0:{}", t.buffered() > 0));
        if self.abort {
            t.abort_connection();
        } else {
            t.lose_connection();
        }
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(format!("lost:{reason:?}"));
    }
}

const SIXTEEN_MIB: usize = 16 << 20;

#[test]
fn lose_connection_flushes_every_buffered_byte_before_the_fin() {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let tx = tx.clone();
        let f = move || Blast {
            len: SIXTEEN_MIB,
            abort: false,
            tx: tx.clone(),
        };
        Ok(r.listen_tcp(localhost(), f)?.local_addr())
    });
    let mut c = client(server.addr);
    assert_eq!(
        next(&rx),
        "buffered>0:true",
        "the test must exercise the buffer"
    );
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), SIXTEEN_MIB);
    assert!(got == pattern(SIXTEEN_MIB, 7), "bytes differ");
    assert_eq!(next(&rx), "lost:LocalClosed");
}

#[test]
fn abort_connection_discards_the_buffer_and_resets() {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let tx = tx.clone();
        let f = move || Blast {
            len: SIXTEEN_MIB,
            abort: true,
            tx: tx.clone(),
        };
        Ok(r.listen_tcp(localhost(), f)?.local_addr())
    });
    let mut c = client(server.addr);
    assert_eq!(next(&rx), "buffered>0:true");
    assert_eq!(next(&rx), "lost:Aborted");
    let mut got = Vec::new();
    let err = c
        .read_to_end(&mut got)
        .expect_err("an aborted connection ends in a reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    assert!(
        got.len() < SIXTEEN_MIB,
        "abort must not deliver the buffered bytes"
    );
}

#[test]
fn refused_connect_reaches_client_connection_failed() {
    let addr = StdListener::bind(localhost())
        .unwrap()
        .local_addr()
        .unwrap();
    // The listener is dropped: nothing listens on `addr` now.
    let (tx, rx) = channel();
    let _r = ReactorThread::start(move |r| {
        r.connect_tcp(addr, ClientRecorder { tx, send: b"" }, WAIT);
        Ok(addr)
    });
    assert_eq!(next(&rx), "start_factory");
    assert_eq!(next(&rx), "started_connecting");
    assert_eq!(
        next(&rx),
        "failed:Error { kind: ConnectionRefused, os_code: Some(111) }"
    );
    assert_eq!(next(&rx), "stop_factory");
    assert_quiet(&rx);
}

#[test]
fn connect_to_a_full_backlog_times_out() {
    // A listener with backlog 0 that never accepts: once its queue holds one
    // connection the kernel drops further SYNs, so a connect hangs.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&localhost().into()).unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    let mut saw_timeout = false;
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fillers.push(s),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::TimedOut, "unexpected filler error {e}");
                saw_timeout = true;
                break;
            }
        }
    }
    assert!(saw_timeout, "could not fill the backlog");
    let (tx, rx) = channel();
    let _r = ReactorThread::start(move |r| {
        r.connect_tcp(
            addr,
            ClientRecorder { tx, send: b"" },
            Duration::from_millis(300),
        );
        Ok(addr)
    });
    assert_eq!(next(&rx), "start_factory");
    assert_eq!(next(&rx), "started_connecting");
    assert_eq!(next(&rx), "failed:TimedOut");
    assert_eq!(next(&rx), "stop_factory");
    drop(socket);
}

#[test]
fn stop_from_a_callback_ends_run_and_loses_every_connection() {
    struct StopOnData {
        tx: Sender<String>,
    }
    impl Protocol for StopOnData {
        fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
            if data == b"stop" {
                t.reactor().expect("on the reactor").stop();
            }
        }
        fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
            let _ = self.tx.send(format!("lost:{reason:?}"));
        }
    }
    let (tx, rx) = channel();
    let (addr_tx, addr_rx) = channel();
    let thread = std::thread::spawn(move || {
        let mut r = Reactor::new().unwrap();
        let l = r
            .listen_tcp(localhost(), move || StopOnData { tx: tx.clone() })
            .unwrap();
        addr_tx.send(l.local_addr()).unwrap();
        r.run().unwrap();
        (r.connection_count(), r.pending_timers())
    });
    let addr = addr_rx.recv_timeout(WAIT).unwrap();
    let _idle = client(addr);
    let mut stopper = client(addr);
    stopper.write_all(b"stop").unwrap();
    assert_eq!(
        thread.join().unwrap(),
        (0, 0),
        "run() returned with everything closed"
    );
    assert_eq!(next(&rx), "lost:ReactorStopped");
    assert_eq!(next(&rx), "lost:ReactorStopped");
    assert_quiet(&rx);
    let mut rest = Vec::new();
    assert_eq!(
        stopper.read_to_end(&mut rest).unwrap(),
        0,
        "a clean close after the stop"
    );
}

#[test]
fn a_thousand_concurrent_connections_are_served_at_once() {
    let server = listening(|| Echo);
    let mut clients: Vec<TcpStream> = (0..1000).map(|_| client(server.addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("message {i:04}").as_bytes()).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(read_n(c, 12), format!("message {i:04}").as_bytes());
    }
    assert_eq!(server.call(|r| r.connection_count()), 1000);
    drop(clients);
}

#[test]
fn sixty_four_mib_in_random_chunks_echo_back_identical() {
    const LEN: usize = 64 << 20;
    let server = listening(|| Echo);
    let data = pattern(LEN, 42);
    let mut c = client(server.addr);
    let mut writer = c.try_clone().unwrap();
    let to_send = data.clone();
    let sender = std::thread::spawn(move || {
        let sizes = pattern(LEN / 1000, 3);
        let (mut at, mut i) = (0, 0);
        while at < LEN {
            // Chunks of 1 byte to ~128 KiB.
            let n = ((sizes[i % sizes.len()] as usize) << (sizes[(i + 1) % sizes.len()] % 10)) + 1;
            let end = (at + n).min(LEN);
            writer.write_all(&to_send[at..end]).unwrap();
            at = end;
            i += 2;
        }
    });
    let mut got = vec![0; LEN];
    c.read_exact(&mut got).unwrap();
    sender.join().unwrap();
    assert!(got == data, "echoed bytes differ");
}

#[test]
fn a_peer_reset_mid_write_closes_only_that_connection() {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let tx = tx.clone();
        let f = move || Blaster { tx: tx.clone() };
        Ok(r.listen_tcp(localhost(), f)?.local_addr())
    });
    /// Writes 8 MiB on `blast`, echoes anything else.
    struct Blaster {
        tx: Sender<String>,
    }
    impl Protocol for Blaster {
        fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
            if data == b"blast" {
                t.write(&pattern(8 << 20, 1));
                let _ = self
                    .tx
                    .send(format!("blasting, buffered>0:{}", t.buffered() > 0));
            } else {
                t.write(data);
            }
        }
        fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
            let _ = self.tx.send(format!(
                "lost:{}",
                reason
                    .error_kind()
                    .map_or("clean".into(), |k| format!("{k:?}"))
            ));
        }
    }
    let mut bystander = client(server.addr);
    let mut victim = client(server.addr);
    assert_eq!(roundtrip(&mut bystander, b"before"), b"before");
    victim.write_all(b"blast").unwrap();
    assert_eq!(next(&rx), "blasting, buffered>0:true");
    read_n(&mut victim, 1000);
    reset(victim);
    assert_eq!(next(&rx), "lost:ConnectionReset");
    assert_eq!(roundtrip(&mut bystander, b"after"), b"after");
    let fresh = roundtrip(&mut client(server.addr), b"fresh");
    assert_eq!(fresh, b"fresh");
}

#[test]
fn writes_from_one_connection_reach_another_by_id() {
    // The first connection registers its id; each later one forwards what
    // it receives to the first, through the reactor.
    use std::cell::RefCell;
    use std::rc::Rc;
    struct Relay {
        first: Rc<RefCell<Option<reactor::ConnectionId>>>,
    }
    impl Protocol for Relay {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            self.first.borrow_mut().get_or_insert(t.id());
        }
        fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
            let first = self.first.borrow().expect("set on the first connection");
            if first != t.id() {
                let r = t.reactor().expect("on the reactor");
                r.write_vectored_to(first, &[b"<", data, b">"]);
                if data == b"bye" {
                    r.lose_connection(first);
                }
            }
        }
    }
    let server = ReactorThread::start(|r| {
        let first = Rc::new(RefCell::new(None));
        Ok(r.listen_tcp(localhost(), move || Relay {
            first: first.clone(),
        })?
        .local_addr())
    });
    let mut sink = client(server.addr);
    // Make sure the sink is accepted (and so registered) first.
    assert_eq!(server.call(|r| r.connection_count()), 1);
    let mut source = client(server.addr);
    source.write_all(b"hi").unwrap();
    assert_eq!(read_n(&mut sink, 4), b"<hi>");
    source.write_all(b"bye").unwrap();
    let mut rest = Vec::new();
    sink.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"<bye>");
}

#[test]
fn writes_to_a_closed_connection_are_ignored() {
    /// Reports its id when made and `lost` when gone.
    struct IdReporter {
        tx: Sender<Result<reactor::ConnectionId, String>>,
    }
    impl Protocol for IdReporter {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            let _ = self.tx.send(Ok(t.id()));
        }
        fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
            t.write(data);
        }
        fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
            let _ = self.tx.send(Err(format!("{reason:?}")));
        }
    }
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        Ok(
            r.listen_tcp(localhost(), move || IdReporter { tx: tx.clone() })?
                .local_addr(),
        )
    });
    let c = client(server.addr);
    let id = rx.recv_timeout(WAIT).unwrap().expect("made first");
    drop(c);
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), Err("PeerClosed".into()));
    let after = server.call(move |r| {
        r.write_to(id, b"nobody");
        r.lose_connection(id);
        r.abort_connection(id);
        (r.is_connected(id), r.buffered(id), r.peer_addr(id))
    });
    assert_eq!(after, (false, 0, None));
    let mut c = client(server.addr);
    let new_id = rx.recv_timeout(WAIT).unwrap().expect("made");
    assert_ne!(new_id, id, "a reused slot gets a new generation");
    assert_eq!(roundtrip(&mut c, b"still fine"), b"still fine");
}

#[test]
fn listens_on_ipv6_loopback_when_the_host_has_it() {
    let addr: SocketAddr = "[::1]:0".parse().unwrap();
    if StdListener::bind(addr).is_err() {
        eprintln!("skipped: this host has no IPv6 loopback");
        return;
    }
    let server = ReactorThread::start(move |r| Ok(r.listen_tcp(addr, || Echo)?.local_addr()));
    assert!(server.addr.is_ipv6() && server.addr.port() != 0);
    assert_eq!(roundtrip(&mut client(server.addr), b"v6"), b"v6");
}

#[test]
fn stop_listening_refuses_new_connections_and_keeps_old_ones() {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let handle = r.listen_tcp(localhost(), || Echo)?;
        let addr = handle.local_addr();
        tx.send(handle).unwrap();
        Ok(addr)
    });
    let handle = rx.recv().unwrap();
    let mut old = client(server.addr);
    assert_eq!(roundtrip(&mut old, b"a"), b"a");
    assert!(server.call(move |r| handle.stop(r)));
    assert!(
        !server.call(move |r| handle.stop(r)),
        "second stop is a no-op"
    );
    let err = TcpStream::connect(server.addr).expect_err("nobody listens now");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    assert_eq!(roundtrip(&mut old, b"b"), b"b");
}

/// From inside `data_received`: open a listener, dial it as a client and
/// relay the answer back, stop the listener. Every power a callback has,
/// over real sockets.
#[test]
fn a_callback_can_listen_connect_and_stop_listening() {
    use reactor::{ConnectionId, ListenerHandle};
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Client side of the dial: sends a greeting, relays the echo to `back`.
    struct Dialer {
        back: ConnectionId,
    }
    impl Protocol for Dialer {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            t.write(b"via the reactor");
        }
        fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
            let back = self.back;
            t.reactor()
                .unwrap()
                .write_vectored_to(back, &[b"relayed:", data, b"\n"]);
            t.lose_connection();
        }
    }

    struct Control {
        opened: Rc<RefCell<Option<ListenerHandle>>>,
    }
    impl Protocol for Control {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            let local = t.local_addr().unwrap();
            assert_eq!(local.ip(), Some(std::net::Ipv4Addr::LOCALHOST.into()));
            t.set_nodelay(true).unwrap();
        }
        fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
            let me = t.id();
            let r = t.reactor().unwrap();
            match data {
                b"open" => {
                    let l = r
                        .listen_tcp(localhost(), || reactor::protocols::Echo)
                        .unwrap();
                    *self.opened.borrow_mut() = Some(l);
                    r.write_to(me, format!("port {}\n", l.local_addr().port()).as_bytes());
                }
                b"dial" => {
                    let addr = self.opened.borrow().unwrap().local_addr();
                    r.connect_tcp(addr, move || Dialer { back: me }, WAIT);
                }
                b"close" => {
                    let stopped = self.opened.borrow().unwrap().stop(r);
                    r.write_to(me, format!("stopped {stopped}\n").as_bytes());
                }
                _ => r.write_to(me, b"?\n"),
            }
        }
    }
    let server = ReactorThread::start(|r| {
        let opened = Rc::new(RefCell::new(None));
        Ok(r.listen_tcp(localhost(), move || Control {
            opened: opened.clone(),
        })?
        .local_addr())
    });
    let mut c = client(server.addr);
    let mut lines = std::io::BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    let mut ask = |c: &mut TcpStream, what: &[u8]| {
        c.write_all(what).unwrap();
        line.clear();
        std::io::BufRead::read_line(&mut lines, &mut line).unwrap();
        line.trim_end().to_string()
    };
    let port: u16 = ask(&mut c, b"open")
        .strip_prefix("port ")
        .unwrap()
        .parse()
        .unwrap();
    let opened: SocketAddr = ([127, 0, 0, 1], port).into();
    assert_eq!(roundtrip(&mut client(opened), b"direct"), b"direct");
    assert_eq!(ask(&mut c, b"dial"), "relayed:via the reactor");
    assert_eq!(ask(&mut c, b"close"), "stopped true");
    let err = TcpStream::connect(opened).expect_err("the new listener is closed");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn a_shared_factory_starts_with_its_first_listener_and_stops_with_its_last() {
    use reactor::SharedFactory;
    struct Counted {
        tx: Sender<String>,
    }
    impl Factory for Counted {
        fn build_protocol(&mut self, peer: SocketAddr) -> Box<dyn Protocol> {
            let _ = self
                .tx
                .send(format!("build from loopback:{}", peer.ip().is_loopback()));
            Box::new(Echo)
        }
        fn start_factory(&mut self) {
            let _ = self.tx.send("start".into());
        }
        fn stop_factory(&mut self) {
            let _ = self.tx.send("stop".into());
        }
    }
    let (tx, rx) = channel();
    let mut r = Reactor::new().unwrap();
    let shared = SharedFactory::new(Counted { tx });
    let a = r.listen_tcp(localhost(), shared.clone()).unwrap();
    let b = r.listen_tcp(localhost(), shared.clone()).unwrap();
    assert_eq!(rx.try_recv().unwrap(), "start");
    assert!(rx.try_recv().is_err(), "started once for two listeners");
    let _c = TcpStream::connect(b.local_addr()).unwrap();
    r.call_later(Duration::from_millis(50), |r: &mut Reactor| r.stop());
    r.run().unwrap(); // accepts the connection, then stop() stops both listeners
    assert_eq!(rx.try_recv().unwrap(), "build from loopback:true");
    assert_eq!(rx.try_recv().unwrap(), "stop");
    assert!(rx.try_recv().is_err(), "stopped once");
    assert!(!a.stop(&mut r), "already stopped by the reactor's stop");
}

#[test]
fn replies_buffered_when_the_peer_half_closes_are_still_delivered() {
    // More than loopback's socket buffers hold, so most of the answer waits
    // in the reactor's own buffer when the FIN right behind the request arrives.
    const LEN: usize = 32 << 20;
    /// Answers any request with LEN bytes.
    struct Answer {
        tx: Sender<String>,
    }
    impl Protocol for Answer {
        fn data_received(&mut self, t: &mut dyn Transport, _data: &[u8]) {
            // One write over the default cap on buffered output.
            t.set_write_buffer_limit(LEN);
            t.write(&pattern(LEN, 9));
            let _ = self.tx.send(format!("buffered>0:{}", t.buffered() > 0));
        }
        fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
            let _ = self.tx.send(format!("lost:{reason:?}"));
        }
    }
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let tx = tx.clone();
        Ok(
            r.listen_tcp(localhost(), move || Answer { tx: tx.clone() })?
                .local_addr(),
        )
    });
    let mut c = client(server.addr);
    c.write_all(b"go").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(next(&rx), "buffered>0:true");
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), LEN);
    assert!(got == pattern(LEN, 9), "bytes differ");
    assert_eq!(next(&rx), "lost:PeerClosed");
}

#[test]
fn a_fin_behind_more_than_one_turns_worth_of_data_is_still_seen() {
    // The reactor is held still while a burst and the FIN arrive, so one
    // readiness edge carries both. The fairness cap splits reading the
    // burst over turns, and the later turns must read on to end-of-file:
    // the FIN raises no new edge.
    /// Counts bytes; reports the total with the reason when lost.
    struct Count {
        total: usize,
        tx: Sender<String>,
    }
    impl Protocol for Count {
        fn data_received(&mut self, _t: &mut dyn Transport, data: &[u8]) {
            self.total += data.len();
        }
        fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
            let _ = self.tx.send(format!("{reason:?} after {}", self.total));
        }
    }
    const WARM_UP: usize = 8 << 20;
    // More than one turn's reads (4 x 64 KiB), less than the receive
    // window, so burst and FIN sit in the socket together; not a multiple of
    // the 64 KiB read size, so the last read is short.
    const BURST: usize = (300 << 10) + 100;
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let tx = tx.clone();
        Ok(r.listen_tcp(localhost(), move || Count {
            total: 0,
            tx: tx.clone(),
        })?
        .local_addr())
    });
    let mut c = client(server.addr);
    // A large transfer first lets the kernel grow the receive window.
    c.write_all(&pattern(WARM_UP, 3)).unwrap();
    assert_eq!(server.call(|r| r.connection_count()), 1);
    let (hold_tx, hold_rx) = channel::<()>();
    let (held_tx, held_rx) = channel::<()>();
    server.handle.call_from_thread(move |_| {
        held_tx.send(()).unwrap();
        let _ = hold_rx.recv_timeout(WAIT);
    });
    held_rx.recv_timeout(WAIT).unwrap();
    c.write_all(&pattern(BURST, 4)).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    hold_tx.send(()).unwrap();
    let lost = rx.recv_timeout(WAIT).expect("the FIN was seen");
    assert_eq!(lost, format!("PeerClosed after {}", WARM_UP + BURST));
}

/// Answers the first bytes with `bye` and closes, whatever else is coming.
struct SayByeAndClose;

impl Protocol for SayByeAndClose {
    fn data_received(&mut self, transport: &mut dyn Transport, _data: &[u8]) {
        transport.write(b"bye");
        transport.lose_connection();
    }
}

#[test]
fn closing_with_unread_input_delivers_the_reply_and_a_clean_eof_not_a_reset() {
    let server = listening(|| SayByeAndClose);
    for round in 0..20 {
        let mut s = client(server.addr);
        // More than one read's worth: the server closes with input unread.
        s.write_all(&pattern(300_000, round)).unwrap();
        let mut got = Vec::new();
        match s.read_to_end(&mut got) {
            Ok(_) => assert_eq!(got, b"bye"),
            Err(e) => panic!("round {round}: got {got:?}, then {e}"),
        }
        // The server still discards what we send until we close: no reset.
        s.write_all(b"late").unwrap();
        let mut rest = [0; 1];
        assert_eq!(s.read(&mut rest).unwrap(), 0, "round {round}");
    }
}

/// Closes first, writes after, in one callback.
struct CloseThenWrite;

impl Protocol for CloseThenWrite {
    fn data_received(&mut self, transport: &mut dyn Transport, _data: &[u8]) {
        transport.lose_connection();
        assert!(transport.is_closing());
        transport.write(b"bye");
    }
}

#[test]
fn writes_after_lose_connection_in_the_same_callback_are_still_sent() {
    let server = listening(|| CloseThenWrite);
    let mut s = client(server.addr);
    s.write_all(b"hi").unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"bye");
}

/// A loopback listener with room for one pending connection, and a client
/// that takes it: the next SYN to arrive is dropped (the accept queue is
/// full), so the next connect stays under way until the kernel sends its
/// SYN again, about a second later, by which time the test has accepted
/// the filler.
fn listener_with_a_full_accept_queue() -> (StdListener, TcpStream) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&localhost().into()).unwrap();
    socket.listen(0).unwrap();
    let listener = StdListener::from(socket);
    let filler = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    (listener, filler)
}

// Finding 4: `resume_reading` on a connection still connecting queued it
// for the leftover pass, which took "not connected yet" for a refusal.
#[test]
fn pausing_and_resuming_reading_while_connecting_leaves_the_connect_alone() {
    let (listener, filler) = listener_with_a_full_accept_queue();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = channel();
    let reactor = ReactorThread::start(move |r| {
        let id = r.connect_tcp(addr, ClientRecorder { tx, send: b"ping" }, WAIT);
        r.pause_reading(id);
        r.resume_reading(id);
        Ok(addr)
    });
    assert_eq!(next(&rx), "start_factory");
    assert_eq!(next(&rx), "started_connecting");
    // Two calls in a row: the second runs in a later turn than the first,
    // so the first turn, with its leftover pass, is over.
    reactor.call(|_| ());
    let under_way = reactor.call(|r| r.connection_count());
    assert_quiet(&rx);
    assert_eq!(under_way, 1, "the connect no longer under way");
    // Room in the queue for the retried SYN.
    let _filler = (listener.accept().unwrap(), filler);
    assert_eq!(next(&rx), "build");
    assert_eq!(next(&rx), "made");
    let (mut peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(read_n(&mut peer, 4), b"ping");
    peer.write_all(b"pong").unwrap();
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "client closed cleanly after the reply");
    for expected in [
        "data:pong",
        "lost:LocalClosed",
        "client_lost:LocalClosed",
        "stop_factory",
    ] {
        assert_eq!(next(&rx), expected);
    }
    assert_quiet(&rx);
    drop(reactor);
}
