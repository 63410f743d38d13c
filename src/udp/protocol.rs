//! What a UDP program implements and calls: the protocol's callbacks and
//! the transport it sends through.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::reactor::Reactor;
use crate::timer::TimerId;

/// The callbacks of a UDP endpoint, as in Twisted's `DatagramProtocol`.
///
/// Run one with [`Reactor::listen_udp`]. An upper-case server, and a plain
/// blocking client on a thread of its own:
///
/// ```
/// use std::net::{SocketAddr, UdpSocket};
/// use std::time::Duration;
/// use reactor::{DatagramProtocol, DatagramTransport, Reactor};
///
/// /// Answers every datagram upper-cased, to its sender.
/// struct Upper;
/// impl DatagramProtocol for Upper {
///     fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
///         t.write_to(&data.to_ascii_uppercase(), from);
///     }
/// }
///
/// let mut reactor = Reactor::new()?;
/// let server = reactor.listen_udp("127.0.0.1:0".parse().unwrap(), Upper)?;
/// let addr = server.local_addr();
/// let handle = reactor.handle()?;
/// let client = std::thread::spawn(move || {
///     let answer = (|| {
///         let socket = UdpSocket::bind("127.0.0.1:0")?;
///         socket.set_read_timeout(Some(Duration::from_secs(5)))?;
///         socket.send_to(b"hello", addr)?;
///         let mut buf = [0; 1024];
///         let (n, _) = socket.recv_from(&mut buf)?;
///         Ok::<_, std::io::Error>(buf[..n].to_vec())
///     })();
///     handle.stop();
///     answer
/// });
/// reactor.run()?;
/// assert_eq!(client.join().unwrap()?, b"HELLO");
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait DatagramProtocol: 'static {
    /// The endpoint is bound and ready; called once, before any datagram.
    fn start_protocol(&mut self, transport: &mut dyn DatagramTransport) {
        let _ = transport;
    }

    /// One whole datagram arrived from `from`. `data` may be empty: UDP can
    /// carry an empty datagram, TCP cannot carry an empty message.
    fn datagram_received(
        &mut self,
        transport: &mut dyn DatagramTransport,
        data: &[u8],
        from: SocketAddr,
    );

    /// A connected endpoint's peer answered with ICMP port-unreachable. The
    /// endpoint keeps working.
    fn connection_refused(&mut self, transport: &mut dyn DatagramTransport) {
        let _ = transport;
    }

    /// The endpoint stopped listening (or the reactor stopped); called once.
    fn stop_protocol(&mut self) {}

    /// A timer scheduled with [`DatagramTransport::call_later`] fired.
    fn timer_fired(&mut self, transport: &mut dyn DatagramTransport, tag: u64) {
        let _ = (transport, tag);
    }
}

