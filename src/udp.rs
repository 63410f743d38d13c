//! UDP: datagram endpoints, their protocols and their bounded send queues.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use log::{debug, warn};
use mio::net::UdpSocket;
use mio::Interest;
use socket2::{Domain, SockRef, Socket, Type};

use crate::reactor::{interest, Reactor, Slot, SlotId, Source, TimerAction};
use crate::timer::TimerId;

/// Datagrams one endpoint may receive per wake-up before the others get a turn.
const MAX_DATAGRAMS_PER_EVENT: usize = 64;

/// Bytes of datagrams an endpoint queues while the kernel's send buffer is
/// full; past this, sends are dropped and counted. Default for
/// [`DatagramTransport::set_send_queue_limit`].
pub const DEFAULT_SEND_QUEUE_LIMIT: usize = 256 * 1024;

/// The callbacks of a UDP endpoint, as in Twisted's `DatagramProtocol`.
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

    /// Datagrams dropped because the send queue was full (or the endpoint
    /// was not connected for `write`).
    fn dropped(&self) -> u64;

    /// Bytes waiting in the send queue.
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

/// A UDP endpoint: where it is bound, and how to stop it.
#[derive(Debug, Clone, Copy)]
pub struct UdpHandle {
    id: SlotId,
    addr: SocketAddr,
}

impl UdpHandle {
    /// The bound address, with the real port when port 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the endpoint; its protocol's `stop_protocol` runs. Returns
    /// false if it had stopped already.
    pub fn stop(&self, reactor: &mut Reactor) -> bool {
        reactor.remove_udp(self.id)
    }

    /// Sends `data` to `addr` from this endpoint, from anywhere the reactor
    /// is at hand (a TCP callback, a `call_from_thread` closure); see
    /// [`DatagramTransport::write_to`].
    pub fn write_to(&self, reactor: &mut Reactor, data: &[u8], addr: SocketAddr) {
        reactor.udp_send(self.id, data, Some(addr));
    }

    /// Sends `data` to the endpoint's connected address; see
    /// [`DatagramTransport::write`].
    pub fn write(&self, reactor: &mut Reactor, data: &[u8]) {
        reactor.udp_send(self.id, data, None);
    }

    /// Datagrams this endpoint dropped because its send queue was full.
    pub fn dropped(&self, reactor: &Reactor) -> u64 {
        reactor.udp(self.id).map_or(0, |e| e.dropped)
    }
}

pub(crate) struct UdpEndpoint {
    socket: UdpSocket,
    /// `None` only while one of its own callbacks runs.
    protocol: Option<Box<dyn DatagramProtocol>>,
    local: SocketAddr,
    connected: Option<SocketAddr>,
    /// Datagrams the kernel would not take yet: destination (`None` for the
    /// connected address) and bytes.
    queue: VecDeque<(Option<SocketAddr>, Vec<u8>)>,
    queued_bytes: usize,
    queue_limit: usize,
    dropped: u64,
    want_write: bool,
    /// `stop_listening` was called inside a callback; applied after it.
    stopping: bool,
    /// A send reported an ICMP refusal not yet passed to the protocol.
    refused: bool,
}

impl UdpEndpoint {
    /// One `send`/`send_to`. A refusal is an earlier datagram's ICMP error
    /// that the kernel reports (and clears) on this send without sending:
    /// note it for `connection_refused` and send once more.
    fn send_once(&mut self, data: &[u8], to: Option<SocketAddr>) -> io::Result<usize> {
        let mut refusals = 0;
        loop {
            let r = match to {
                Some(addr) => self.socket.send_to(data, addr),
                None => self.socket.send(data),
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused && refusals == 0 => {
                    refusals += 1;
                    self.refused = true;
                }
                other => return other,
            }
        }
    }

