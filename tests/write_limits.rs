//! The hard cap on a connection's buffered output, and producers registered
//! for another connection (Twisted's `registerProducer`): a peer that does
//! not read cannot grow the server, whoever writes to it, and a connection
//! feeding a slow one is paused instead of buffered.
//!
//! The peers that do not read shrink their receive buffer first, so the
//! kernel absorbs little and the server's own buffer fills after a few
//! hundred KiB.

mod common;

use std::cell::RefCell;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::thread;

use common::{client, localhost, pattern, reset, roundtrip, ReactorThread, WAIT};
use reactor::{
    ConnectionId, ListenOptions, Protocol, Reason, Transport, DEFAULT_HIGH_WATERMARK,
    DEFAULT_LOW_WATERMARK, DEFAULT_WRITE_BUFFER_LIMIT,
};
use socket2::{Domain, Socket, Type};

/// The receive buffer a peer that does not read asks for.
const SILENT_RCVBUF: usize = 8 * 1024;

/// A loopback client that shrank its receive buffer before connecting, so
/// little of what the server writes fits in the kernel.
fn silent_client(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(SILENT_RCVBUF).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// Reads until the stream ends; returns what came and how it ended. A reset
/// is `Err(ConnectionReset)`, a clean end `Ok(())`.
fn read_until_end(stream: &mut TcpStream) -> (Vec<u8>, Result<(), ErrorKind>) {
    let mut got = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (got, Err(e.kind())),
        }
    }
}

/// What the server's connections report to the test, in callback order.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Made(&'static str, ConnectionId),
    Lost(&'static str, Reason),
    /// The producer has forwarded this many bytes in all.
    Forwarded(usize),
    /// `pause_producing`, with the consumers' buffered bytes at that moment.
    Paused(Vec<usize>),
    /// `resume_producing`, likewise.
    Resumed(Vec<usize>),
}

fn next_event(rx: &Receiver<Event>) -> Event {
    rx.recv_timeout(WAIT)
        .expect("expected event did not arrive")
}

/// Nothing is waiting on `rx`. Only meaningful after a round trip through
/// the reactor that follows whatever would have sent the event.
fn assert_no_event(rx: &Receiver<Event>, when: &str) {
    match rx.try_recv() {
        Err(TryRecvError::Empty) => {}
        other => panic!("{when}: unexpected {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The cap, reached through another connection's `write_to`.

/// Bytes the writer adds to the silent peer's buffer per step.
const CHUNK: usize = 64 * 1024;

/// The listener's cap in these tests.
const CAP: usize = 256 * 1024;

/// Steps before the test gives up: 64 MiB, far past the cap plus whatever
/// the kernel holds.
const MAX_STEPS: usize = 1024;

/// Connections in the order the test makes them: the first is written to
/// and never reads, the second writes to it, the third only echoes.
const ROLES: [&str; 3] = ["target", "writer", "bystander"];

struct Crowd {
    accepted: usize,
    target: Option<ConnectionId>,
}

struct Member {
    role: &'static str,
    crowd: Rc<RefCell<Crowd>>,
    steps: u64,
    tx: Sender<Event>,
}

impl Protocol for Member {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        if self.role == "target" {
            self.crowd.borrow_mut().target = Some(transport.id());
        }
        let _ = self.tx.send(Event::Made(self.role, transport.id()));
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        match self.role {
            "bystander" => transport.write(data),
            "writer" => {
                let target = self.crowd.borrow().target.expect("the target came first");
                // One step per byte: report what the target had buffered
                // before this step's write, then make it.
                for _ in data {
                    self.steps += 1;
                    let reactor = transport.reactor().expect("a reactor transport");
                    let before = reactor.buffered(target);
                    let open = reactor.is_connected(target);
                    reactor.write_to(target, &pattern(CHUNK, self.steps));
                    transport.write(format!("{before} {open}\n").as_bytes());
                }
            }
            _ => {}
        }
    }

    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(Event::Lost(self.role, reason.clone()));
    }
}

fn crowd_server(options: ListenOptions) -> (ReactorThread, Receiver<Event>) {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let crowd = Rc::new(RefCell::new(Crowd {
            accepted: 0,
            target: None,
        }));
        let factory = move || {
            let role = ROLES[crowd.borrow().accepted.min(ROLES.len() - 1)];
            crowd.borrow_mut().accepted += 1;
            Member {
                role,
                crowd: crowd.clone(),
                steps: 0,
                tx: tx.clone(),
            }
        };
        Ok(r.listen_tcp_with(localhost(), factory, options)?
            .local_addr())
    });
    (server, rx)
}

