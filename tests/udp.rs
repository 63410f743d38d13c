//! UDP endpoints over real sockets: whole datagrams, many clients, connected
//! sockets and ICMP refusals, and, inside a private network namespace the
//! test creates, broadcast, multicast and the send-queue overflow counter.

mod common;
#[path = "common/netns.rs"]
mod netns;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use common::*;
use netns::{inside_private_network, run_in_private_network};
use reactor::{DatagramProtocol, DatagramTransport, MulticastInterface};

/// Answers every datagram to its sender, unchanged.
struct UdpEcho;

impl DatagramProtocol for UdpEcho {
    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        t.write_to(data, from);
    }
}

fn udp_client() -> UdpSocket {
    let s = UdpSocket::bind(localhost()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

#[test]
fn ten_clients_times_a_thousand_datagrams_all_answered() {
    let server = ReactorThread::start(|r| Ok(r.listen_udp(localhost(), UdpEcho)?.local_addr()));
    let addr = server.addr;
    let clients: Vec<_> = (0..10u32)
        .map(|c| {
            std::thread::spawn(move || {
                let s = udp_client();
                let mut buf = [0; 64];
                let mut answered = 0;
                for i in 0..1000u32 {
                    let msg = format!("client {c} datagram {i}");
                    s.send_to(msg.as_bytes(), addr).unwrap();
                    let (n, from) = s.recv_from(&mut buf).unwrap();
                    assert_eq!(from, addr);
                    assert_eq!(&buf[..n], msg.as_bytes());
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let answered: u32 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(answered, 10_000);
}

#[test]
fn the_largest_and_the_empty_datagram_arrive_whole() {
    let server = ReactorThread::start(|r| Ok(r.listen_udp(localhost(), UdpEcho)?.local_addr()));
    let s = udp_client();
    let big = pattern(65_507, 5);
    let mut buf = vec![0; 70_000];
    s.send_to(&big, server.addr).unwrap();
    let (n, _) = s.recv_from(&mut buf).unwrap();
    assert_eq!(n, 65_507);
    assert!(buf[..n] == big[..], "bytes differ");
    s.send_to(b"", server.addr).unwrap();
    let (n, from) = s.recv_from(&mut buf).unwrap();
    assert_eq!(
        (n, from),
        (0, server.addr),
        "the empty datagram comes back empty"
    );
}

/// Talks to a closed port over a connected socket, hears the refusal, then
/// connects to a live echo and carries on.
struct Prober {
    closed: SocketAddr,
    live: SocketAddr,
    tx: Sender<String>,
}

impl DatagramProtocol for Prober {
    fn start_protocol(&mut self, t: &mut dyn DatagramTransport) {
        t.connect(self.closed).unwrap();
        t.write(b"anyone?");
    }
    fn connection_refused(&mut self, t: &mut dyn DatagramTransport) {
        let _ = self.tx.send("refused".into());
        t.connect(self.live).unwrap();
        assert_eq!(t.connected_addr(), Some(self.live));
        t.write(b"still working");
    }
    fn datagram_received(&mut self, _t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        let from_live = from == self.live;
        let _ = self.tx.send(format!(
            "{} from live:{from_live}",
            String::from_utf8_lossy(data)
        ));
    }
    fn stop_protocol(&mut self) {
        let _ = self.tx.send("stopped".into());
    }
}

#[test]
fn a_connected_socket_hears_refusal_and_keeps_working() {
    let closed = UdpSocket::bind(localhost()).unwrap().local_addr().unwrap();
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let live = r.listen_udp(localhost(), UdpEcho)?.local_addr();
        r.listen_udp(localhost(), Prober { closed, live, tx })?;
        Ok(live)
    });
    assert_eq!(next(&rx), "refused");
    assert_eq!(next(&rx), "still working from live:true");
    server.stop();
    assert_eq!(
        next(&rx),
        "stopped",
        "stop_protocol runs when the reactor stops"
    );
}

#[test]
fn a_datagram_protocol_can_use_timers_tcp_connections_and_stop() {
    use std::cell::Cell;
    use std::rc::Rc;
    /// Relays each datagram to the one TCP connection after a short timer.
    struct Relay {
        tcp: Rc<Cell<Option<reactor::ConnectionId>>>,
        pending: Vec<u8>,
    }
    impl DatagramProtocol for Relay {
        fn datagram_received(
            &mut self,
            t: &mut dyn DatagramTransport,
            data: &[u8],
            _from: SocketAddr,
        ) {
            self.pending = data.to_vec();
            t.call_later(Duration::from_millis(5), 1);
        }
        fn timer_fired(&mut self, t: &mut dyn DatagramTransport, tag: u64) {
            assert_eq!(tag, 1);
            let conn = self.tcp.get().expect("the TCP client connected first");
            let r = t.reactor().unwrap();
            r.write_to(conn, &self.pending);
            r.lose_connection(conn);
        }
    }
    struct Register(Rc<Cell<Option<reactor::ConnectionId>>>);
    impl reactor::Protocol for Register {
        fn connection_made(&mut self, t: &mut dyn reactor::Transport) {
            self.0.set(Some(t.id()));
        }
        fn data_received(&mut self, _t: &mut dyn reactor::Transport, _d: &[u8]) {}
    }
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let tcp = Rc::new(Cell::new(None));
        let t2 = tcp.clone();
        let listener = r.listen_tcp(localhost(), move || Register(t2.clone()))?;
        tx.send(listener.local_addr()).unwrap();
        Ok(r.listen_udp(
            localhost(),
            Relay {
                tcp,
                pending: Vec::new(),
            },
        )?
        .local_addr())
    });
    let mut tcp = client(rx.recv().unwrap());
    // The TCP connection must be registered before the datagram arrives.
    assert_eq!(server.call(|r| r.connection_count()), 1);
    udp_client()
        .send_to(b"over UDP, out TCP", server.addr)
        .unwrap();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut tcp, &mut got).unwrap();
    assert_eq!(got, b"over UDP, out TCP");
}

#[test]
fn udp_listens_on_ipv6_loopback_when_the_host_has_it() {
    let addr: SocketAddr = "[::1]:0".parse().unwrap();
    if UdpSocket::bind(addr).is_err() {
        eprintln!("skipped: this host has no IPv6 loopback");
        return;
    }
    let server = ReactorThread::start(move |r| Ok(r.listen_udp(addr, UdpEcho)?.local_addr()));
    let s = UdpSocket::bind(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.send_to(b"v6", server.addr).unwrap();
    let mut buf = [0; 8];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"v6");
}

/// Counts datagrams into a channel.
struct Collect(Sender<(Vec<u8>, SocketAddr)>);

impl DatagramProtocol for Collect {
    fn datagram_received(&mut self, _t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        let _ = self.0.send((data.to_vec(), from));
    }
}

#[test]
fn broadcast_reaches_a_receiver_on_the_subnet() {
    // A veth pair in our own namespace gives a broadcast-capable subnet;
    // the kernel loops broadcasts back to local listeners.
    run_in_private_network(
        "broadcast_inner",
        "ip link add v0 type veth peer name v1; ip addr add 10.203.0.1/24 brd + dev v0; \
         ip link set v0 up; ip link set v1 up",
    );
}

#[test]
#[ignore = "run by broadcast_reaches_a_receiver_on_the_subnet inside a network namespace"]
fn broadcast_inner() {
    if !inside_private_network() {
        return;
    }
    let (tx, rx) = channel();
    let _r = ReactorThread::start(move |r| {
        let receiver = r.listen_udp("0.0.0.0:0".parse().unwrap(), Collect(tx))?;
        let to: SocketAddr = (Ipv4Addr::new(10, 203, 0, 255), receiver.local_addr().port()).into();
        /// Sends one broadcast once started.
        struct Shout(SocketAddr);
        impl DatagramProtocol for Shout {
            fn start_protocol(&mut self, t: &mut dyn DatagramTransport) {
                t.set_broadcast(true).unwrap();
                t.write_to(b"hello, subnet", self.0);
            }
            fn datagram_received(
                &mut self,
                _: &mut dyn DatagramTransport,
                _: &[u8],
                _: SocketAddr,
            ) {
            }
        }
        r.listen_udp("10.203.0.1:0".parse().unwrap(), Shout(to))?;
        Ok(to)
    });
    let (data, from) = rx.recv_timeout(WAIT).expect("the broadcast arrived");
    assert_eq!(data, b"hello, subnet");
    assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::new(10, 203, 0, 1)));
}

