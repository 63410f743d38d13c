//! The reactor's [`DatagramTransport`]: what a datagram protocol's callbacks
//! send through, and the socket options they can set.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::SockRef;

use super::{DatagramTransport, MulticastInterface, UdpEndpoint};
use crate::reactor::{Reactor, SlotId, TimerAction};
use crate::timer::TimerId;

/// The reactor's [`DatagramTransport`]: a view of one endpoint while one of
/// its protocol's callbacks runs (and only then: it is made for the call).
pub(super) struct UdpTransport<'r> {
    pub(super) reactor: &'r mut Reactor,
    pub(super) id: SlotId,
    pub(super) local: SocketAddr,
}

impl UdpTransport<'_> {
    fn endpoint(&mut self) -> Option<&mut UdpEndpoint> {
        self.reactor.udp_mut(self.id)
    }

    /// Runs `op` on the socket, once what this callback wrote so far is
    /// sent: an option set after a write does not apply to it, as when each
    /// write went at once.
    fn sock_op(&mut self, op: impl FnOnce(SockRef<'_>) -> io::Result<()>) -> io::Result<()> {
        self.reactor.flush_udp(self.id);
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
        // What was written before goes where it was written to.
        self.reactor.flush_udp(self.id);
        let Some(e) = self.endpoint() else {
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
        // The same request as the endpoint's `UdpHandle::stop`: inside one of
        // the endpoint's own callbacks, it takes effect once that returns.
        self.reactor.remove_udp(self.id);
    }

    fn dropped(&self) -> u64 {
        self.reactor.udp(self.id).map_or(0, UdpEndpoint::dropped)
    }

    fn queued(&self) -> usize {
        self.reactor.udp(self.id).map_or(0, |e| e.queue.bytes())
    }

    fn set_send_queue_limit(&mut self, bytes: usize) {
        // The limit applies to what is written from now on.
        self.reactor.flush_udp(self.id);
        if let Some(e) = self.endpoint() {
            e.queue.set_limit(bytes);
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