#[test]
fn writes_from_another_connection_to_a_peer_that_does_not_read_stop_at_the_cap() {
    let options = ListenOptions {
        write_buffer_limit: CAP,
        ..ListenOptions::default()
    };
    let (server, rx) = crowd_server(options);
    let mut target = silent_client(server.addr);
    assert!(matches!(next_event(&rx), Event::Made("target", _)));
    let mut writer = client(server.addr);
    assert!(matches!(next_event(&rx), Event::Made("writer", _)));
    let mut bystander = client(server.addr);
    assert!(matches!(next_event(&rx), Event::Made("bystander", _)));
    let mut replies = BufReader::new(writer.try_clone().unwrap());
    let mut step = |writer: &mut TcpStream| -> (usize, bool) {
        writer.write_all(b"w").unwrap();
        let mut line = String::new();
        replies.read_line(&mut line).unwrap();
        let (before, open) = line.trim_end().split_once(' ').expect("`BEFORE OPEN`");
        (before.parse().unwrap(), open.parse().unwrap())
    };

    let mut peak = 0;
    let mut overflowing_step = None;
    for n in 1..=MAX_STEPS {
        let (before, open) = step(&mut writer);
        assert!(
            open,
            "step {n}: the target closed before its buffer was full"
        );
        assert!(
            before <= CAP,
            "step {n}: {before} bytes buffered, over the cap"
        );
        peak = peak.max(before);
        if before + CHUNK > CAP {
            overflowing_step = Some(n);
            break;
        }
        // A close at the previous step would have been reported by now.
        assert_no_event(&rx, &format!("step {n}"));
    }
    let n = overflowing_step.expect("no write ever came near the cap");
    eprintln!("the target's buffer peaked at {peak} bytes; step {n} would pass {CAP}");
    assert_eq!(
        next_event(&rx),
        Event::Lost("target", Reason::BufferOverflow { limit: CAP })
    );

    // The writer goes on: its next write to the target is a no-op.
    assert_eq!(step(&mut writer), (0, false));
    assert_eq!(roundtrip(&mut bystander, b"still here"), b"still here");

    // The silent peer gets a prefix of what was written, then a reset.
    let (got, end) = read_until_end(&mut target);
    assert_eq!(
        end,
        Err(ErrorKind::ConnectionReset),
        "after {} bytes",
        got.len()
    );
    let written: Vec<u8> = (1..n as u64).flat_map(|s| pattern(CHUNK, s)).collect();
    assert!(got.len() <= written.len(), "more came than was written");
    assert!(
        got == written[..got.len()],
        "the bytes differ from what was written"
    );

    // (A clone of it reads the replies.)
    writer.shutdown(Shutdown::Write).unwrap();
    assert_eq!(next_event(&rx), Event::Lost("writer", Reason::PeerClosed));
    drop(bystander);
    assert_eq!(
        next_event(&rx),
        Event::Lost("bystander", Reason::PeerClosed)
    );
}

// ---------------------------------------------------------------------------
// Which cap is in force.

/// Reports how it ends; sets its own cap first if told to.
struct Sink {
    limit: Option<usize>,
    tx: Sender<Event>,
}

impl Protocol for Sink {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        if let Some(limit) = self.limit {
            transport.set_write_buffer_limit(limit);
        }
        let _ = self.tx.send(Event::Made("sink", transport.id()));
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(Event::Lost("sink", reason.clone()));
    }
}

/// What became of one write.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The peer read every byte, and the connection stayed open.
    Delivered,
    /// The connection was aborted for passing this cap; the peer got a reset
    /// and none of the bytes.
    Overflow(usize),
}