#[test]
fn multicast_group_members_receive_what_is_sent_to_the_group() {
    run_in_private_network(
        "multicast_inner",
        "ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo",
    );
}

#[test]
#[ignore = "run by multicast_group_members_receive_what_is_sent_to_the_group inside a network namespace"]
fn multicast_inner() {
    if !inside_private_network() {
        return;
    }
    let group = Ipv4Addr::new(239, 255, 42, 1);
    let (tx, rx) = channel();
    let _r = ReactorThread::start(move |r| {
        /// Joins the group on loopback when started.
        struct Member(Collect, Ipv4Addr);
        impl DatagramProtocol for Member {
            fn start_protocol(&mut self, t: &mut dyn DatagramTransport) {
                t.join_multicast(
                    IpAddr::V4(self.1),
                    MulticastInterface::V4(Ipv4Addr::LOCALHOST),
                )
                .unwrap();
            }
            fn datagram_received(
                &mut self,
                t: &mut dyn DatagramTransport,
                data: &[u8],
                from: SocketAddr,
            ) {
                self.0.datagram_received(t, data, from);
            }
        }
        let member = r.listen_udp("0.0.0.0:0".parse().unwrap(), Member(Collect(tx), group))?;
        let to: SocketAddr = (group, member.local_addr().port()).into();
        /// Sends to the group from loopback.
        struct Sender(SocketAddr);
        impl DatagramProtocol for Sender {
            fn start_protocol(&mut self, t: &mut dyn DatagramTransport) {
                t.set_multicast_interface_v4(Ipv4Addr::LOCALHOST).unwrap();
                t.set_multicast_ttl(1).unwrap();
                t.set_multicast_loop(true).unwrap();
                t.write_to(b"to the group", self.0);
            }
            fn datagram_received(
                &mut self,
                _: &mut dyn DatagramTransport,
                _: &[u8],
                _: SocketAddr,
            ) {
            }
        }
        r.listen_udp(localhost(), Sender(to))?;
        Ok(to)
    });
    let (data, _) = rx.recv_timeout(WAIT).expect("the group datagram arrived");
    assert_eq!(data, b"to the group");
}

