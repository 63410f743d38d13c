//! Batched UDP over real loopback sockets: a burst already queued when the
//! reactor reads is read a batch at a time and reaches `datagram_received`
//! whole, in order, with its senders; a burst one callback writes (runs of
//! equal datagrams go as GSO messages) reaches one peer or several whole
//! and in order; and, inside network namespaces the tests make, the send
//! queue's bound and drop count stay exact under the kernel's pushback, and
//! a GSO send the kernel refuses goes again one datagram at a time, none
//! lost.

mod common;
#[path = "common/netns.rs"]
mod netns;

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use common::*;
use netns::{inside_private_network, run_in_private_network};
use reactor::{DatagramProtocol, DatagramTransport, Reactor};

/// A peer: a blocking loopback socket with room for a whole burst.
fn peer() -> UdpSocket {
    let s = UdpSocket::bind(localhost()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    socket2::SockRef::from(&s)
        .set_recv_buffer_size(1 << 20)
        .unwrap();
    s
}

/// Receives `n` datagrams on `s` (each within [`WAIT`]).
fn receive(s: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    let mut buf = vec![0; 64 * 1024];
    (0..n)
        .map(|i| {
            let (len, _) = s
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("datagram {i} of {n} did not arrive: {e}"));
            buf[..len].to_vec()
        })
        .collect()
}

/// The datagrams an endpoint received, with their senders.
type Received = Rc<RefCell<Vec<(SocketAddr, Vec<u8>)>>>;

/// Records every datagram with its sender; stops the reactor at `want`.
struct Record {
    got: Received,
    want: usize,
}

impl DatagramProtocol for Record {
    fn start_protocol(&mut self, t: &mut dyn DatagramTransport) {
        t.set_recv_buffer_size(1 << 20).unwrap();
    }

    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        let mut got = self.got.borrow_mut();
        got.push((from, data.to_vec()));
        if got.len() == self.want {
            t.reactor().unwrap().stop();
        }
    }
}

/// Datagram `i` of peer `p`: sizes from 0 to 599 bytes, bytes of its own.
fn peer_datagram(p: usize, i: usize) -> Vec<u8> {
    pattern((i * 37 + p * 11) % 600, (p * 1000 + i + 1) as u64)
}

#[test]
fn a_burst_queued_from_several_peers_is_read_in_batches_whole_and_in_order() {
    const PEERS: usize = 4;
    const EACH: usize = 50;
    let mut reactor = Reactor::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let record = Record {
        got: got.clone(),
        want: PEERS * EACH + 1,
    };
    let to = reactor
        .listen_udp(localhost(), record)
        .unwrap()
        .local_addr();
    let peers: Vec<UdpSocket> = (0..PEERS).map(|_| peer()).collect();
    // All of it waits in the socket's queue before the reactor reads once,
    // so it is read a full batch at a time; one datagram of the largest
    // size sits in the middle, filling its slot to the end.
    let largest = pattern(65_507, 99);
    let mut sent = Vec::new();
    for i in 0..EACH {
        for (p, s) in peers.iter().enumerate() {
            sent.push((s.local_addr().unwrap(), peer_datagram(p, i)));
        }
        if i == EACH / 2 {
            sent.push((peers[0].local_addr().unwrap(), largest.clone()));
        }
    }
    for (from, data) in &sent {
        let s = peers
            .iter()
            .find(|s| s.local_addr().unwrap() == *from)
            .unwrap();
        s.send_to(data, to).unwrap();
    }
    reactor.call_later(WAIT, |r| r.stop()); // in case some never come
    reactor.run().unwrap();
    let got = got.borrow();
    assert_eq!(got.len(), sent.len(), "every datagram arrived, once");
    // One socket's queue keeps the order of arrival across peers too.
    for (n, (got, sent)) in got.iter().zip(&sent).enumerate() {
        assert_eq!(got.0, sent.0, "datagram {n}: its sender");
        assert!(
            got.1 == sent.1,
            "datagram {n}: {} bytes, expected {}",
            got.1.len(),
            sent.1.len()
        );
    }
}

/// Answers each datagram; before answering one from `second`, looks (for
/// at most [`WAIT`]) whether `first` already holds its answer, and records
/// what it saw.
struct AnswerInTurn {
    first: UdpSocket,
    second: SocketAddr,
    first_answered_before_second_ran: Rc<RefCell<Option<bool>>>,
}

impl DatagramProtocol for AnswerInTurn {
    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        if from == self.second {
            let mut buf = [0u8; 64];
            self.first.set_nonblocking(true).unwrap();
            let started = std::time::Instant::now();
            let seen = loop {
                match self.first.recv(&mut buf) {
                    Ok(n) => break &buf[..n] == b"answer:a",
                    Err(_) if started.elapsed() < WAIT => std::thread::yield_now(),
                    Err(_) => break false,
                }
            };
            *self.first_answered_before_second_ran.borrow_mut() = Some(seen);
            t.reactor().unwrap().stop();
        }
        let mut answer = b"answer:".to_vec();
        answer.extend_from_slice(data);
        t.write_to(&answer, from);
    }
}