/// A server whose listener caps at `listener` (or the default) and whose
/// protocols set `transport` themselves (or not).
fn sink_server(
    listener: Option<usize>,
    transport: Option<usize>,
) -> (ReactorThread, Receiver<Event>) {
    let (tx, rx) = channel();
    let mut options = ListenOptions::default();
    if let Some(limit) = listener {
        options.write_buffer_limit = limit;
    }
    let server = ReactorThread::start(move |r| {
        let factory = move || Sink {
            limit: transport,
            tx: tx.clone(),
        };
        Ok(r.listen_tcp_with(localhost(), factory, options)?
            .local_addr())
    });
    (server, rx)
}

/// Connects, lets `setup` adjust the connection from the reactor, writes
/// `len` bytes to it in one `write_to`, and says what became of them.
fn one_write(
    server: &ReactorThread,
    rx: &Receiver<Event>,
    len: usize,
    setup: impl FnOnce(&mut reactor::Reactor, ConnectionId) + Send + 'static,
) -> Outcome {
    let mut peer = client(server.addr);
    let Event::Made(_, id) = next_event(rx) else {
        panic!("expected the connection")
    };
    let open = server.call(move |r| {
        setup(r, id);
        r.write_to(id, &pattern(len, 5));
        // An overflowing write closes the connection at once.
        r.is_connected(id)
    });
    if !open {
        let Event::Lost(_, Reason::BufferOverflow { limit }) = next_event(rx) else {
            panic!("closed for another reason")
        };
        let (got, end) = read_until_end(&mut peer);
        assert_eq!((got.len(), end), (0, Err(ErrorKind::ConnectionReset)));
        return Outcome::Overflow(limit);
    }
    let mut got = vec![0; len];
    peer.read_exact(&mut got).unwrap();
    assert!(got == pattern(len, 5), "the bytes differ");
    drop(peer);
    assert_eq!(next_event(rx), Event::Lost("sink", Reason::PeerClosed));
    Outcome::Delivered
}

fn nothing(_: &mut reactor::Reactor, _: ConnectionId) {}

#[test]
fn the_default_cap_is_the_documented_one() {
    let (server, rx) = sink_server(None, None);
    let max = DEFAULT_WRITE_BUFFER_LIMIT;
    assert_eq!(one_write(&server, &rx, max, nothing), Outcome::Delivered);
    assert_eq!(
        one_write(&server, &rx, max + 1, nothing),
        Outcome::Overflow(max)
    );
}

#[test]
fn the_listeners_cap_applies_and_each_transport_can_lower_or_raise_its_own() {
    let (server, rx) = sink_server(Some(CAP), None);
    assert_eq!(one_write(&server, &rx, CAP, nothing), Outcome::Delivered);
    assert_eq!(
        one_write(&server, &rx, CAP + 1, nothing),
        Outcome::Overflow(CAP)
    );
    // Reactor::set_write_buffer_limit, from outside the connection.
    let quarter = |r: &mut reactor::Reactor, id| r.set_write_buffer_limit(id, CAP / 4);
    assert_eq!(
        one_write(&server, &rx, CAP / 4, quarter),
        Outcome::Delivered
    );
    assert_eq!(
        one_write(&server, &rx, CAP / 4 + 1, quarter),
        Outcome::Overflow(CAP / 4)
    );

    // Transport::set_write_buffer_limit, from connection_made.
    let (lower, rx) = sink_server(Some(CAP), Some(CAP / 2));
    assert_eq!(one_write(&lower, &rx, CAP / 2, nothing), Outcome::Delivered);
    assert_eq!(
        one_write(&lower, &rx, CAP / 2 + 1, nothing),
        Outcome::Overflow(CAP / 2)
    );
    let (higher, rx) = sink_server(Some(CAP), Some(2 * CAP));
    assert_eq!(
        one_write(&higher, &rx, CAP + 1, nothing),
        Outcome::Delivered
    );
    assert_eq!(
        one_write(&higher, &rx, 2 * CAP + 1, nothing),
        Outcome::Overflow(2 * CAP)
    );
}

// ---------------------------------------------------------------------------
// Producers: a connection registered for others is paused while any of them
// is over its high watermark.

/// How many consumers a hub has, and whether its producer's pause stops its
/// reading (the default `pause_producing`) or only records the pause.
#[derive(Clone, Copy)]
struct HubConfig {
    consumers: usize,
    pause_reads: bool,
}

struct Hub {
    config: HubConfig,
    accepted: usize,
    consumers: Vec<ConnectionId>,
}

