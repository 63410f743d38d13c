//! Stopping a UDP endpoint: from inside its own callbacks (the stop waits
//! for the callback to return, then `stop_protocol` runs exactly once), and
//! with a protocol whose `stop_protocol` or `Drop` panics (the reactor
//! serves on and `run` returns Ok).

mod common;

use std::cell::Cell;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use common::*;
use reactor::{DatagramProtocol, DatagramTransport, UdpHandle};

fn udp_client() -> UdpSocket {
    let s = UdpSocket::bind(localhost()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// Which of its own callbacks a [`SelfStopper`] stops its endpoint from.
#[derive(Clone, Copy)]
enum StopFrom {
    /// `datagram_received` itself.
    Datagram,
    /// `timer_fired`, of a timer the datagram scheduled.
    Timer,
}

/// Stops its own endpoint through the endpoint's [`UdpHandle`] on the first
/// datagram, and reports every callback on a channel.
struct SelfStopper {
    /// Filled once `listen_udp` returned the handle.
    handle: Rc<Cell<Option<UdpHandle>>>,
    from: StopFrom,
    tx: Sender<String>,
}

impl SelfStopper {
    fn stop_own_endpoint(&mut self, t: &mut dyn DatagramTransport) {
        let handle = self.handle.get().expect("listen_udp returned first");
        let stopped = handle.stop(t.reactor().unwrap());
        let _ = self.tx.send(format!("stop returned {stopped}"));
        // The endpoint closes once this callback returns, not before.
        let again = handle.stop(t.reactor().unwrap());
        let _ = self.tx.send(format!("second stop returned {again}"));
    }
}

impl DatagramProtocol for SelfStopper {
    fn start_protocol(&mut self, _t: &mut dyn DatagramTransport) {
        let _ = self.tx.send("start_protocol".into());
    }
    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], _: SocketAddr) {
        let _ = self.tx.send(format!(
            "datagram_received {}",
            String::from_utf8_lossy(data)
        ));
        match self.from {
            StopFrom::Datagram => self.stop_own_endpoint(t),
            StopFrom::Timer => {
                t.call_later(Duration::ZERO, 7);
            }
        }
    }
    fn timer_fired(&mut self, t: &mut dyn DatagramTransport, tag: u64) {
        let _ = self.tx.send(format!("timer_fired {tag}"));
        self.stop_own_endpoint(t);
    }
    fn stop_protocol(&mut self) {
        let _ = self.tx.send("stop_protocol".into());
    }
}

/// Runs a [`SelfStopper`], sends it one datagram, and checks the callbacks
/// it reports: `expected` up to the stop, then `stop_protocol` once and
/// nothing more, not even for a second datagram or the reactor's stop.
fn stops_itself_once(from: StopFrom, expected: &[&str]) {
    let (tx, rx) = channel();
    let (handle_tx, handle_rx) = channel();
    let server = ReactorThread::start(move |r| {
        let handle = Rc::new(Cell::new(None));
        let protocol = SelfStopper {
            handle: handle.clone(),
            from,
            tx,
        };
        let udp = r.listen_udp(localhost(), protocol)?;
        handle.set(Some(udp));
        handle_tx.send(udp).unwrap();
        Ok(udp.local_addr())
    });
    let handle = handle_rx.recv().unwrap();
    let client = udp_client();
    assert_eq!(next(&rx), "start_protocol");
    client.send_to(b"one", server.addr).unwrap();
    for line in expected {
        assert_eq!(next(&rx), *line);
    }
    assert_eq!(next(&rx), "stop_protocol");
    // The socket closed before stop_protocol ran: its address is free again,
    // and a later datagram reaches the new socket, not the old protocol.
    let successor = UdpSocket::bind(server.addr).expect("the endpoint's socket is closed");
    successor.set_read_timeout(Some(WAIT)).unwrap();
    client.send_to(b"two", server.addr).unwrap();
    let mut buf = [0; 8];
    let (n, _) = successor.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"two");
    assert_quiet(&rx);
    assert!(!server.call(move |r| handle.stop(r)), "stopped already");
    server.stop();
    let after: Vec<String> = rx.try_iter().collect();
    assert!(after.is_empty(), "callbacks after the stop: {after:?}");
}

