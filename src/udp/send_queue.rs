//! The datagrams an endpoint could not send yet, bounded in memory.

use std::collections::VecDeque;
use std::mem;
use std::net::SocketAddr;

use super::send::Pending;

/// Bytes of datagrams an endpoint queues while the kernel's send buffer is
/// full; past this, sends are dropped and counted. Each queued datagram also
/// counts its own bookkeeping (a few dozen bytes), so a flood of empty
/// datagrams is bounded too. Default for
/// [`DatagramTransport::set_send_queue_limit`](super::DatagramTransport::set_send_queue_limit).
pub const DEFAULT_SEND_QUEUE_LIMIT: usize = 256 * 1024;

/// One datagram waiting: its destination (`None` for the connected address)
/// and its bytes.
type Queued = (Option<SocketAddr>, Vec<u8>);

/// What one queued datagram costs besides its bytes.
const DATAGRAM_OVERHEAD: usize = mem::size_of::<Queued>();

/// Datagrams the kernel would not take yet, oldest first.
pub(super) struct SendQueue {
    datagrams: VecDeque<Queued>,
    /// Their bytes, as [`DatagramTransport::queued`](super::DatagramTransport::queued) reports.
    bytes: usize,
    /// Their bytes plus [`DATAGRAM_OVERHEAD`] each: what the limit bounds.
    cost: usize,
    limit: usize,
}

impl SendQueue {
    /// An empty queue with the default limit.
    pub(super) fn new() -> SendQueue {
        SendQueue {
            datagrams: VecDeque::new(),
            bytes: 0,
            cost: 0,
            limit: DEFAULT_SEND_QUEUE_LIMIT,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// Bytes of the datagrams waiting.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Caps the queue; datagrams already queued stay.
    pub(super) fn set_limit(&mut self, bytes: usize) {
        self.limit = bytes;
    }

    /// Queues a copy of `data` for `to`, or returns false, queueing nothing,
    /// if that would take the queue past its limit.
    pub(super) fn push(&mut self, to: Option<SocketAddr>, data: &[u8]) -> bool {
        let cost = data.len() + DATAGRAM_OVERHEAD;
        if self.cost + cost > self.limit {
            return false;
        }
        self.cost += cost;
        self.bytes += data.len();
        self.datagrams.push_back((to, data.to_vec()));
        true
    }

    /// The oldest datagram, to be sent next.
    #[cfg(test)]
    fn front(&self) -> Option<(Option<SocketAddr>, &[u8])> {
        self.datagrams.front().map(|(to, data)| (*to, &data[..]))
    }

    /// Removes the oldest `n` datagrams (sent, or failed for good).
    pub(super) fn pop_front(&mut self, n: usize) {
        for (_, data) in self.datagrams.drain(..n.min(self.datagrams.len())) {
            self.bytes -= data.len();
            self.cost -= data.len() + DATAGRAM_OVERHEAD;
        }
        if self.datagrams.is_empty() {
            // Give back what a burst grew: most endpoints queue nothing.
            self.datagrams = VecDeque::new();
        }
    }
}

impl Pending for SendQueue {
    fn len(&self) -> usize {
        self.datagrams.len()
    }

    fn get(&self, i: usize) -> (Option<SocketAddr>, &[u8]) {
        self.datagrams
            .get(i)
            .map_or((None, &[][..]), |(to, data)| (*to, &data[..]))
    }

    /// Only single datagrams: each has its own allocation, so queued runs
    /// are not sent as GSO messages (the queue is the slow path anyway).
    fn contiguous(&self, first: usize, count: usize) -> Option<&[u8]> {
        (count == 1).then(|| self.get(first).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_counts_bytes_and_each_datagram() {
        let mut q = SendQueue::new();
        q.set_limit(2 * (100 + DATAGRAM_OVERHEAD));
        assert!(q.push(None, &[1; 100]));
        assert!(q.push(None, &[2; 100]));
        assert!(!q.push(None, &[3; 1]), "full");
        assert_eq!(q.bytes(), 200);
        q.pop_front(1);
        assert_eq!(q.bytes(), 100);
        assert!(q.push(None, &[3; 100]), "room again");
        assert_eq!(q.front(), Some((None, &[2u8; 100][..])));
    }

    #[test]
    fn empty_datagrams_cannot_grow_the_queue_without_bound() {
        let mut q = SendQueue::new();
        q.set_limit(1024);
        let taken = (0..10_000).take_while(|_| q.push(None, b"")).count();
        assert_eq!(taken, 1024 / DATAGRAM_OVERHEAD);
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn a_drained_queue_is_empty_and_holds_no_storage() {
        let mut q = SendQueue::new();
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for _ in 0..100 {
            assert!(q.push(Some(to), b"x"));
        }
        for _ in 0..50 {
            assert_eq!(q.front(), Some((Some(to), &b"x"[..])));
            q.pop_front(2);
        }
        assert!(q.is_empty());
        assert_eq!((q.bytes(), q.cost), (0, 0));
        assert_eq!(q.datagrams.capacity(), 0);
        q.pop_front(1);
        assert_eq!(q.front(), None);
    }
}
