//! UDP: datagram endpoints, their protocols and their bounded send queues.
//!
//! - `protocol`: what a program implements and calls ([`DatagramProtocol`],
//!   [`DatagramTransport`]).
//! - `endpoint`: one bound socket in the reactor, where its protocol is
//!   (at rest, or out in one of its callbacks), and its outgoing datagrams.
//! - `outbox`: what the running callbacks wrote, handed to the kernel
//!   together when they return.
//! - `send_queue`: the bounded queue of datagrams the kernel would not take yet.
//! - `send`: the loop that hands either to the kernel in batches, GSO runs,
//!   and what each send error counts as.
//! - `batch`: the receive slots and send arrays a reactor shares, and the
//!   calls that use them; `mmsg`: Linux's `recvmmsg`/`sendmmsg` behind them.
//! - `read`: receiving on readiness, a batch at a time.
//! - `transport`: the reactor's `DatagramTransport`.
//! - here: [`UdpHandle`] and the reactor's side: listening, running the
//!   protocol's callbacks, flushing what they wrote, stopping.
//!
//! A stop asked for while one of the endpoint's own callbacks runs (by
//! `stop_listening` or by `UdpHandle::stop`) waits for that callback to
//! return; then what it wrote is sent, the socket closes and
//! `stop_protocol` runs, once.

mod batch;
mod endpoint;
#[cfg(target_os = "linux")]
mod mmsg;
mod outbox;
mod protocol;
mod read;
mod send;
mod send_queue;
mod transport;

use std::io;
use std::net::SocketAddr;

use log::{debug, error};
use mio::net::UdpSocket;
use mio::Interest;
use socket2::{Domain, Socket, Type};

pub(crate) use self::batch::BatchIo;
pub(crate) use self::endpoint::UdpEndpoint;
pub use self::protocol::{DatagramProtocol, DatagramTransport, MulticastInterface};
pub use self::send_queue::DEFAULT_SEND_QUEUE_LIMIT;

use self::endpoint::StopRequest;
use self::transport::UdpTransport;
use crate::reactor::{Reactor, Slot, SlotId, Source};

/// When the outbox of an endpoint whose callback just returned goes to the
/// kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterCallback {
    /// At once.
    Flush,
    /// After the callbacks of the rest of the batch read (the read flushes).
    /// An endpoint that stops flushes at once regardless.
    KeepStaged,
}