/// The second consumer's high watermark.
const SECOND_HIGH: usize = 4 * DEFAULT_HIGH_WATERMARK;

/// The first `consumers` connections are consumers, the next one the
/// producer (registered for each of them), the rest echo.
enum HubRole {
    Consumer(usize),
    Producer { forwarded: usize },
    Echo,
}

struct HubMember {
    role: HubRole,
    hub: Rc<RefCell<Hub>>,
    tx: Sender<Event>,
}

impl HubMember {
    fn name(&self) -> &'static str {
        match self.role {
            HubRole::Consumer(0) => "consumer 0",
            HubRole::Consumer(_) => "consumer 1",
            HubRole::Producer { .. } => "producer",
            HubRole::Echo => "echo",
        }
    }

    fn consumers_buffered(&self, transport: &mut dyn Transport) -> Vec<usize> {
        let reactor = transport.reactor().expect("a reactor transport");
        let hub = self.hub.borrow();
        hub.consumers.iter().map(|&c| reactor.buffered(c)).collect()
    }
}

impl Protocol for HubMember {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        let id = transport.id();
        match self.role {
            HubRole::Consumer(n) => {
                self.hub.borrow_mut().consumers.push(id);
                // The second consumer fills later than the first.
                if n == 1 {
                    transport.set_write_watermarks(DEFAULT_LOW_WATERMARK, SECOND_HIGH);
                }
            }
            HubRole::Producer { .. } => {
                let reactor = transport.reactor().expect("a reactor transport");
                for &consumer in &self.hub.borrow().consumers {
                    reactor.register_producer(consumer, id);
                }
            }
            HubRole::Echo => {}
        }
        let _ = self.tx.send(Event::Made(self.name(), id));
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        match &mut self.role {
            HubRole::Producer { forwarded } => {
                let reactor = transport.reactor().expect("a reactor transport");
                for &consumer in &self.hub.borrow().consumers {
                    reactor.write_to(consumer, data);
                }
                *forwarded += data.len();
                let _ = self.tx.send(Event::Forwarded(*forwarded));
            }
            HubRole::Echo => transport.write(data),
            HubRole::Consumer(_) => {}
        }
    }

    fn pause_producing(&mut self, transport: &mut dyn Transport) {
        if !matches!(self.role, HubRole::Producer { .. }) {
            // A consumer's own full buffer: the default.
            return transport.pause_reading();
        }
        let buffered = self.consumers_buffered(transport);
        let _ = self.tx.send(Event::Paused(buffered));
        if self.hub.borrow().config.pause_reads {
            transport.pause_reading();
        }
    }

    fn resume_producing(&mut self, transport: &mut dyn Transport) {
        if matches!(self.role, HubRole::Producer { .. }) {
            let buffered = self.consumers_buffered(transport);
            let _ = self.tx.send(Event::Resumed(buffered));
        }
    }

    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(Event::Lost(self.name(), reason.clone()));
    }
}

/// A hub and its connected peers: consumers that do not read (yet), the
/// producer's peer, and an echo to sync with.
struct HubTest {
    server: ReactorThread,
    config: HubConfig,
    rx: Receiver<Event>,
    consumers: Vec<(TcpStream, ConnectionId)>,
    producer: (TcpStream, ConnectionId),
    echo: TcpStream,
    /// Everything the producer's peer sent so far.
    sent: Vec<u8>,
    /// How much of it the producer forwarded, by its last report.
    forwarded: usize,
}

/// What the producer's peer sends per write.
const FEED: usize = 16 * 1024;

/// Most bytes fed before a test gives up waiting for a consumer to fill.
const MAX_FEED: usize = 32 << 20;