    /// Sends one datagram now, or queues it, or drops and counts it.
    fn send(&mut self, id: SlotId, registry: &mio::Registry, data: &[u8], to: Option<SocketAddr>) {
        if to.is_none() && self.connected.is_none() {
            self.drop_datagram("write on an unconnected UDP endpoint");
            return;
        }
        if self.queue.is_empty() {
            match self.send_once(data, to) {
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    // Per-datagram errors (unreachable network, too large,
                    // no permission to broadcast) lose that datagram only.
                    debug!("UDP {}: send to {to:?} failed: {e}", self.local);
                    self.dropped += 1;
                    return;
                }
            }
        }
        if self.queued_bytes + data.len() > self.queue_limit {
            self.drop_datagram("send queue full");
            return;
        }
        self.queued_bytes += data.len();
        self.queue.push_back((to, data.to_vec()));
        if !self.want_write {
            match registry.reregister(&mut self.socket, id.token(), interest(true)) {
                Ok(()) => self.want_write = true,
                Err(e) => warn!("UDP {}: cannot wait for writability: {e}", self.local),
            }
        }
    }

    fn drop_datagram(&mut self, why: &str) {
        self.dropped += 1;
        // Powers of two only, so a flood does not flood the log too.
        if self.dropped.is_power_of_two() {
            warn!(
                "UDP {}: dropped a datagram ({why}); {} dropped so far",
                self.local, self.dropped
            );
        }
    }

    /// Sends queued datagrams until the kernel pushes back.
    fn flush(&mut self, id: SlotId, registry: &mio::Registry) {
        while let Some((to, data)) = self.queue.pop_front() {
            match self.send_once(&data, to) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.queue.push_front((to, data));
                    return;
                }
                Err(e) => {
                    debug!("UDP {}: queued send to {to:?} failed: {e}", self.local);
                    self.dropped += 1;
                }
                Ok(_) => {}
            }
            self.queued_bytes -= data.len();
        }
        self.queue = VecDeque::new();
        if self.want_write {
            match registry.reregister(&mut self.socket, id.token(), interest(false)) {
                Ok(()) => self.want_write = false,
                Err(e) => warn!("UDP {}: cannot drop write interest: {e}", self.local),
            }
        }
    }

    fn sock(&self) -> SockRef<'_> {
        SockRef::from(&self.socket)
    }
}

/// The reactor's [`DatagramTransport`]: a view of one endpoint while its
/// protocol runs.
pub(crate) struct UdpTransport<'r> {
    reactor: &'r mut Reactor,
    id: SlotId,
    local: SocketAddr,
}