/// Lock-step clients (one request in flight each) are answered in turn:
/// an answer to one peer leaves before the callback for the next peer's
/// datagram of the same batch runs, so batching never delays a reply
/// behind other peers' callbacks (runs to one peer still go together).
#[test]
fn an_answer_leaves_before_the_next_peers_datagram_is_handled() {
    let mut reactor = Reactor::new().unwrap();
    let a = peer();
    let b = peer();
    let seen = Rc::new(RefCell::new(None));
    let protocol = AnswerInTurn {
        first: a.try_clone().unwrap(),
        second: b.local_addr().unwrap(),
        first_answered_before_second_ran: seen.clone(),
    };
    let to = reactor
        .listen_udp(localhost(), protocol)
        .unwrap()
        .local_addr();
    // Both wait in the queue before the reactor reads: one batch.
    a.send_to(b"a", to).unwrap();
    b.send_to(b"b", to).unwrap();
    reactor.call_later(WAIT * 2, |r| r.stop()); // in case one never comes
    reactor.run().unwrap();
    assert_eq!(
        *seen.borrow(),
        Some(true),
        "a's answer was out before b's callback"
    );
    assert_eq!(receive(&b, 1), [b"answer:b".to_vec()]);
}

/// Datagram `i` of a burst: `equal` ones are 1,000 bytes (the last 300),
/// `mixed` ones 0 to 1,399; each with bytes of its own.
fn burst_datagram(kind: &str, i: usize) -> Vec<u8> {
    let len = match kind {
        "equal" if i == BURST - 1 => 300,
        "equal" => 1000,
        _ => (i * 53) % 1400,
    };
    pattern(len, (i + 1) as u64 * 7919)
}

const BURST: usize = 100;

/// Asked `equal` or `mixed`, writes a burst of [`BURST`] datagrams back to
/// the asker in this one callback; asked `spread ADDR...`, writes the mixed
/// burst round-robin to those addresses.
struct Burst;

impl DatagramProtocol for Burst {
    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        let ask = String::from_utf8_lossy(data);
        let mut words = ask.split_whitespace();
        match words.next() {
            Some("spread") => {
                let to: Vec<SocketAddr> = words.map(|a| a.parse().unwrap()).collect();
                for i in 0..BURST {
                    t.write_to(&burst_datagram("mixed", i), to[i % to.len()]);
                }
            }
            Some(kind) => {
                for i in 0..BURST {
                    t.write_to(&burst_datagram(kind, i), from);
                }
            }
            None => {}
        }
    }
}

#[test]
fn a_burst_written_in_one_callback_arrives_whole_and_in_order_at_one_peer_or_several() {
    let (handle_tx, handle_rx) = channel();
    let server = ReactorThread::start(move |r| {
        let handle = r.listen_udp(localhost(), Burst)?;
        handle_tx.send(handle).unwrap();
        Ok(handle.local_addr())
    });
    let handle = handle_rx.recv().unwrap();
    for kind in ["equal", "mixed"] {
        let p = peer();
        p.send_to(kind.as_bytes(), server.addr).unwrap();
        let want: Vec<_> = (0..BURST).map(|i| burst_datagram(kind, i)).collect();
        assert!(
            receive(&p, BURST) == want,
            "the {kind} burst, in order, byte for byte"
        );
    }
    let peers: Vec<UdpSocket> = (0..3).map(|_| peer()).collect();
    let ask = peers.iter().fold(String::from("spread"), |ask, p| {
        format!("{ask} {}", p.local_addr().unwrap())
    });
    peers[0].send_to(ask.as_bytes(), server.addr).unwrap();
    for (n, p) in peers.iter().enumerate() {
        let want: Vec<_> = (n..BURST)
            .step_by(peers.len())
            .map(|i| burst_datagram("mixed", i))
            .collect();
        assert!(
            receive(p, want.len()) == want,
            "peer {n}'s share, in order, byte for byte"
        );
    }
    assert_eq!(server.call(move |r| handle.dropped(r)), 0);
}

#[test]
fn under_pushback_the_send_queue_bound_and_drop_count_stay_exact() {
    // A slow qdisc on the namespace's loopback holds what is sent, and its
    // share of a small send buffer, so the kernel pushes back at once.
    run_in_private_network(
        "pushback_inner",
        "tc qdisc add dev lo root tbf rate 4mbit burst 16kb limit 4mb",
    );
}

/// Datagram `i` of a flood: 1,000 bytes (all equal: GSO runs), its number
/// first.
fn numbered(i: usize) -> Vec<u8> {
    let mut d = pattern(1000, i as u64 + 1);
    d[..4].copy_from_slice(&(i as u32).to_be_bytes());
    d
}