impl HubTest {
    fn start(config: HubConfig) -> HubTest {
        let (tx, rx) = channel();
        let server = ReactorThread::start(move |r| {
            let hub = Rc::new(RefCell::new(Hub {
                config,
                accepted: 0,
                consumers: Vec::new(),
            }));
            let factory = move || {
                let n = hub.borrow().accepted;
                hub.borrow_mut().accepted += 1;
                let role = match n {
                    n if n < config.consumers => HubRole::Consumer(n),
                    n if n == config.consumers => HubRole::Producer { forwarded: 0 },
                    _ => HubRole::Echo,
                };
                HubMember {
                    role,
                    hub: hub.clone(),
                    tx: tx.clone(),
                }
            };
            Ok(r.listen_tcp(localhost(), factory)?.local_addr())
        });
        let made = |rx: &Receiver<Event>| match next_event(rx) {
            Event::Made(_, id) => id,
            other => panic!("expected a connection, got {other:?}"),
        };
        let consumers = (0..config.consumers)
            .map(|_| {
                let peer = silent_client(server.addr);
                (peer, made(&rx))
            })
            .collect();
        let producer = client(server.addr);
        let producer = (producer, made(&rx));
        let echo = client(server.addr);
        made(&rx);
        HubTest {
            server,
            config,
            rx,
            consumers,
            producer,
            echo,
            sent: Vec::new(),
            forwarded: 0,
        }
    }

    /// Sends `data` from the producer's peer.
    fn send(&mut self, data: &[u8]) {
        self.producer.0.write_all(data).unwrap();
        self.sent.extend_from_slice(data);
    }

    /// The next event, keeping count of what was forwarded.
    fn next(&mut self) -> Event {
        let event = next_event(&self.rx);
        if let Event::Forwarded(n) = event {
            assert!(n > self.forwarded && n <= self.sent.len(), "forwarded {n}");
            self.forwarded = n;
        }
        event
    }

    /// Feeds the producer, a chunk at a time, until `enough` holds; after
    /// each chunk, waits until it was forwarded or the producer paused (a
    /// producer that stops reading then leaves the rest in the kernel).
    /// Returns the pauses seen.
    fn feed_until(&mut self, mut enough: impl FnMut(&mut HubTest) -> bool) -> Vec<Event> {
        let mut pauses = Vec::new();
        loop {
            if enough(self) {
                // The call `enough` made ran after every callback of the
                // last chunk: what they reported is waiting.
                while let Ok(event) = self.rx.try_recv() {
                    match event {
                        Event::Forwarded(n) => self.forwarded = n,
                        pause @ Event::Paused(_) => pauses.push(pause),
                        other => panic!("while feeding: {other:?}"),
                    }
                }
                return pauses;
            }
            assert!(self.sent.len() < MAX_FEED, "fed {MAX_FEED} bytes");
            let stopped_reading = self.config.pause_reads && !pauses.is_empty();
            assert!(!stopped_reading, "paused, yet not what the test waits for");
            let seed = self.sent.len() as u64 + 1;
            self.send(&pattern(FEED, seed));
            while self.forwarded < self.sent.len() {
                match self.next() {
                    Event::Forwarded(_) => {}
                    pause @ Event::Paused(_) => {
                        pauses.push(pause);
                        if self.config.pause_reads {
                            break;
                        }
                    }
                    other => panic!("while feeding: {other:?}"),
                }
            }
        }
    }

    /// Takes `Forwarded` reports until everything sent was forwarded.
    fn expect_all_forwarded(&mut self, when: &str) {
        while self.forwarded < self.sent.len() {
            match self.next() {
                Event::Forwarded(_) => {}
                other => panic!("{when}: {other:?}"),
            }
        }
    }

    /// A round trip through the reactor: every event the bytes sent before
    /// it caused has been reported once it returns.
    fn sync(&mut self) {
        assert_eq!(roundtrip(&mut self.echo, b"sync"), b"sync");
    }

    /// Starts reading consumer `n`'s peer: it reads `len` bytes.
    fn drain(&mut self, n: usize, len: usize) -> thread::JoinHandle<Vec<u8>> {
        let mut peer = self.consumers[n].0.try_clone().unwrap();
        thread::spawn(move || {
            let mut got = vec![0; len];
            peer.read_exact(&mut got).unwrap();
            got
        })
    }

    fn full(&self, n: usize) -> bool {
        let id = self.consumers[n].1;
        self.server.call(move |r| r.is_write_buffer_full(id))
    }
}

