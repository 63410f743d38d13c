//! `ReconnectingClient` on a reactor thread, against a listener that is
//! closed and opened again on the same port: how many attempts, what each
//! waited, the reset once connected, giving up, and `stop_trying`.
//!
//! What the client does is driven from its own hooks, on the reactor's
//! thread (the listener opens when the fourth attempt has failed, say), so
//! the sequence of events is exact, with no race against a clock.

mod common;

use std::cell::RefCell;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use common::{localhost, ReactorThread, WAIT};
use reactor::reconnect::{Backoff, RandomSource, ReconnectingClient, XorShift};
use reactor::{ClientFactory, Factory, ListenerHandle, Protocol, Reactor, Reason, Transport};

/// What the client's factory and protocol saw, in order.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    /// An attempt began, after waiting `delay` (the client's `delay()`),
    /// with `retries` retries since the last connection.
    Attempt {
        delay: Duration,
        retries: u32,
    },
    Failed(Reason),
    /// Connected; the client's delay and retries as the protocol saw them.
    Made {
        delay: Duration,
        retries: u32,
    },
    Lost(Reason),
    GaveUp(Reason),
    /// The user's factory heard `stop_factory`.
    Stopped,
}

thread_local! {
    /// The client under test, on its reactor's thread.
    static CLIENT: RefCell<Option<ReconnectingClient>> = const { RefCell::new(None) };
    /// Timers pending right after a script's `stop_trying`.
    static PENDING_AFTER_STOP: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

fn client() -> ReconnectingClient {
    CLIENT.with(|c| c.borrow().clone().expect("the client is set"))
}

/// What the test scripts the reactor to do at one of the client's events.
type Script = Box<dyn FnMut(&mut Reactor, &Event)>;

/// The user's factory: reports every hook, with the time of each attempt,
/// and lets the test's script act on it.
struct Watcher {
    tx: Sender<(Instant, Event)>,
    script: Rc<RefCell<Script>>,
}

impl Watcher {
    fn report(&self, reactor: &mut Reactor, event: Event) {
        (self.script.borrow_mut())(reactor, &event);
        let _ = self.tx.send((reactor.now(), event));
    }
}

impl Factory for Watcher {
    fn build_protocol(&mut self, _server: SocketAddr) -> Box<dyn Protocol> {
        Box::new(Session {
            tx: self.tx.clone(),
            script: self.script.clone(),
        })
    }

    fn stop_factory(&mut self) {
        let _ = self.tx.send((Instant::now(), Event::Stopped));
    }
}

impl ClientFactory for Watcher {
    fn started_connecting(&mut self, reactor: &mut Reactor) {
        let client = client();
        let event = Event::Attempt {
            delay: client.delay(),
            retries: client.retries(),
        };
        self.report(reactor, event);
    }

    fn client_connection_failed(&mut self, reactor: &mut Reactor, reason: &Reason) {
        self.report(reactor, Event::Failed(reason.clone()));
    }

    fn client_connection_lost(&mut self, reactor: &mut Reactor, reason: &Reason) {
        self.report(reactor, Event::Lost(reason.clone()));
    }
}

/// The client's protocol: reports `Made`, and lets the script act on it
/// (with this connection's transport in reach through the reactor).
struct Session {
    tx: Sender<(Instant, Event)>,
    script: Rc<RefCell<Script>>,
}

impl Protocol for Session {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        let client = client();
        let event = Event::Made {
            delay: client.delay(),
            retries: client.retries(),
        };
        let reactor = transport.reactor().expect("on the reactor");
        (self.script.borrow_mut())(reactor, &event);
        let _ = self.tx.send((reactor.now(), event));
    }

    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
}

/// A reactor thread running a `ReconnectingClient` to `addr` with
/// `backoff`, jitter seeded with `seed`, and the script `make_script`
/// builds (on that thread); its events arrive on the receiver.
fn start_client(
    addr: SocketAddr,
    backoff: Backoff,
    seed: u64,
    make_script: impl FnOnce() -> Script + Send + 'static,
) -> (ReactorThread, Receiver<(Instant, Event)>) {
    let (tx, rx) = channel();
    let events = tx.clone();
    let thread = ReactorThread::start(move |reactor| {
        let script = make_script();
        let watcher = Watcher {
            tx,
            script: Rc::new(RefCell::new(script)),
        };
        let client = ReconnectingClient::new(watcher)
            .with_backoff(backoff)
            .with_random(XorShift::seeded(seed))
            .on_give_up(move |reactor, reason| {
                let _ = events.send((reactor.now(), Event::GaveUp(reason.clone())));
            });
        CLIENT.with(|c| *c.borrow_mut() = Some(client.clone()));
        client.connect_tcp(reactor, addr, WAIT);
        Ok(addr)
    });
    (thread, rx)
}