/// What a [`DatagramProtocol`] sends through: one UDP socket.
///
/// Sends never block: when the kernel's buffer is full, datagrams wait in a
/// bounded queue flushed when the socket is writable again, and what does not
/// fit is dropped and counted ([`dropped`](DatagramTransport::dropped)).
///
/// What a callback writes goes to the kernel, in order, when the callback
/// returns (after a read, when the callbacks of all the datagrams read
/// together have returned), or as soon as a batch (32 datagrams, or 64 KiB)
/// waits: on Linux an unconnected endpoint hands over a batch in one system
/// call, and a run of equal-sized datagrams to one destination as one GSO
/// send. So [`dropped`](DatagramTransport::dropped) and
/// [`queued`](DatagramTransport::queued), read in the callback that wrote,
/// may not count its last writes yet. A connected endpoint sends each
/// datagram with a call of its own, so that every ICMP refusal reaches
/// `connection_refused`.
///
/// A connected endpoint sends with [`write`](DatagramTransport::write) and
/// hears when nothing listens at the other end:
///
/// ```
/// use std::cell::Cell;
/// use std::net::{SocketAddr, UdpSocket};
/// use std::rc::Rc;
/// use std::time::Duration;
/// use reactor::{DatagramProtocol, DatagramTransport, Reactor};
///
/// /// Asks a port nothing listens on; stops at the ICMP refusal.
/// struct Probe {
///     target: SocketAddr,
///     refused: Rc<Cell<bool>>,
/// }
/// impl DatagramProtocol for Probe {
///     fn start_protocol(&mut self, t: &mut dyn DatagramTransport) {
///         t.connect(self.target).expect("connect a UDP socket");
///         t.write(b"anyone there?");
///     }
///     fn datagram_received(&mut self, _: &mut dyn DatagramTransport, _: &[u8], _: SocketAddr) {}
///     fn connection_refused(&mut self, t: &mut dyn DatagramTransport) {
///         self.refused.set(true);
///         t.reactor().unwrap().stop();
///     }
/// }
///
/// // A port nothing listens on: bound, then closed again.
/// let target = UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
/// let mut reactor = Reactor::new()?;
/// let refused = Rc::new(Cell::new(false));
/// let probe = Probe { target, refused: refused.clone() };
/// reactor.listen_udp("127.0.0.1:0".parse().unwrap(), probe)?;
/// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case it never comes
/// reactor.run()?;
/// assert!(refused.get());
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait DatagramTransport {
    /// Sends `data` as one datagram to `addr`.
    fn write_to(&mut self, data: &[u8], addr: SocketAddr);

    /// Connects the socket: only `addr`'s datagrams are received from now
    /// on, [`write`](DatagramTransport::write) sends there, and an ICMP
    /// port-unreachable reaches `connection_refused`.
    fn connect(&mut self, addr: SocketAddr) -> io::Result<()>;

    /// Sends `data` to the connected address; without one, it is dropped,
    /// counted and logged.
    fn write(&mut self, data: &[u8]);

    /// The bound address.
    fn local_addr(&self) -> SocketAddr;

    /// The connected address, if any.
    fn connected_addr(&self) -> Option<SocketAddr>;

    /// Closes the socket once this callback returns; `stop_protocol` follows.
    fn stop_listening(&mut self);

    /// Datagrams dropped: the send queue was full, `write` found no
    /// connected address, or the kernel refused that one datagram (network
    /// unreachable, too large, broadcast not allowed). Counted once the
    /// datagram was offered to the kernel: see the batching above.
    fn dropped(&self) -> u64;

    /// Bytes waiting in the send queue (which the kernel pushed back on;
    /// not this callback's writes not yet offered to it).
    fn queued(&self) -> usize;

    /// Caps the send queue, in bytes.
    fn set_send_queue_limit(&mut self, bytes: usize);

    /// Allows sending to broadcast addresses (SO_BROADCAST).
    fn set_broadcast(&mut self, on: bool) -> io::Result<()>;

    /// Joins multicast group `group` on the interface with address
    /// `interface` (IPv4), or index `interface_index` (IPv6; 0 = any).
    fn join_multicast(&mut self, group: IpAddr, interface: MulticastInterface) -> io::Result<()>;

    /// Leaves a group joined with [`join_multicast`](DatagramTransport::join_multicast).
    fn leave_multicast(&mut self, group: IpAddr, interface: MulticastInterface) -> io::Result<()>;

    /// Time-to-live (hop limit) of multicast datagrams sent.
    fn set_multicast_ttl(&mut self, ttl: u32) -> io::Result<()>;

    /// Whether multicast datagrams sent are looped back to local listeners.
    fn set_multicast_loop(&mut self, on: bool) -> io::Result<()>;

    /// The interface multicast datagrams are sent from (IPv4 address).
    fn set_multicast_interface_v4(&mut self, interface: std::net::Ipv4Addr) -> io::Result<()>;

    /// SO_RCVBUF.
    fn set_recv_buffer_size(&mut self, bytes: usize) -> io::Result<()>;

    /// SO_SNDBUF.
    fn set_send_buffer_size(&mut self, bytes: usize) -> io::Result<()>;

    /// Schedules [`DatagramProtocol::timer_fired`] with `tag` after `delay`.
    fn call_later(&mut self, delay: Duration, tag: u64) -> TimerId;

    /// Cancels a timer; returns whether it was still pending.
    fn cancel_timer(&mut self, timer: TimerId) -> bool;

    /// The reactor, for everything else (TCP connections, stopping).
    fn reactor(&mut self) -> Option<&mut Reactor>;
}

/// The interface a multicast group is joined on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MulticastInterface {
    /// Let the kernel choose (the default route's interface).
    Any,
    /// The IPv4 interface with this address.
    V4(std::net::Ipv4Addr),
    /// The IPv6 interface with this index.
    Index(u32),
}
