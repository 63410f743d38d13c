//! Receiving: on readiness, up to a batch of datagrams per call into the
//! reactor's shared slots, each handed to `datagram_received` in the order
//! it arrived, then what those callbacks wrote, sent together.

use std::io;
use std::net::SocketAddr;

use log::{debug, warn};

use super::batch::{RecvBatch, BATCH, SLOT};
use super::AfterCallback;
use crate::reactor::{Reactor, Readiness, SlotId};

/// Datagrams one endpoint may receive per wake-up before the others get a
/// turn: two full batches.
const MAX_DATAGRAMS_PER_EVENT: usize = 2 * BATCH;

impl Reactor {
    pub(crate) fn udp_ready(&mut self, id: SlotId, writable: bool, readable: bool) {
        if writable {
            if let Some((e, io, registry)) = self.udp_parts(id) {
                if !e.queue.is_empty() {
                    e.flush_queue(io.send(), id, registry);
                }
            }
            self.note_refusal(id);
        }
        if readable {
            let mut batch = self.udp_io.take_recv();
            let more = self.udp_read(id, &mut batch);
            self.udp_io.put_recv(batch);
            if more {
                self.defer(id, Readiness::LEFTOVER);
            }
        }
    }

    /// Receives batches until the socket's queue is empty, the endpoint or
    /// the reactor stops, or the fairness cap (a failed call counts as one
    /// datagram); returns whether the cap cut it short.
    ///
    /// A batch that comes back short found the queue empty, and needs no
    /// further call to learn it: `recvmmsg` stops early only at `EAGAIN` or
    /// at an error, and an unconnected socket gets no errors (ICMP errors
    /// reach only connected sockets, or those with IP_RECVERR, which the
    /// reactor does not set). A datagram that arrives after that look
    /// raises a new edge. A connected socket's batch may have stopped at an
    /// ICMP error, which the kernel keeps for the next call without a new
    /// edge, so it reads on until `WouldBlock`, as one at a time does.
    fn udp_read(&mut self, id: SlotId, batch: &mut RecvBatch) -> bool {
        let mut budget = MAX_DATAGRAMS_PER_EVENT;
        while budget > 0 {
            if self.is_stopping() {
                return false;
            }
            let Some(e) = self.udp(id) else {
                return false;
            };
            let connected = e.connected;
            let want = budget.min(batch.per_call());
            let received = batch.recv(&e.socket, want);
            budget -= match received {
                Ok(n) => n.clamp(1, budget),
                Err(_) => 1,
            };
            match received {
                Ok(n) => {
                    self.deliver(id, batch, n, connected);
                    // Short for a batched call (the call may have fallen back
                    // to one datagram for good meanwhile: then it is not).
                    if n < want.min(batch.per_call()) && connected.is_none() {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
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
        true
    }

    /// Hands the `n` datagrams of the last receive to `datagram_received`,
    /// in order, and sends what the callbacks wrote in as few calls as it
    /// takes: what the callbacks for one peer's datagrams wrote goes out
    /// before a datagram from another peer is handled, so a lock-step
    /// client's answer never waits behind other peers' callbacks (tokio
    /// answers each datagram at once; batching across peers doubled the
    /// median round trip of ten lock-step clients), while a run of one
    /// peer's requests still leaves together, as a GSO run. Stops early if
    /// the endpoint or the reactor stops.
    fn deliver(&mut self, id: SlotId, batch: &RecvBatch, n: usize, connected: Option<SocketAddr>) {
        let mut previous: Option<SocketAddr> = None;
        for i in 0..n {
            if self.is_stopping() {
                break;
            }
            let Some(e) = self.udp(id) else {
                return;
            };
            let (data, got) = batch.datagram(i);
            if got.truncated {
                // Cannot happen with SLOT-sized slots; never deliver a part.
                warn!(
                    "UDP {}: dropped a datagram from {:?} longer than {SLOT} bytes",
                    e.local, got.from
                );
                continue;
            }
            let Some(from) = got.from.or(connected) else {
                debug!(
                    "UDP {}: dropped a datagram from an unknown address family",
                    e.local
                );
                continue;
            };
            if previous.is_some_and(|p| p != from) {
                self.flush_udp(id);
            }
            previous = Some(from);
            self.run_datagram_callback(id, AfterCallback::KeepStaged, |p, t| {
                p.datagram_received(t, data, from)
            });
        }
        self.flush_udp(id);
    }
}
