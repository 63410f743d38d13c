//! A `ReconnectingClient` whose retry comes due while its reactor stops
//! gracefully (another connection keeps the drain open): it makes no new
//! attempt, and its factory hears `stop_factory`, once.
//!
//! The held connection's peer closes when the client's factory hears
//! `stop_factory`, which ends the drain; without it the drain would last
//! its whole grace period.

mod common;

use std::cell::RefCell;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use common::{localhost, WAIT};
use reactor::reconnect::{Backoff, ReconnectingClient, XorShift};
use reactor::{ClientFactory, Factory, OnStop, Protocol, Reactor, Reason, Transport};

/// What the client's factory heard, in order.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Started,
    Attempt,
    Failed(Reason),
    Stopped,
}

/// The client's factory: records every hook; its first failure stops the
/// reactor at the next turn's timers, by when the retry is pending.
struct Watcher {
    events: Rc<RefCell<Vec<Event>>>,
    stopped: Sender<()>,
}

impl Factory for Watcher {
    fn build_protocol(&mut self, _server: SocketAddr) -> Box<dyn Protocol> {
        Box::new(Quiet)
    }

    fn start_factory(&mut self) {
        self.events.borrow_mut().push(Event::Started);
    }

    fn stop_factory(&mut self) {
        self.events.borrow_mut().push(Event::Stopped);
        let _ = self.stopped.send(());
    }
}

impl ClientFactory for Watcher {
    fn started_connecting(&mut self, _reactor: &mut Reactor) {
        self.events.borrow_mut().push(Event::Attempt);
    }

    fn client_connection_failed(&mut self, reactor: &mut Reactor, reason: &Reason) {
        self.events.borrow_mut().push(Event::Failed(reason.clone()));
        reactor.call_later(Duration::ZERO, |r| r.stop());
    }
}

struct Quiet;

impl Protocol for Quiet {
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
}

/// The server's side of the held connection: once it is accepted, the
/// client starts; when the reactor stops, it stays open until its peer
/// closes.
struct Hold {
    start: Rc<RefCell<Option<(ReconnectingClient, SocketAddr)>>>,
}

impl Protocol for Hold {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        if let Some((client, to)) = self.start.borrow_mut().take() {
            client.connect_tcp(transport.reactor().expect("on the reactor"), to, WAIT);
        }
    }

    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}

    fn stopping(&mut self, _t: &mut dyn Transport) -> OnStop {
        OnStop::KeepOpen
    }
}

fn refused() -> Reason {
    Reason::Error {
        kind: std::io::ErrorKind::ConnectionRefused,
        os_code: Some(111),
    }
}

#[test]
fn a_retry_due_while_the_reactor_drains_makes_no_attempt_and_stops_the_factory() {
    // Nothing listens here: the attempt is refused.
    let closed = TcpListener::bind(localhost())
        .unwrap()
        .local_addr()
        .unwrap();
    let events = Rc::new(RefCell::new(Vec::new()));
    let (stopped_tx, stopped_rx) = channel();
    let client = ReconnectingClient::new(Watcher {
        events: events.clone(),
        stopped: stopped_tx,
    })
    .with_backoff(Backoff {
        initial_delay: Duration::from_millis(1), // the retry: about 2.7 ms
        ..Backoff::default()
    })
    .with_random(XorShift::seeded(5));

    let mut reactor = Reactor::new().unwrap();
    // Long enough that a drain lasting it is seen: the held peer closes
    // long before, once the client's factory stopped.
    reactor.set_shutdown_grace(Duration::from_secs(3));
    let start = Rc::new(RefCell::new(Some((client.clone(), closed))));
    let server = reactor
        .listen_tcp(localhost(), move || Hold {
            start: start.clone(),
        })
        .unwrap();
    let held = TcpStream::connect(server.local_addr()).unwrap();
    let peer = std::thread::spawn(move || {
        let heard = stopped_rx.recv_timeout(WAIT).is_ok();
        drop(held);
        heard
    });
    reactor.call_later(WAIT, |r| r.stop()); // in case
    reactor.run().unwrap();

    assert_eq!(
        *events.borrow(),
        [
            Event::Started,
            Event::Attempt,
            Event::Failed(refused()),
            Event::Stopped
        ]
    );
    assert!(!client.is_trying());
    assert!(peer.join().unwrap(), "the held peer closed on stop_factory");
}
