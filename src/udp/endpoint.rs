//! One UDP endpoint: its socket, where its protocol is, and its outgoing
//! datagrams (the outbox, the send queue).

use std::mem;
use std::net::SocketAddr;

use log::warn;
use mio::net::UdpSocket;
use socket2::SockRef;

use super::batch::SendBatch;
use super::outbox::Outbox;
use super::send::{send_pending, Mode, Pending, SendState};
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
///
/// What its callbacks write waits in the outbox until the callback returns
/// (or, after a batch read, until every callback of the batch returned),
/// and goes to the kernel in as few calls as it takes; what the kernel
/// pushes back on waits in the bounded queue for writability. Writes from
/// anywhere else go at once. At most one of the two holds datagrams: the
/// outbox fills only while the queue is empty, and flushing it empties it.
pub(crate) struct UdpEndpoint {
    pub(super) socket: UdpSocket,
    protocol: ProtocolState,
    pub(super) local: SocketAddr,
    pub(super) connected: Option<SocketAddr>,
    /// Datagrams written during the running callbacks, not yet offered.
    outbox: Outbox,
    /// Datagrams the kernel would not take yet.
    pub(super) queue: SendQueue,
    /// Drops, ICMP refusals to report, GSO.
    sending: SendState,
    want_write: bool,
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
            outbox: Outbox::default(),
            queue: SendQueue::new(),
            sending: SendState::new(),
            want_write: false,
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

    /// Whether one of its callbacks runs (what it writes is staged).
    pub(super) fn in_callback(&self) -> bool {
        matches!(
            self.protocol,
            ProtocolState::InCallback | ProtocolState::StopAfterCallback
        )
    }

    /// Datagrams dropped; see [`DatagramTransport::dropped`](super::DatagramTransport::dropped).
    pub(super) fn dropped(&self) -> u64 {
        self.sending.dropped
    }

    /// Whether a send since the last call met an ICMP refusal (and clears it).
    pub(super) fn take_refusal(&mut self) -> bool {
        mem::take(&mut self.sending.refused)
    }

    /// How its datagrams go to the kernel. A connected socket is told of
    /// ICMP errors (port unreachable), and the kernel reports a pending one
    /// on the next send, which then fails: in the middle of a batch, that
    /// failure only ends the batch, and the error is lost, the refusal with
    /// it; in a GSO message, the datagrams it holds would share one report.
    /// So a connected endpoint sends one datagram per call, each refusal
    /// reported as before. An unconnected socket is never told (the
    /// reactor does not set IP_RECVERR): its sends batch.
    fn mode(&self) -> Mode {
        if self.connected.is_some() {
            Mode::OneByOne
        } else {
            Mode::Batched
        }
    }

    /// Writes one datagram: staged in the outbox (flushed first if full),
    /// or queued behind what the kernel pushed back on, or dropped and
    /// counted. The caller flushes the outbox when no callback runs.
    pub(super) fn write(
        &mut self,
        io: &mut SendBatch,
        id: SlotId,
        registry: &mio::Registry,
        data: &[u8],
        to: Option<SocketAddr>,
    ) {
        if to.is_none() && self.connected.is_none() {
            self.drop_datagram("write on an unconnected UDP endpoint");
            return;
        }
        if self.queue.is_empty() && !self.outbox.has_room(data.len()) {
            self.flush_outbox(io, id, registry);
        }
        if self.queue.is_empty() {
            self.outbox.stage(to, data);
        } else {
            self.enqueue(id, registry, to, data);
        }
    }

    /// Offers the outbox to the kernel; what it pushes back on joins the
    /// queue (or, past its limit, is dropped and counted), in order.
    pub(super) fn flush_outbox(
        &mut self,
        io: &mut SendBatch,
        id: SlotId,
        registry: &mio::Registry,
    ) {
        if self.outbox.is_empty() {
            return;
        }
        let mut outbox = mem::take(&mut self.outbox);
        let mode = self.mode();
        let taken = send_pending(
            &self.socket,
            io,
            &outbox,
            mode,
            &mut self.sending,
            self.local,
        );
        for i in taken..outbox.len() {
            let (to, data) = outbox.get(i);
            self.enqueue(id, registry, to, data);
        }
        outbox.clear();
        self.outbox = outbox;
    }

    /// Queues a datagram the kernel would not take yet, and waits for
    /// writability; drops and counts it if the queue is full.
    fn enqueue(
        &mut self,
        id: SlotId,
        registry: &mio::Registry,
        to: Option<SocketAddr>,
        data: &[u8],
    ) {
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
        self.sending.dropped += 1;
        let dropped = self.sending.dropped;
        // Powers of two only, so a flood does not flood the log too.
        if dropped.is_power_of_two() {
            warn!(
                "UDP {}: dropped a datagram ({why}); {dropped} dropped so far",
                self.local
            );
        }
    }

    /// Sends queued datagrams until the kernel pushes back.
    pub(super) fn flush_queue(&mut self, io: &mut SendBatch, id: SlotId, registry: &mio::Registry) {
        let mode = self.mode();
        let taken = send_pending(
            &self.socket,
            io,
            &self.queue,
            mode,
            &mut self.sending,
            self.local,
        );
        self.queue.pop_front(taken);
        if self.queue.is_empty() && self.want_write {
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
