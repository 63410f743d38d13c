//! One UDP endpoint: its socket, where its protocol is, and sending.

use std::io;
use std::mem;
use std::net::SocketAddr;

use log::{debug, warn};
use mio::net::UdpSocket;
use socket2::SockRef;

use super::send_queue::SendQueue;
use super::DatagramProtocol;
use crate::reactor::{interest, SlotId};

/// Where an endpoint's protocol is. Its callbacks never nest (a send that
/// meets an ICMP refusal during one queues `connection_refused` for after
/// it), so the protocol is either at rest in the endpoint or out on the
/// stack of exactly one of its callbacks.
enum ProtocolState {
    /// In the endpoint; none of its callbacks runs.
    Idle(Box<dyn DatagramProtocol>),
    /// Out on the stack of one of its callbacks.
    InCallback,
    /// Out on the stack of a callback during which the endpoint was asked to
    /// stop (`stop_listening`, or `UdpHandle::stop` from inside it): the
    /// endpoint stops when the callback returns and hands the protocol back.
    StopAfterCallback,
    /// Handed out to be stopped: the endpoint is leaving the reactor.
    Ended,
}

/// What a request to stop an endpoint found.
pub(super) enum StopRequest {
    /// No callback of its runs: here is its protocol, stop it now.
    Now(Box<dyn DatagramProtocol>),
    /// One of its callbacks runs: it stops once that returns.
    AfterCallback,
    /// It is stopping already.
    Already,
}

/// A bound UDP socket in the reactor's slab, with its protocol.
pub(crate) struct UdpEndpoint {
    pub(super) socket: UdpSocket,
    protocol: ProtocolState,
    pub(super) local: SocketAddr,
    pub(super) connected: Option<SocketAddr>,
    /// Datagrams the kernel would not take yet.
    pub(super) queue: SendQueue,
    /// Datagrams dropped: queue full, unconnected `write`, or a send error.
    pub(super) dropped: u64,
    want_write: bool,
    /// A send reported an ICMP refusal not yet passed to the protocol.
    refused: bool,
}

impl UdpEndpoint {
    pub(super) fn new(
        socket: UdpSocket,
        protocol: Box<dyn DatagramProtocol>,
        local: SocketAddr,
    ) -> UdpEndpoint {
        UdpEndpoint {
            socket,
            protocol: ProtocolState::Idle(protocol),
            local,
            connected: None,
            queue: SendQueue::new(),
            dropped: 0,
            want_write: false,
            refused: false,
        }
    }

    /// Takes the protocol out for one of its callbacks; `None` if a callback
    /// of its runs already or the endpoint is stopping.
    pub(super) fn take_protocol(&mut self) -> Option<Box<dyn DatagramProtocol>> {
        match mem::replace(&mut self.protocol, ProtocolState::InCallback) {
            ProtocolState::Idle(protocol) => Some(protocol),
            other => {
                self.protocol = other;
                None
            }
        }
    }

    /// Puts the protocol back after its callback returned, or, if the
    /// endpoint was asked to stop meanwhile, hands it back to be stopped.
    pub(super) fn return_protocol(
        &mut self,
        protocol: Box<dyn DatagramProtocol>,
    ) -> Option<Box<dyn DatagramProtocol>> {
        if matches!(self.protocol, ProtocolState::StopAfterCallback) {
            self.protocol = ProtocolState::Ended;
            return Some(protocol);
        }
        self.protocol = ProtocolState::Idle(protocol);
        None
    }

    /// Asks the endpoint to stop: at once when no callback of its runs,
    /// after the callback otherwise.
    pub(super) fn request_stop(&mut self) -> StopRequest {
        match mem::replace(&mut self.protocol, ProtocolState::Ended) {
            ProtocolState::Idle(protocol) => StopRequest::Now(protocol),
            ProtocolState::InCallback => {
                self.protocol = ProtocolState::StopAfterCallback;
                StopRequest::AfterCallback
            }
            other => {
                self.protocol = other;
                StopRequest::Already
            }
        }
    }

    /// Whether a send since the last call met an ICMP refusal (and clears it).
    pub(super) fn take_refusal(&mut self) -> bool {
        mem::take(&mut self.refused)
    }

    /// Sends one datagram now, or queues it, or drops and counts it.
    pub(super) fn send(
        &mut self,
        id: SlotId,
        registry: &mio::Registry,
        data: &[u8],
        to: Option<SocketAddr>,
    ) {
        if to.is_none() && self.connected.is_none() {
            self.drop_datagram("write on an unconnected UDP endpoint");
            return;
        }
        if self.queue.is_empty() {
            match send_once(&self.socket, &mut self.refused, data, to) {
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
        if !self.queue.push(to, data) {
            self.drop_datagram("send queue full");
            return;
        }
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
    pub(super) fn flush(&mut self, id: SlotId, registry: &mio::Registry) {
        while let Some((to, data)) = self.queue.front() {
            match send_once(&self.socket, &mut self.refused, data, to) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!("UDP {}: queued send to {to:?} failed: {e}", self.local);
                    self.dropped += 1;
                }
                Ok(_) => {}
            }
            self.queue.pop_front();
        }
        if self.want_write {
            match registry.reregister(&mut self.socket, id.token(), interest(false)) {
                Ok(()) => self.want_write = false,
                Err(e) => warn!("UDP {}: cannot drop write interest: {e}", self.local),
            }
        }
    }

    pub(super) fn sock(&self) -> SockRef<'_> {
        SockRef::from(&self.socket)
    }
}

impl Drop for UdpEndpoint {
    /// An endpoint dropped with its protocol still in it (the reactor itself
    /// was dropped): the protocol's `Drop` is user code, run under the guard.
    fn drop(&mut self) {
        if let ProtocolState::Idle(protocol) =
            mem::replace(&mut self.protocol, ProtocolState::Ended)
        {
            crate::panic::drop_caught(protocol, "a datagram protocol");
        }
    }
}

/// One `send`/`send_to`. A refusal is an earlier datagram's ICMP error that
/// the kernel reports (and clears) on this send without sending: note it in
/// `refused` for `connection_refused` and send once more.
fn send_once(
    socket: &UdpSocket,
    refused: &mut bool,
    data: &[u8],
    to: Option<SocketAddr>,
) -> io::Result<usize> {
    let mut refusals = 0;
    loop {
        let r = match to {
            Some(addr) => socket.send_to(data, addr),
            None => socket.send(data),
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused && refusals == 0 => {
                refusals += 1;
                *refused = true;
            }
            other => return other,
        }
    }
}