#[test]
fn a_full_send_queue_drops_and_counts_and_loses_nothing_else() {
    // A slow qdisc on our namespace's loopback holds sent datagrams (and
    // their share of the send buffer), so the kernel pushes back.
    run_in_private_network(
        "overflow_inner",
        "tc qdisc add dev lo root tbf rate 2mbit burst 8kb limit 4mb",
    );
}

#[test]
#[ignore = "run by a_full_send_queue_drops_and_counts_and_loses_nothing_else inside a network namespace"]
fn overflow_inner() {
    if !inside_private_network() {
        return;
    }
    const SENT: usize = 300;
    const LIMIT: usize = 16 * 1024;
    let (tx, rx) = channel();
    let (stats_tx, stats_rx) = channel();
    let server = ReactorThread::start(move |r| {
        let receiver = r.listen_udp(localhost(), Collect(tx))?;
        /// Sends SENT datagrams of 1000 bytes in one go, then reports.
        struct Flood(SocketAddr, Sender<(u64, usize)>);
        impl DatagramProtocol for Flood {
            fn start_protocol(&mut self, t: &mut dyn DatagramTransport) {
                t.set_send_buffer_size(4096).unwrap();
                t.set_send_queue_limit(LIMIT);
                for i in 0..SENT {
                    t.write_to(&[i as u8; 1000], self.0);
                }
                let _ = self.1.send((t.dropped(), t.queued()));
            }
            fn datagram_received(
                &mut self,
                _: &mut dyn DatagramTransport,
                _: &[u8],
                _: SocketAddr,
            ) {
            }
        }
        let sender = r.listen_udp(localhost(), Flood(receiver.local_addr(), stats_tx))?;
        Ok(sender.local_addr())
    });
    let (dropped, queued) = stats_rx.recv_timeout(WAIT).unwrap();
    assert!(dropped > 0, "the queue never overflowed");
    assert!(queued > 0 && queued <= LIMIT, "queued {queued} bytes");
    let expected = SENT - dropped as usize;
    for _ in 0..expected {
        let (data, _) = rx
            .recv_timeout(WAIT)
            .expect("every queued datagram is delivered");
        assert_eq!(data.len(), 1000);
    }
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "more arrived than were counted"
    );
    drop(server);
}