/// A loopback port nothing listens on (bound, then closed again).
fn free_port() -> SocketAddr {
    TcpListener::bind(localhost())
        .unwrap()
        .local_addr()
        .unwrap()
}

fn refused() -> Reason {
    Reason::Error {
        kind: std::io::ErrorKind::ConnectionRefused,
        os_code: Some(111),
    }
}

/// The client's delays as the model says: each retry's from the last
/// one's and the next normal draw, back to the initial delay at a reset.
struct Model {
    backoff: Backoff,
    random: XorShift,
    delay: Duration,
}

impl Model {
    fn new(backoff: Backoff, seed: u64) -> Model {
        Model {
            backoff,
            random: XorShift::seeded(seed),
            delay: backoff.initial_delay,
        }
    }

    fn retry(&mut self) -> Duration {
        self.delay = self
            .backoff
            .next_delay(self.delay, self.random.standard_normal());
        self.delay
    }

    fn reset(&mut self) -> Duration {
        self.delay = self.backoff.initial_delay;
        self.delay
    }
}

/// The next event, or a test failure after [`WAIT`].
fn next_event(rx: &Receiver<(Instant, Event)>) -> (Instant, Event) {
    rx.recv_timeout(WAIT)
        .expect("expected event did not arrive")
}

/// No script: the client alone.
fn no_script() -> Script {
    Box::new(|_, _| {})
}

/// Receives events until (and including) `last`.
fn events_until(rx: &Receiver<(Instant, Event)>, last: &Event) -> Vec<(Instant, Event)> {
    let mut seen = Vec::new();
    loop {
        let event = next_event(rx);
        let done = &event.1 == last;
        seen.push(event);
        if done {
            return seen;
        }
    }
}

/// A listener the script opens and closes, on the client's reactor.
#[derive(Default)]
struct Server {
    listener: Option<ListenerHandle>,
    accepted: u32,
}

/// The server's protocol: the first connection it accepts "crashes" the
/// server (its listener closes, and so does the connection).
struct Crashing(Rc<RefCell<Server>>);

impl Protocol for Crashing {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        let mut server = self.0.borrow_mut();
        server.accepted += 1;
        if server.accepted == 1 {
            let listener = server.listener.take().expect("listening");
            transport.reactor().unwrap().stop_listening(&listener);
            transport.lose_connection();
        }
    }

    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
}

fn open(reactor: &mut Reactor, addr: SocketAddr, server: &Rc<RefCell<Server>>) {
    let shared = server.clone();
    let listener = reactor
        .listen_tcp(addr, move || Crashing(shared.clone()))
        .expect("the port is free again");
    server.borrow_mut().listener = Some(listener);
}

#[test]
fn delays_grow_while_the_server_is_down_and_start_over_once_connected() {
    let addr = free_port();
    let backoff = Backoff {
        initial_delay: Duration::from_millis(20),
        ..Backoff::default()
    };
    const SEED: u64 = 11;
    let (client_thread, rx) = start_client(addr, backoff, SEED, move || {
        let server = Rc::new(RefCell::new(Server::default()));
        let mut failures = 0;
        let mut made = 0;
        Box::new(move |reactor: &mut Reactor, event: &Event| {
            match event {
                // The server comes up after the fourth failure, and again
                // after the next one (once it crashed).
                Event::Failed(_) => {
                    failures += 1;
                    if failures == 4 || failures == 5 {
                        open(reactor, addr, &server);
                    }
                }
                // The second connection is the last: no more retries, then
                // it hangs up.
                Event::Made { .. } => {
                    made += 1;
                    if made == 2 {
                        client().stop_trying(reactor);
                        if let Some(id) = client().connection() {
                            reactor.lose_connection(id);
                        }
                    }
                }
                _ => {}
            }
        })
    });
    let seen = events_until(&rx, &Event::Stopped);
    let mut model = Model::new(backoff, SEED);
    let d = [
        model.retry(),
        model.retry(),
        model.retry(),
        model.retry(),
        // The first connection reset the delay; it grows again from there.
        {
            model.reset();
            model.retry()
        },
        model.retry(),
    ];
    let attempt = |delay, retries| Event::Attempt { delay, retries };
    let made = Event::Made {
        delay: backoff.initial_delay,
        retries: 0,
    };
    let expected = vec![
        attempt(backoff.initial_delay, 0),
        Event::Failed(refused()),
        attempt(d[0], 1),
        Event::Failed(refused()),
        attempt(d[1], 2),
        Event::Failed(refused()),
        attempt(d[2], 3),
        Event::Failed(refused()),
        attempt(d[3], 4),
        made.clone(),
        Event::Lost(Reason::PeerClosed),
        attempt(d[4], 1),
        Event::Failed(refused()),
        attempt(d[5], 2),
        made,
        Event::Lost(Reason::LocalClosed),
        Event::Stopped,
    ];
    let events: Vec<Event> = seen.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(events, expected);
    // Seven attempts; while the server was down each waited longer.
    assert!(d[0] < d[1] && d[1] < d[2] && d[2] < d[3], "{d:?}");
    assert!(d[4] < d[3], "the delay did not start over: {d:?}");
    // Each attempt came no sooner than its delay after the one before.
    let attempts: Vec<(Instant, Duration)> = seen
        .iter()
        .filter_map(|(at, e)| match e {
            Event::Attempt { delay, .. } => Some((*at, *delay)),
            _ => None,
        })
        .collect();
    assert_eq!(attempts.len(), 7);
    for pair in attempts.windows(2) {
        let waited = pair[1].0 - pair[0].0;
        assert!(
            waited >= pair[1].1,
            "an attempt came {waited:?} after the last, before its delay {:?}",
            pair[1].1
        );
    }
    // `Stopped` came once nothing was under way or scheduled.
    assert!(!client_thread.call(|_| client().is_trying()));
}

