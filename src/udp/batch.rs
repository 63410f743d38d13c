//! Moving datagrams in batches: the receive slots and send arrays one
//! reactor shares between its UDP endpoints (one endpoint reads or flushes
//! at a time), and the two calls that use them. On Linux one call moves up
//! to [`BATCH`] datagrams (`recvmmsg`, `sendmmsg` with UDP GSO: see
//! `mmsg`); elsewhere, and once the kernel has refused those calls, one.

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;
#[cfg(target_os = "linux")]
use std::os::fd::AsRawFd;

#[cfg(target_os = "linux")]
use super::mmsg;

/// Datagrams one receive or send call moves at most.
///
/// Why 32: a batch pays the system call's fixed cost (entry, exit, file
/// lookup, a few hundred nanoseconds with today's mitigations) once instead
/// of once per datagram, against one to two microseconds of network-stack
/// work per datagram that no batch saves. At 32 that fixed cost is down to
/// 3% of what one call per datagram pays; doubling it would save under 2%
/// more. What it costs grows with it: a receive batch needs a 64 KiB slot
/// per datagram ([`SLOT`]: 2 MiB of address space per reactor at 32, of
/// which small datagrams touch one page a slot), and a burst read in one
/// call is a burst of callbacks before the next poll. 32 is also what
/// quinn-udp settled on, and two batches make the fairness cap
/// (`MAX_DATAGRAMS_PER_EVENT`, 64) of one wake-up.
pub(crate) const BATCH: usize = 32;

/// Bytes of one receive slot: more than the largest UDP payload (65,507
/// bytes over IPv4, 65,527 over IPv6), so no datagram is cut short. (One
/// that still were is dropped and logged, never delivered in part.)
pub(super) const SLOT: usize = 64 * 1024;

/// One message of a send call: `data` to `to` (`None`: the connected
/// address). With `segment`, `data` is a run of datagrams back to back,
/// each `segment` bytes but the last (which may be shorter), sent as one
/// GSO message that the kernel cuts into them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Message<'a> {
    pub(super) to: Option<SocketAddr>,
    pub(super) data: &'a [u8],
    pub(super) segment: Option<u16>,
}

impl Message<'_> {
    /// A placeholder to fill arrays of messages with.
    pub(super) const NONE: Message<'static> = Message {
        to: None,
        data: &[],
        segment: None,
    };
}

/// What a receive call says about one datagram in its slot.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Received {
    /// Bytes in the slot.
    pub(super) len: usize,
    /// The sender (`None` only for an address family the reactor does not
    /// speak).
    pub(super) from: Option<SocketAddr>,
    /// The datagram was longer than the slot and lost its tail.
    pub(super) truncated: bool,
}

/// What a reactor's UDP endpoints share to move datagrams, each part
/// allocated on first use (a reactor without UDP pays for none of it).
#[derive(Default)]
pub(crate) struct BatchIo {
    recv: Option<Box<RecvBatch>>,
    send: Option<Box<SendBatch>>,
}

impl BatchIo {
    /// The receive slots, taken out for one read while the datagrams'
    /// callbacks (which have the reactor) run; give them back with
    /// [`put_recv`](Self::put_recv).
    pub(super) fn take_recv(&mut self) -> Box<RecvBatch> {
        self.recv
            .take()
            .unwrap_or_else(|| Box::new(RecvBatch::new(SLOT)))
    }

    pub(super) fn put_recv(&mut self, batch: Box<RecvBatch>) {
        self.recv = Some(batch);
    }

    /// The send arrays.
    pub(super) fn send(&mut self) -> &mut SendBatch {
        self.send.get_or_insert_with(|| Box::new(SendBatch::new()))
    }
}

/// Slots a receive call fills: [`BATCH`] where the batched call exists.
const SLOTS: usize = if cfg!(target_os = "linux") { BATCH } else { 1 };

/// Slots for the datagrams of one receive call, and what it said of each.
pub(super) struct RecvBatch {
    /// `SLOTS` slots of `slot` bytes each, back to back.
    buffers: Box<[u8]>,
    slot: usize,
    got: [Received; BATCH],
    #[cfg(target_os = "linux")]
    arrays: mmsg::RecvArrays,
}

impl RecvBatch {
    /// Slots of `slot` bytes (the reactor's are [`SLOT`]; tests make them
    /// small to see truncation).
    pub(super) fn new(slot: usize) -> RecvBatch {
        RecvBatch {
            buffers: vec![0; SLOTS * slot].into_boxed_slice(),
            slot,
            got: [Received::default(); BATCH],
            #[cfg(target_os = "linux")]
            arrays: mmsg::RecvArrays::new(),
        }
    }

    /// Datagrams one receive call takes at most: [`BATCH`], or 1 where
    /// the batched call does not exist or was refused.
    pub(super) fn per_call(&self) -> usize {
        #[cfg(target_os = "linux")]
        if mmsg::available() {
            return BATCH;
        }
        1
    }

    /// Receives up to `max` datagrams (at most [`per_call`](Self::per_call))
    /// in one call; returns how many arrived. A batched call that returns
    /// fewer than it could found the socket's queue empty, or met an error
    /// it keeps for the next call (see `read`). One at a time, it returns 1.
    pub(super) fn recv(&mut self, socket: &UdpSocket, max: usize) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        if mmsg::available() {
            let r = self.arrays.recv(
                socket.as_raw_fd(),
                &mut self.buffers,
                self.slot,
                max,
                &mut self.got,
            );
            match r {
                Err(e) if mmsg::is_unsupported(&e) => mmsg::refuse(&e),
                other => return other,
            }
        }
        let _ = max; // one at a time, there is room for one
        let (len, from) = socket.recv_from(&mut self.buffers[..self.slot])?;
        self.got[0] = Received {
            len,
            from: Some(from),
            truncated: false,
        };
        Ok(1)
    }

    /// Datagram `i` of the last call: its bytes and what the call said.
    pub(super) fn datagram(&self, i: usize) -> (&[u8], Received) {
        let got = self.got.get(i).copied().unwrap_or_default();
        let start = i * self.slot;
        let data = self.buffers.get(start..start + got.len).unwrap_or(&[]);
        (data, got)
    }
}