impl UdpTransport<'_> {
    fn endpoint(&mut self) -> Option<(&mut UdpEndpoint, &mio::Registry)> {
        self.reactor.udp_and_registry(self.id)
    }

    fn sock_op(&mut self, op: impl FnOnce(SockRef<'_>) -> io::Result<()>) -> io::Result<()> {
        match self.reactor.udp(self.id) {
            Some(e) => op(e.sock()),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl DatagramTransport for UdpTransport<'_> {
    fn write_to(&mut self, data: &[u8], addr: SocketAddr) {
        self.reactor.udp_send(self.id, data, Some(addr));
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<()> {
        let Some((e, _)) = self.endpoint() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        e.socket.connect(addr)?;
        e.connected = Some(addr);
        Ok(())
    }

    fn write(&mut self, data: &[u8]) {
        self.reactor.udp_send(self.id, data, None);
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn connected_addr(&self) -> Option<SocketAddr> {
        self.reactor.udp(self.id).and_then(|e| e.connected)
    }

    fn stop_listening(&mut self) {
        if let Some((e, _)) = self.endpoint() {
            e.stopping = true;
        }
    }

    fn dropped(&self) -> u64 {
        self.reactor.udp(self.id).map_or(0, |e| e.dropped)
    }

    fn queued(&self) -> usize {
        self.reactor.udp(self.id).map_or(0, |e| e.queued_bytes)
    }

    fn set_send_queue_limit(&mut self, bytes: usize) {
        if let Some((e, _)) = self.endpoint() {
            e.queue_limit = bytes;
        }
    }

    fn set_broadcast(&mut self, on: bool) -> io::Result<()> {
        self.sock_op(|s| s.set_broadcast(on))
    }

    fn join_multicast(&mut self, group: IpAddr, interface: MulticastInterface) -> io::Result<()> {
        self.sock_op(|s| multicast(s, group, interface, true))
    }

    fn leave_multicast(&mut self, group: IpAddr, interface: MulticastInterface) -> io::Result<()> {
        self.sock_op(|s| multicast(s, group, interface, false))
    }

    fn set_multicast_ttl(&mut self, ttl: u32) -> io::Result<()> {
        let v6 = self.local.is_ipv6();
        self.sock_op(|s| {
            if v6 {
                s.set_multicast_hops_v6(ttl)
            } else {
                s.set_multicast_ttl_v4(ttl)
            }
        })
    }

    fn set_multicast_loop(&mut self, on: bool) -> io::Result<()> {
        let v6 = self.local.is_ipv6();
        self.sock_op(|s| {
            if v6 {
                s.set_multicast_loop_v6(on)
            } else {
                s.set_multicast_loop_v4(on)
            }
        })
    }

    fn set_multicast_interface_v4(&mut self, interface: std::net::Ipv4Addr) -> io::Result<()> {
        self.sock_op(|s| s.set_multicast_if_v4(&interface))
    }

    fn set_recv_buffer_size(&mut self, bytes: usize) -> io::Result<()> {
        self.sock_op(|s| s.set_recv_buffer_size(bytes))
    }

    fn set_send_buffer_size(&mut self, bytes: usize) -> io::Result<()> {
        self.sock_op(|s| s.set_send_buffer_size(bytes))
    }

    fn call_later(&mut self, delay: Duration, tag: u64) -> TimerId {
        self.reactor.schedule(
            delay,
            TimerAction::Datagram {
                endpoint: self.id,
                tag,
            },
        )
    }

    fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.reactor.cancel(timer)
    }

    fn reactor(&mut self) -> Option<&mut Reactor> {
        Some(self.reactor)
    }
}

fn multicast(
    s: SockRef<'_>,
    group: IpAddr,
    interface: MulticastInterface,
    join: bool,
) -> io::Result<()> {
    match (group, interface) {
        (IpAddr::V4(g), MulticastInterface::Any) => {
            let any = std::net::Ipv4Addr::UNSPECIFIED;
            if join {
                s.join_multicast_v4(&g, &any)
            } else {
                s.leave_multicast_v4(&g, &any)
            }
        }
        (IpAddr::V4(g), MulticastInterface::V4(i)) => {
            if join {
                s.join_multicast_v4(&g, &i)
            } else {
                s.leave_multicast_v4(&g, &i)
            }
        }
        (IpAddr::V6(g), MulticastInterface::Any | MulticastInterface::Index(_)) => {
            let index = match interface {
                MulticastInterface::Index(i) => i,
                _ => 0,
            };
            if join {
                s.join_multicast_v6(&g, index)
            } else {
                s.leave_multicast_v6(&g, index)
            }
        }
        (IpAddr::V4(_), MulticastInterface::Index(_))
        | (IpAddr::V6(_), MulticastInterface::V4(_)) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "group and interface are of different IP versions",
        )),
    }
}

impl Reactor {
    /// Binds a UDP socket to `addr` (port 0 picks a free port) and runs
    /// `protocol` on it: `start_protocol` now, `datagram_received` for each
    /// datagram, `stop_protocol` when it stops.
    pub fn listen_udp(
        &mut self,
        addr: SocketAddr,
        protocol: impl DatagramProtocol,
    ) -> io::Result<UdpHandle> {
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let mut socket = UdpSocket::from_std(socket.into());
        let local = socket.local_addr()?;
        let generation = self.next_generation();
        let entry = self.slots.vacant_entry();
        let id = SlotId {
            key: u32::try_from(entry.key()).map_err(|_| io::Error::other("too many sources"))?,
            generation,
        };
        self.poll
            .registry()
            .register(&mut socket, id.token(), Interest::READABLE)?;
        entry.insert(Slot {
            generation,
            queued: false,
            source: Source::Udp(UdpEndpoint {
                socket,
                protocol: Some(Box::new(protocol)),
                local,
                connected: None,
                queue: VecDeque::new(),
                queued_bytes: 0,
                queue_limit: DEFAULT_SEND_QUEUE_LIMIT,
                dropped: 0,
                want_write: false,
                stopping: false,
                refused: false,
            }),
        });
        debug!("UDP listening on {local}");
        self.with_datagram_protocol(id, |p, t| p.start_protocol(t));
        self.apply_udp_stop(id);
        Ok(UdpHandle { id, addr: local })
    }

    pub(crate) fn udp(&self, id: SlotId) -> Option<&UdpEndpoint> {
        match self.slots.get(id.key as usize) {
            Some(Slot {
                generation,
                source: Source::Udp(e),
                ..
            }) if *generation == id.generation => Some(e),
            _ => None,
        }
    }

    fn udp_and_registry(&mut self, id: SlotId) -> Option<(&mut UdpEndpoint, &mio::Registry)> {
        match self.slots.get_mut(id.key as usize) {
            Some(Slot {
                generation,
                source: Source::Udp(e),
                ..
            }) if *generation == id.generation => Some((e, self.poll.registry())),
            _ => None,
        }
    }

    /// Runs `f` with the endpoint's protocol taken out of its slot.
    fn with_datagram_protocol(
        &mut self,
        id: SlotId,
        f: impl FnOnce(&mut dyn DatagramProtocol, &mut dyn DatagramTransport),
    ) -> bool {
        let Some((e, _)) = self.udp_and_registry(id) else {
            return false;
        };
        let Some(mut protocol) = e.protocol.take() else {
            return false;
        };
        let local = e.local;
        let outcome = crate::panic::catch(|| {
            f(
                &mut *protocol,
                &mut UdpTransport {
                    reactor: self,
                    id,
                    local,
                },
            )
        });
        // Stops are applied only after callbacks return, so the slot is still ours.
        if let Some((e, _)) = self.udp_and_registry(id) {
            e.protocol = Some(protocol);
        }
        // A datagram endpoint has no peer to abort: one bad datagram must
        // not silence it for everyone else, so it goes on serving.
        if let Err(why) = outcome {
            log::error!("datagram protocol on {local} panicked: {why}; it goes on serving");
        }
        true
    }

    fn udp_send(&mut self, id: SlotId, data: &[u8], to: Option<SocketAddr>) {
        let Some((e, registry)) = self.udp_and_registry(id) else {
            debug!("write on a stopped UDP endpoint ignored");
            return;
        };
        e.send(id, registry, data, to);
        self.note_refusal(id);
    }

    /// Queues `connection_refused` for an endpoint whose send met a refusal.
    fn note_refusal(&mut self, id: SlotId) {
        if let Some((e, _)) = self.udp_and_registry(id) {
            if std::mem::take(&mut e.refused) {
                self.udp_refusals.push(id);
            }
        }
    }

    /// Runs the `connection_refused` callbacks that sends made during
    /// callbacks owe; called with the deferred closes.
    pub(crate) fn apply_udp_refusals(&mut self) {
        while let Some(id) = self.udp_refusals.pop() {
            self.with_datagram_protocol(id, |p, t| p.connection_refused(t));
            self.apply_udp_stop(id);
        }
    }

    pub(crate) fn datagram_timer(&mut self, id: SlotId, tag: u64) {
        self.with_datagram_protocol(id, |p, t| p.timer_fired(t, tag));
        self.apply_udp_stop(id);
    }

    /// Closes the endpoint if its protocol asked to stop listening.
    fn apply_udp_stop(&mut self, id: SlotId) {
        if self.udp(id).is_some_and(|e| e.stopping) {
            self.remove_udp(id);
        }
    }

    pub(crate) fn remove_udp(&mut self, id: SlotId) -> bool {
        if self.udp(id).is_none() {
            return false;
        }
        if let Source::Udp(e) = self.slots.remove(id.key as usize).source {
            debug!("UDP {} stopped", e.local);
            let UdpEndpoint {
                socket, protocol, ..
            } = e;
            drop(socket);
            // `None` only if stopped from inside its own callback, which
            // `stop_listening` defers; nothing to call then.
            if let Some(mut protocol) = protocol {
                if let Err(why) = crate::panic::catch(|| protocol.stop_protocol()) {
                    log::error!("stop_protocol panicked: {why}");
                }
            }
        }
        true
    }

    pub(crate) fn udp_ready(&mut self, id: SlotId, writable: bool, readable: bool) {
        if writable {
            if let Some((e, registry)) = self.udp_and_registry(id) {
                if !e.queue.is_empty() {
                    e.flush(id, registry);
                }
            }
            self.note_refusal(id);
        }
        if readable {
            self.udp_read(id);
        }
        self.apply_udp_stop(id);
    }

    /// Receives until `WouldBlock` or the fairness cap. Every datagram fits
    /// the 64 KiB read buffer whole.
    fn udp_read(&mut self, id: SlotId) {
        let mut buf = std::mem::take(&mut self.read_buf);
        for _ in 0..MAX_DATAGRAMS_PER_EVENT {
            if self.is_stopping() {
                break;
            }
            let Some(e) = self.udp(id) else {
                break;
            };
            if e.stopping {
                break;
            }
            // A connected socket hears only its peer: no need to ask who sent it.
            let received = match e.connected {
                Some(peer) => e.socket.recv(&mut buf).map(|n| (n, peer)),
                None => e.socket.recv_from(&mut buf),
            };
            match received {
                Ok((n, from)) => {
                    let data = &buf[..n];
                    self.with_datagram_protocol(id, |p, t| p.datagram_received(t, data, from));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.read_buf = buf;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    self.with_datagram_protocol(id, |p, t| p.connection_refused(t));
                }
                Err(err) => {
                    // Other ICMP-reported errors (host unreachable, …) concern
                    // one earlier datagram; keep reading.
                    debug!("UDP receive error: {err}");
                }
            }
        }
        self.read_buf = buf;
        self.defer(id, crate::reactor::Readiness::LEFTOVER);
    }
}