#[test]
#[ignore = "run by under_pushback_the_send_queue_bound_and_drop_count_stay_exact inside a network namespace"]
fn pushback_inner() {
    if !inside_private_network() {
        return;
    }
    const SENT: usize = 400;
    const LIMIT: usize = 24 * 1024;
    const REPORT: u64 = 1;
    /// Writes SENT numbered datagrams in one callback; reports the counts
    /// from inside it and, once it returned (all of it offered to the
    /// kernel), from a timer.
    struct Flood {
        to: SocketAddr,
        report: Sender<(&'static str, u64, usize)>,
    }
    impl DatagramProtocol for Flood {
        fn start_protocol(&mut self, t: &mut dyn DatagramTransport) {
            t.set_send_buffer_size(4096).unwrap();
            t.set_send_queue_limit(LIMIT);
            for i in 0..SENT {
                t.write_to(&numbered(i), self.to);
            }
            let _ = self.report.send(("inside", t.dropped(), t.queued()));
            t.call_later(Duration::ZERO, REPORT);
        }
        fn timer_fired(&mut self, t: &mut dyn DatagramTransport, _: u64) {
            let _ = self.report.send(("after", t.dropped(), t.queued()));
        }
        fn datagram_received(&mut self, _: &mut dyn DatagramTransport, _: &[u8], _: SocketAddr) {}
    }
    let receiver = peer();
    let to = receiver.local_addr().unwrap();
    let (tx, rx) = channel();
    let _server = ReactorThread::start(move |r| {
        Ok(r.listen_udp(localhost(), Flood { to, report: tx })?
            .local_addr())
    });
    let (_, inside_dropped, inside_queued) = rx.recv_timeout(WAIT).unwrap();
    let (_, dropped, queued) = rx.recv_timeout(WAIT).unwrap();
    assert!(
        inside_queued <= LIMIT && queued <= LIMIT,
        "queued {inside_queued}, then {queued} bytes"
    );
    assert!(dropped > 0, "the queue never overflowed");
    assert!(dropped >= inside_dropped, "a count only grows");
    // What was not dropped arrives, and exactly that: the first ones, in
    // order, byte for byte (once the queue was full, every later write of
    // the callback was dropped).
    let delivered = SENT - dropped as usize;
    for (i, got) in receive(&receiver, delivered).into_iter().enumerate() {
        assert!(got == numbered(i), "datagram {i}");
    }
    receiver
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        receiver.recv_from(&mut [0; 2048]).is_err(),
        "more arrived than were not counted as dropped"
    );
}

#[test]
fn a_gso_send_the_kernel_refuses_goes_again_one_datagram_at_a_time() {
    // Segments longer than the route's MTU: the kernel refuses the GSO
    // send (EINVAL), while each datagram alone is fragmented and delivered.
    run_in_private_network("gso_refused_inner", "ip link set lo mtu 1280");
}

#[test]
#[ignore = "run by a_gso_send_the_kernel_refuses_goes_again_one_datagram_at_a_time inside a network namespace"]
fn gso_refused_inner() {
    if !inside_private_network() {
        return;
    }
    capture_warnings();
    const EACH: usize = 20;
    /// Writes EACH 1,400-byte datagrams in one callback (one GSO run), then,
    /// from a timer, EACH of 1,000 bytes (which would fit the MTU).
    struct Runs(SocketAddr);
    impl DatagramProtocol for Runs {
        fn start_protocol(&mut self, t: &mut dyn DatagramTransport) {
            for i in 0..EACH {
                t.write_to(&run_datagram(1400, i), self.0);
            }
            t.call_later(Duration::from_millis(1), 0);
        }
        fn timer_fired(&mut self, t: &mut dyn DatagramTransport, _: u64) {
            for i in 0..EACH {
                t.write_to(&run_datagram(1000, i), self.0);
            }
        }
        fn datagram_received(&mut self, _: &mut dyn DatagramTransport, _: &[u8], _: SocketAddr) {}
    }
    fn run_datagram(len: usize, i: usize) -> Vec<u8> {
        pattern(len, (len * 100 + i) as u64)
    }
    let mut reactor = Reactor::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let record = Record {
        got: got.clone(),
        want: 2 * EACH,
    };
    let to = reactor
        .listen_udp(localhost(), record)
        .unwrap()
        .local_addr();
    let sender = reactor.listen_udp(localhost(), Runs(to)).unwrap();
    reactor.call_later(WAIT, |r| r.stop()); // in case some never come
    reactor.run().unwrap();
    let want: Vec<_> = [1400, 1000]
        .into_iter()
        .flat_map(|len| (0..EACH).map(move |i| run_datagram(len, i)))
        .collect();
    let got: Vec<_> = got.borrow().iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(got.len(), want.len(), "every datagram arrived");
    assert!(got == want, "in order, byte for byte");
    assert_eq!(sender.dropped(&reactor), 0);
    let refused: Vec<_> = warnings()
        .into_iter()
        .filter(|w| w.contains("refused a GSO send"))
        .collect();
    assert_eq!(refused.len(), 1, "the refusal is logged once: {refused:?}");
}
