//! `Reactor::call_protocol`: code that has only the reactor (a pool job's
//! `on_done`) wakes a connection's protocol through its `timer_fired`.

mod common;

use std::io::{Read, Write};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use common::{next, ReactorThread, WAIT};
use reactor::{ConnectionId, Protocol, Reason, Transport};

/// Doubles each byte it receives on the pool and answers once woken.
struct Doubler {
    tx: Sender<String>,
    ids: Sender<ConnectionId>,
    result: std::rc::Rc<std::cell::RefCell<Option<u8>>>,
}

const DOUBLED: u64 = 7;

impl Protocol for Doubler {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let _ = self.ids.send(t.id());
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        let _ = self.tx.send(format!("data:{}", data[0]));
        let (conn, byte, result) = (t.id(), data[0], self.result.clone());
        let reactor = t.reactor().expect("on a reactor");
        reactor
            .run_in_thread(
                move || byte.wrapping_mul(2),
                move |reactor, doubled| {
                    *result.borrow_mut() = doubled.ok();
                    reactor.call_protocol(conn, DOUBLED);
                },
            )
            .unwrap();
    }
    fn timer_fired(&mut self, t: &mut dyn Transport, tag: u64) {
        let value = self.result.borrow_mut().take();
        let _ = self.tx.send(format!("timer:{tag}:{value:?}"));
        if let Some(value) = value {
            t.write(&[value]);
        }
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(format!("lost:{reason:?}"));
    }
}

/// A server of doublers, what they report, and their connections' ids.
fn doubling_server() -> (ReactorThread, Receiver<String>, Receiver<ConnectionId>) {
    let (tx, rx) = channel();
    let (ids_tx, ids) = channel();
    let server = ReactorThread::start(move |r| {
        let factory = move || Doubler {
            tx: tx.clone(),
            ids: ids_tx.clone(),
            result: Default::default(),
        };
        Ok(r.listen_tcp(common::localhost(), factory)?.local_addr())
    });
    (server, rx, ids)
}

fn next_id(ids: &Receiver<ConnectionId>) -> ConnectionId {
    ids.recv_timeout(WAIT).expect("no connection made")
}

#[test]
fn a_jobs_on_done_wakes_the_connections_protocol_with_its_tag() {
    let (server, rx, _ids) = doubling_server();
    let mut client = common::client(server.addr);
    client.write_all(&[21]).unwrap();
    assert_eq!(next(&rx), "data:21");
    assert_eq!(next(&rx), "timer:7:Some(42)");
    let mut answer = [0];
    client.read_exact(&mut answer).unwrap();
    assert_eq!(answer, [42]);
    common::assert_quiet(&rx);
}

#[test]
fn a_call_for_a_connection_that_is_gone_is_dropped_even_when_its_slot_is_reused() {
    let (server, rx, ids) = doubling_server();
    let client = common::client(server.addr);
    let gone = next_id(&ids);
    drop(client);
    assert_eq!(next(&rx), "lost:PeerClosed");
    // The next connection takes the slot the first one left.
    let _client = common::client(server.addr);
    let reused = next_id(&ids);
    assert_ne!(gone, reused);
    let (later, now) = server.call(move |r| {
        (
            r.call_protocol_later(gone, Duration::ZERO, 1),
            r.call_protocol(gone, 2),
        )
    });
    // Both ran (and found nobody) by the time a later call is answered.
    server.call(|_| ());
    assert!(!server.call(move |r| r.is_timer_active(later) || r.is_timer_active(now)));
    common::assert_quiet(&rx);
}

#[test]
fn a_later_call_waits_for_its_delay() {
    let (server, rx, ids) = doubling_server();
    let _client = common::client(server.addr);
    let conn = next_id(&ids);
    let delay = Duration::from_millis(300);
    let start = Instant::now();
    server.call(move |r| r.call_protocol_later(conn, delay, 9));
    assert_eq!(
        rx.recv_timeout(WAIT).expect("no timer_fired"),
        "timer:9:None"
    );
    assert!(
        start.elapsed() >= delay,
        "fired after {:?}",
        start.elapsed()
    );
}