/// Writes twice to a closed port; after the second refusal, talks to a live echo.
struct DoubleProber {
    closed: SocketAddr,
    live: SocketAddr,
    refusals: u32,
    tx: Sender<String>,
}

impl DatagramProtocol for DoubleProber {
    fn start_protocol(&mut self, t: &mut dyn DatagramTransport) {
        t.connect(self.closed).unwrap();
        t.write(b"one");
        // On loopback the refusal of `one` is already pending: this send
        // reports it (the kernel clears it), and must still send `two`.
        t.write(b"two");
    }
    fn connection_refused(&mut self, t: &mut dyn DatagramTransport) {
        self.refusals += 1;
        let _ = self.tx.send(format!("refused {}", self.refusals));
        if self.refusals == 2 {
            t.connect(self.live).unwrap();
            t.write(b"three");
        }
    }
    fn datagram_received(
        &mut self,
        _t: &mut dyn DatagramTransport,
        data: &[u8],
        _from: SocketAddr,
    ) {
        let _ = self.tx.send(String::from_utf8_lossy(data).into_owned());
    }
}

#[test]
fn a_refusal_reported_by_a_send_is_not_lost() {
    let closed = UdpSocket::bind(localhost()).unwrap().local_addr().unwrap();
    let (tx, rx) = channel();
    let _server = ReactorThread::start(move |r| {
        let live = r.listen_udp(localhost(), UdpEcho)?.local_addr();
        let p = DoubleProber {
            closed,
            live,
            refusals: 0,
            tx,
        };
        r.listen_udp(localhost(), p)?;
        Ok(live)
    });
    assert_eq!(next(&rx), "refused 1");
    assert_eq!(
        next(&rx),
        "refused 2",
        "each datagram's refusal is reported once"
    );
    assert_eq!(next(&rx), "three");
    assert_quiet(&rx);
}

#[test]
fn stop_from_a_start_hook_before_run_ends_run_at_once() {
    struct StopAtStart(Sender<String>);
    impl DatagramProtocol for StopAtStart {
        fn start_protocol(&mut self, t: &mut dyn DatagramTransport) {
            t.reactor().unwrap().stop();
        }
        fn datagram_received(&mut self, _: &mut dyn DatagramTransport, _: &[u8], _: SocketAddr) {}
        fn stop_protocol(&mut self) {
            let _ = self.0.send("stopped".into());
        }
    }
    let (tx, rx) = channel();
    let mut r = reactor::Reactor::new().unwrap();
    r.listen_udp(localhost(), StopAtStart(tx)).unwrap();
    r.run().unwrap();
    assert_eq!(rx.try_recv().unwrap(), "stopped");
    assert!(!r.is_stopping(), "a stopped reactor can run again");
}