/// The arrays of one send call.
pub(super) struct SendBatch {
    #[cfg(target_os = "linux")]
    arrays: mmsg::SendArrays,
}

impl SendBatch {
    fn new() -> SendBatch {
        SendBatch {
            #[cfg(target_os = "linux")]
            arrays: mmsg::SendArrays::new(),
        }
    }

    /// Whether send calls take more than one message, and so GSO messages.
    pub(super) fn batched() -> bool {
        #[cfg(target_os = "linux")]
        return mmsg::available();
        #[cfg(not(target_os = "linux"))]
        return false;
    }

    /// Hands `messages` (at most [`BATCH`] are looked at) to the kernel in
    /// one call. Returns how many it took, at least one; or the first one's
    /// error, none taken. One at a time (see [`batched`](Self::batched)),
    /// only the first is sent, and it must not be a GSO run.
    pub(super) fn send(
        &mut self,
        socket: &UdpSocket,
        messages: &[Message<'_>],
    ) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        if mmsg::available() {
            return self.arrays.send(socket.as_raw_fd(), messages);
        }
        let Some(first) = messages.first() else {
            return Ok(0);
        };
        if first.segment.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a GSO run needs the batched call",
            ));
        }
        match first.to {
            Some(to) => socket.send_to(first.data, to),
            None => socket.send(first.data),
        }
        .map(|_| 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn bound(addr: &str) -> Option<UdpSocket> {
        UdpSocket::bind(addr.parse().unwrap()).ok()
    }

    /// Receives until `want` datagrams arrived, waiting for readiness in a
    /// poll (at most 5 s in all).
    fn receive(
        batch: &mut RecvBatch,
        socket: &mut UdpSocket,
        want: usize,
    ) -> Vec<(Vec<u8>, Received)> {
        let mut poll = mio::Poll::new().unwrap();
        let mut events = mio::Events::with_capacity(4);
        poll.registry()
            .register(socket, mio::Token(0), mio::Interest::READABLE)
            .unwrap();
        let mut all = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while all.len() < want && Instant::now() < deadline {
            match batch.recv(socket, BATCH) {
                Ok(n) => all.extend((0..n).map(|i| {
                    let (data, got) = batch.datagram(i);
                    (data.to_vec(), got)
                })),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    poll.poll(&mut events, Some(Duration::from_millis(100)))
                        .unwrap();
                }
                Err(e) => panic!("receive failed: {e}"),
            }
        }
        poll.registry().deregister(socket).unwrap();
        all
    }

    #[test]
    fn one_call_receives_a_queued_burst_whole_in_order_with_senders() {
        for host in ["127.0.0.1:0", "[::1]:0"] {
            let (Some(mut rx), Some(tx)) = (bound(host), bound(host)) else {
                continue; // no IPv6 loopback here
            };
            let to = rx.local_addr().unwrap();
            let sent: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 1 + 97 * i as usize]).collect();
            for d in &sent {
                tx.send_to(d, to).unwrap();
            }
            let mut batch = RecvBatch::new(SLOT);
            let got = receive(&mut batch, &mut rx, sent.len());
            let data: Vec<_> = got.iter().map(|(d, _)| d.clone()).collect();
            assert_eq!(data, sent);
            for (_, r) in &got {
                assert_eq!(r.from, Some(tx.local_addr().unwrap()));
                assert!(!r.truncated);
            }
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_datagram_longer_than_its_slot_is_marked_truncated() {
        let mut rx = bound("127.0.0.1:0").unwrap();
        let tx = bound("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        tx.send_to(&[7; 16], to).unwrap();
        tx.send_to(&[8; 100], to).unwrap();
        tx.send_to(&[9; 3], to).unwrap();
        let mut batch = RecvBatch::new(16);
        let got = receive(&mut batch, &mut rx, 3);
        let seen: Vec<_> = got.iter().map(|(d, r)| (d.len(), r.truncated)).collect();
        assert_eq!(seen, [(16, false), (16, true), (3, false)]);
    }

    #[test]
    fn one_call_sends_many_datagrams_to_several_destinations() {
        let tx = bound("127.0.0.1:0").unwrap();
        let mut rx: Vec<_> = (0..3).map(|_| bound("127.0.0.1:0").unwrap()).collect();
        let payloads: Vec<Vec<u8>> = (0..9u8).map(|i| vec![i; 10 + i as usize]).collect();
        let messages: Vec<_> = payloads
            .iter()
            .enumerate()
            .map(|(i, d)| Message {
                to: Some(rx[i % 3].local_addr().unwrap()),
                data: d,
                segment: None,
            })
            .collect();
        let mut batch = SendBatch::new();
        let mut sent = 0;
        while sent < messages.len() {
            sent += batch.send(&tx, &messages[sent..]).unwrap();
        }
        let mut recv = RecvBatch::new(SLOT);
        for (r, socket) in rx.iter_mut().enumerate() {
            let got = receive(&mut recv, socket, 3);
            let data: Vec<_> = got.into_iter().map(|(d, _)| d).collect();
            let want: Vec<_> = payloads.iter().skip(r).step_by(3).cloned().collect();
            assert_eq!(data, want);
        }
    }
}