/// A UDP endpoint: where it is bound, and how to stop it.
///
/// [`Reactor::listen_udp`] returns one. It also sends from outside the
/// endpoint's own callbacks: from a timer, a TCP protocol, a closure another
/// thread passed to [`ReactorHandle::call_from_thread`](crate::ReactorHandle::call_from_thread).
///
/// ```
/// use std::cell::RefCell;
/// use std::net::SocketAddr;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use reactor::{DatagramProtocol, DatagramTransport, Reactor};
///
/// /// Sends nothing itself.
/// struct Quiet;
/// impl DatagramProtocol for Quiet {
///     fn datagram_received(&mut self, _: &mut dyn DatagramTransport, _: &[u8], _: SocketAddr) {}
/// }
///
/// /// Keeps one datagram and its sender, then stops the reactor.
/// struct Keep(Rc<RefCell<Option<(Vec<u8>, SocketAddr)>>>);
/// impl DatagramProtocol for Keep {
///     fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
///         *self.0.borrow_mut() = Some((data.to_vec(), from));
///         t.reactor().unwrap().stop();
///     }
/// }
///
/// let mut reactor = Reactor::new()?;
/// let any = "127.0.0.1:0".parse().unwrap();
/// let sender = reactor.listen_udp(any, Quiet)?;
/// let kept = Rc::new(RefCell::new(None));
/// let receiver = reactor.listen_udp(any, Keep(kept.clone()))?;
/// let to = receiver.local_addr();
/// // From a timer: no DatagramTransport at hand, the handle sends.
/// reactor.call_later(Duration::from_millis(10), move |r| sender.write_to(r, b"ping", to));
/// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case it is lost
/// reactor.run()?;
/// assert_eq!(*kept.borrow(), Some((b"ping".to_vec(), sender.local_addr())));
/// # Ok::<(), std::io::Error>(())
/// ```
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

    /// Closes the endpoint, and its protocol's `stop_protocol` runs: at
    /// once, or, when called from inside one of the endpoint's own
    /// callbacks, once that callback returns (as `stop_listening` does).
    /// Returns whether this call stopped it: false if it had stopped, or
    /// been asked to, already.
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

    /// Datagrams this endpoint dropped; see [`DatagramTransport::dropped`].
    pub fn dropped(&self, reactor: &Reactor) -> u64 {
        reactor.udp(self.id).map_or(0, UdpEndpoint::dropped)
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
        self.refuse_while_stopping()?;
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
            source: Source::Udp(UdpEndpoint::new(socket, Box::new(protocol), local)),
        });
        debug!("UDP listening on {local}");
        self.with_datagram_protocol(id, |p, t| p.start_protocol(t));
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

    /// The endpoint, the reactor's send arrays and the registry, at once.
    fn udp_parts(
        &mut self,
        id: SlotId,
    ) -> Option<(&mut UdpEndpoint, &mut BatchIo, &mio::Registry)> {
        match self.slots.get_mut(id.key as usize) {
            Some(Slot {
                generation,
                source: Source::Udp(e),
                ..
            }) if *generation == id.generation => Some((e, &mut self.udp_io, self.poll.registry())),
            _ => None,
        }
    }

    fn udp_mut(&mut self, id: SlotId) -> Option<&mut UdpEndpoint> {
        self.udp_parts(id).map(|(e, _, _)| e)
    }

    /// Runs `f` with the endpoint's protocol taken out of its slot, under the
    /// panic guard, then puts the protocol back, or stops the endpoint if it
    /// was asked to stop meanwhile; what `f` wrote goes to the kernel
    /// before either. Does nothing if the endpoint is gone or stopping, or
    /// if one of its callbacks runs already.
    fn with_datagram_protocol(
        &mut self,
        id: SlotId,
        f: impl FnOnce(&mut dyn DatagramProtocol, &mut dyn DatagramTransport),
    ) {
        self.run_datagram_callback(id, AfterCallback::Flush, f);
    }

    /// [`with_datagram_protocol`](Self::with_datagram_protocol), leaving
    /// what `f` wrote staged when `after` says so.
    fn run_datagram_callback(
        &mut self,
        id: SlotId,
        after: AfterCallback,
        f: impl FnOnce(&mut dyn DatagramProtocol, &mut dyn DatagramTransport),
    ) {
        let Some(e) = self.udp_mut(id) else {
            return;
        };
        let local = e.local;
        let Some(mut protocol) = e.take_protocol() else {
            return;
        };
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
        // A datagram endpoint has no peer to abort: one bad datagram must
        // not silence it for everyone else, so it goes on serving.
        if let Err(why) = outcome {
            error!("datagram protocol on {local} panicked: {why}; it goes on serving");
        }
        // `remove_udp` leaves an endpoint whose callback runs in its slot,
        // so the endpoint is still there to take its protocol back.
        let to_stop = match self.udp_mut(id) {
            Some(e) => e.return_protocol(protocol),
            None => Some(protocol),
        };
        match to_stop {
            Some(protocol) => self.close_udp(id, local, protocol),
            None if after == AfterCallback::Flush => self.flush_udp(id),
            None => {}
        }
    }

    /// Hands what the endpoint's callbacks wrote to the kernel.
    fn flush_udp(&mut self, id: SlotId) {
        if let Some((e, io, registry)) = self.udp_parts(id) {
            e.flush_outbox(io.send(), id, registry);
        }
        self.note_refusal(id);
    }

    fn udp_send(&mut self, id: SlotId, data: &[u8], to: Option<SocketAddr>) {
        let Some((e, io, registry)) = self.udp_parts(id) else {
            debug!("write on a stopped UDP endpoint ignored");
            return;
        };
        e.write(io.send(), id, registry, data, to);
        // Written from outside the endpoint's callbacks: nothing will flush
        // it later, so it goes now.
        if !e.in_callback() {
            e.flush_outbox(io.send(), id, registry);
        }
        self.note_refusal(id);
    }

    /// Queues `connection_refused` for an endpoint whose send met a refusal.
    fn note_refusal(&mut self, id: SlotId) {
        if self.udp_mut(id).is_some_and(UdpEndpoint::take_refusal) {
            self.udp_refusals.push(id);
        }
    }

    /// Runs the `connection_refused` callbacks that sends made during
    /// callbacks owe; called with the deferred closes.
    pub(crate) fn apply_udp_refusals(&mut self) {
        while let Some(id) = self.udp_refusals.pop() {
            self.with_datagram_protocol(id, |p, t| p.connection_refused(t));
        }
    }

    pub(crate) fn datagram_timer(&mut self, id: SlotId, tag: u64) {
        self.with_datagram_protocol(id, |p, t| p.timer_fired(t, tag));
    }

    /// Stops the endpoint: closes its socket and runs `stop_protocol`, now,
    /// or once the endpoint's own callback returns if one runs. Returns
    /// whether this call stopped it (false if it was gone or stopping).
    pub(crate) fn remove_udp(&mut self, id: SlotId) -> bool {
        let Some(e) = self.udp_mut(id) else {
            return false;
        };
        let local = e.local;
        match e.request_stop() {
            StopRequest::Now(protocol) => {
                self.close_udp(id, local, protocol);
                true
            }
            StopRequest::AfterCallback => true,
            StopRequest::Already => false,
        }
    }

    /// Takes the endpoint out of the reactor, closing its socket once what
    /// its last callback wrote is sent (what waits in its queue is lost with
    /// it), then ends its protocol: `stop_protocol`, then its drop, each
    /// under the guard.
    fn close_udp(
        &mut self,
        id: SlotId,
        local: SocketAddr,
        mut protocol: Box<dyn DatagramProtocol>,
    ) {
        if let Some((e, io, registry)) = self.udp_parts(id) {
            e.flush_outbox(io.send(), id, registry);
            drop(self.slots.remove(id.key as usize));
        }
        debug!("UDP {local} stopped");
        if let Err(why) = crate::panic::catch(|| protocol.stop_protocol()) {
            error!("stop_protocol of the datagram protocol on {local} panicked: {why}");
        }
        crate::panic::drop_caught(protocol, "a datagram protocol");
    }
}