#[test]
fn after_max_retries_it_gives_up_once_and_stops() {
    let backoff = Backoff {
        initial_delay: Duration::from_millis(1),
        max_retries: Some(3),
        ..Backoff::default()
    };
    let (client_thread, rx) = start_client(free_port(), backoff, 5, no_script);
    let events: Vec<Event> = events_until(&rx, &Event::Stopped)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let mut model = Model::new(backoff, 5);
    let mut expected = vec![
        Event::Attempt {
            delay: backoff.initial_delay,
            retries: 0,
        },
        Event::Failed(refused()),
    ];
    for retries in 1..=3 {
        expected.push(Event::Attempt {
            delay: model.retry(),
            retries,
        });
        expected.push(Event::Failed(refused()));
    }
    expected.push(Event::GaveUp(refused()));
    expected.push(Event::Stopped);
    assert_eq!(events, expected);
    assert_eq!(client_thread.call(|r| r.pending_timers()), 0);
    assert!(!client_thread.call(|_| client().is_trying()));
}

#[test]
fn stop_trying_cancels_a_pending_retry() {
    let backoff = Backoff {
        initial_delay: Duration::from_secs(1),
        ..Backoff::default()
    };
    let (client_thread, rx) = start_client(free_port(), backoff, 3, || {
        let mut failures = 0;
        Box::new(move |reactor, event| {
            if let Event::Failed(_) = event {
                failures += 1;
                if failures == 2 {
                    // Next turn: by then the retry (about 7 s away) is pending.
                    reactor.call_later(Duration::ZERO, |r| {
                        client().stop_trying(r);
                        PENDING_AFTER_STOP.with(|p| p.set(Some(r.pending_timers())));
                    });
                }
            }
        })
    });
    let events: Vec<Event> = events_until(&rx, &Event::Stopped)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let first_retry = Model::new(backoff, 3).retry();
    assert_eq!(
        events,
        [
            Event::Attempt {
                delay: backoff.initial_delay,
                retries: 0
            },
            Event::Failed(refused()),
            Event::Attempt {
                delay: first_retry,
                retries: 1
            },
            Event::Failed(refused()),
            Event::Stopped,
        ]
    );
    // Cancelled at once, not left to fire into nothing.
    let pending = client_thread.call(|_| PENDING_AFTER_STOP.with(|p| p.get()));
    assert_eq!(pending, Some(0));
}

#[test]
fn stop_trying_aborts_an_attempt_under_way() {
    // A listener whose backlog (0) is full: the kernel drops the client's
    // SYN, so its connect stays under way.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&localhost().into()).unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let _queued = TcpStream::connect(addr).unwrap();
    let (client_thread, rx) = start_client(addr, Backoff::default(), 1, no_script);
    assert_eq!(
        next_event(&rx).1,
        Event::Attempt {
            delay: Duration::from_secs(1),
            retries: 0
        }
    );
    client_thread.call(|r| client().stop_trying(r));
    let events: Vec<Event> = events_until(&rx, &Event::Stopped)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(events, [Event::Failed(Reason::Aborted), Event::Stopped]);
    assert_eq!(client_thread.call(|r| r.pending_timers()), 0);
}