#[test]
fn a_handle_stop_from_the_endpoints_own_datagram_callback_runs_stop_protocol_once_after_it() {
    stops_itself_once(
        StopFrom::Datagram,
        &[
            "datagram_received one",
            "stop returned true",
            "second stop returned false",
        ],
    );
}

#[test]
fn a_handle_stop_from_the_endpoints_own_timer_runs_stop_protocol_once_after_it() {
    stops_itself_once(
        StopFrom::Timer,
        &[
            "datagram_received one",
            "timer_fired 7",
            "stop returned true",
            "second stop returned false",
        ],
    );
}

/// Answers every datagram to its sender, unchanged.
struct UdpEcho;

impl DatagramProtocol for UdpEcho {
    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        t.write_to(data, from);
    }
}

/// Reports `stop_protocol` (then panics there if `panic_in_stop`), and
/// panics when dropped. On a datagram it stops listening.
struct Explosive {
    name: &'static str,
    panic_in_stop: bool,
    tx: Sender<String>,
}

impl DatagramProtocol for Explosive {
    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, _: &[u8], _: SocketAddr) {
        t.stop_listening();
    }
    fn stop_protocol(&mut self) {
        let _ = self.tx.send(format!("{} stopped", self.name));
        if self.panic_in_stop {
            panic!("{} panics in stop_protocol", self.name);
        }
    }
}

impl Drop for Explosive {
    fn drop(&mut self) {
        let _ = self.tx.send(format!("{} dropped", self.name));
        panic!("{} panics when dropped", self.name);
    }
}

/// One datagram to the echo endpoint at `echo` comes back unchanged.
fn echoes(echo: SocketAddr, msg: &[u8]) {
    let client = udp_client();
    client.send_to(msg, echo).unwrap();
    let mut buf = [0; 64];
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (msg, echo));
}

#[test]
fn a_datagram_protocol_that_panics_when_dropped_or_stopped_stops_nothing_else() {
    let (tx, rx) = channel();
    let (handles_tx, handles_rx) = channel();
    let server = ReactorThread::start(move |r| {
        let echo = r.listen_udp(localhost(), UdpEcho)?;
        let explosive = |name, panic_in_stop| Explosive {
            name,
            panic_in_stop,
            tx: tx.clone(),
        };
        // Stopped through its handle, from outside any of its callbacks.
        let by_handle = r.listen_udp(localhost(), explosive("by handle", false))?;
        // Stops itself with stop_listening from its datagram callback.
        let by_itself = r.listen_udp(localhost(), explosive("by itself", true))?;
        // Still running when the reactor stops.
        r.listen_udp(localhost(), explosive("at shutdown", true))?;
        handles_tx.send((by_handle, by_itself)).unwrap();
        Ok(echo.local_addr())
    });
    let (by_handle, by_itself) = handles_rx.recv().unwrap();

    assert!(server.call(move |r| by_handle.stop(r)), "it was running");
    assert_eq!(next(&rx), "by handle stopped");
    assert_eq!(next(&rx), "by handle dropped");
    echoes(server.addr, b"after a drop panicked");

    udp_client()
        .send_to(b"stop now", by_itself.local_addr())
        .unwrap();
    assert_eq!(next(&rx), "by itself stopped");
    assert_eq!(next(&rx), "by itself dropped");
    echoes(server.addr, b"after stop_protocol and a drop panicked");

    // ReactorThread unwraps run()'s result and fails if its thread panicked.
    server.stop();
    assert_eq!(next(&rx), "at shutdown stopped");
    assert_eq!(next(&rx), "at shutdown dropped");
    assert!(rx.try_recv().is_err(), "nothing else");
}

#[test]
fn a_reactor_dropped_with_a_panicking_datagram_protocol_in_it_drops_it_under_the_guard() {
    let (tx, rx) = channel();
    let mut r = reactor::Reactor::new().unwrap();
    let protocol = Explosive {
        name: "never run",
        panic_in_stop: false,
        tx,
    };
    r.listen_udp(localhost(), protocol).unwrap();
    // Never run: its endpoint is still in it when it is dropped.
    drop(r);
    let events: Vec<String> = rx.try_iter().collect();
    assert_eq!(events, ["never run dropped"]);
}