#[test]
fn a_producer_is_paused_while_its_consumer_is_full_and_its_input_waits_in_the_kernel() {
    let mut t = HubTest::start(HubConfig {
        consumers: 1,
        pause_reads: true,
    });
    let pauses = t.feed_until(|t| t.full(0));
    assert!(
        matches!(&pauses[..], [Event::Paused(b)] if b[0] >= DEFAULT_HIGH_WATERMARK),
        "one pause, over the high watermark: {pauses:?}"
    );

    // Paused: what the producer's peer sends now is not read.
    t.send(&[b'M'; 1000]);
    t.sync();
    t.sync();
    assert_no_event(&t.rx, "paused, the producer read");
    assert!(t.forwarded < t.sent.len());
    assert!(t.full(0));

    // The consumer's peer reads: the consumer drains below its low
    // watermark, the producer resumes and forwards the rest, unpaused.
    let reader = t.drain(0, t.sent.len());
    match t.next() {
        Event::Resumed(b) => assert!(b[0] < DEFAULT_LOW_WATERMARK, "resumed at {b:?}"),
        other => panic!("expected the resume, got {other:?}"),
    }
    t.expect_all_forwarded("after the resume");
    let got = reader.join().unwrap();
    assert!(
        got == t.sent,
        "the consumer's peer got other bytes than were sent"
    );
    t.sync();
    assert_no_event(&t.rx, "after everything was forwarded");
}

#[test]
fn a_producer_held_by_two_consumers_is_paused_once_and_resumed_after_both_drain() {
    let mut t = HubTest::start(HubConfig {
        consumers: 2,
        pause_reads: false,
    });
    // This producer goes on reading when paused, so both consumers fill:
    // the first, then the second, whose high watermark is higher.
    let pauses = t.feed_until(|t| t.full(0));
    assert!(
        matches!(&pauses[..], [Event::Paused(b)] if b[0] >= DEFAULT_HIGH_WATERMARK && b[1] < SECOND_HIGH),
        "paused by the first consumer alone: {pauses:?}"
    );
    assert!(!t.full(1));
    let more = t.feed_until(|t| t.full(1));
    assert_eq!(more, [], "paused again by the second consumer");

    let len = t.sent.len();
    let first = t.drain(0, len);
    assert!(first.join().unwrap() == t.sent);
    // The consumer was flushed before its peer could read the last byte,
    // and a resume owed then is reported before this call runs.
    assert!(!t.full(0), "consumer 0 drained");
    assert!(t.full(1));
    assert_no_event(&t.rx, "one consumer still full");

    let second = t.drain(1, len);
    assert!(second.join().unwrap() == t.sent);
    match t.next() {
        Event::Resumed(b) => assert!(b[0] == 0 && b[1] < DEFAULT_LOW_WATERMARK, "{b:?}"),
        other => panic!("expected the resume, got {other:?}"),
    }
    t.sync();
    assert_no_event(&t.rx, "after the resume");
}

#[test]
fn unregistering_the_producer_releases_the_pause() {
    let mut t = HubTest::start(HubConfig {
        consumers: 1,
        pause_reads: true,
    });
    assert_eq!(t.feed_until(|t| t.full(0)).len(), 1);
    let (consumer, producer) = (t.consumers[0].1, t.producer.1);
    t.server
        .call(move |r| r.unregister_producer(consumer, producer));
    assert!(matches!(t.next(), Event::Resumed(_)));
    assert!(t.full(0), "the consumer is still full");
    // Reading again, and no longer held by the full consumer.
    t.send(&pattern(FEED, 99));
    t.expect_all_forwarded("after unregistering");
    // Nor does the consumer's close concern it any more.
    let (peer, _) = t.consumers.remove(0);
    reset(peer);
    assert!(matches!(t.next(), Event::Lost("consumer 0", _)));
    t.sync();
    assert_no_event(&t.rx, "after unregistering");
}

#[test]
fn a_consumer_that_closes_releases_its_producer() {
    let mut t = HubTest::start(HubConfig {
        consumers: 1,
        pause_reads: true,
    });
    assert_eq!(t.feed_until(|t| t.full(0)).len(), 1);
    let (peer, _) = t.consumers.remove(0);
    reset(peer);
    assert!(matches!(t.next(), Event::Lost("consumer 0", _)));
    // The hub still lists the consumer: a closed connection buffers 0.
    assert_eq!(t.next(), Event::Resumed(vec![0]));
    t.send(&pattern(FEED, 99));
    t.expect_all_forwarded("after the consumer closed");
    t.sync();
    assert_no_event(&t.rx, "after the consumer closed");
}
