//! What an endpoint's callbacks wrote and the kernel has not been offered
//! yet: up to a batch of datagrams, back to back in one buffer (so a run of
//! them is one GSO message), handed to the kernel together when the
//! callback returns (after a read, when the callbacks of the whole batch
//! read have returned), or as soon as it is full.

use std::net::SocketAddr;

use super::batch::BATCH;
use super::send::Pending;

/// Bytes the outbox holds before it is flushed: a batch of full-size
/// datagrams goes out a few at a time rather than sitting in 2 MiB of
/// buffer; small ones fill the batch first. (A datagram larger than this
/// is staged alone.)
const OUTBOX_BYTES: usize = 64 * 1024;

/// One staged datagram: where it goes and where its bytes end.
#[derive(Debug, Clone, Copy)]
struct Staged {
    to: Option<SocketAddr>,
    end: usize,
}

/// Datagrams written but not yet offered to the kernel, oldest first. Its
/// buffers keep their capacity from one batch to the next: staging a
/// datagram allocates nothing once the endpoint has sent a batch.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    bytes: Vec<u8>,
    staged: Vec<Staged>,
}

impl Outbox {
    pub(super) fn is_empty(&self) -> bool {
        self.staged.is_empty()
    }

    /// Whether `len` more bytes fit (always, into an empty outbox).
    pub(super) fn has_room(&self, len: usize) -> bool {
        self.staged.is_empty()
            || (self.staged.len() < BATCH && self.bytes.len() + len <= OUTBOX_BYTES)
    }

    /// Stages a copy of `data` for `to`.
    pub(super) fn stage(&mut self, to: Option<SocketAddr>, data: &[u8]) {
        if self.staged.capacity() == 0 {
            self.staged.reserve_exact(BATCH);
        }
        self.bytes.extend_from_slice(data);
        self.staged.push(Staged {
            to,
            end: self.bytes.len(),
        });
    }

    /// Empties it, keeping the buffers (but giving back what one outsized
    /// datagram grew).
    pub(super) fn clear(&mut self) {
        self.staged.clear();
        self.bytes.clear();
        if self.bytes.capacity() > OUTBOX_BYTES {
            self.bytes.shrink_to(OUTBOX_BYTES);
        }
    }

    fn start(&self, i: usize) -> usize {
        match i.checked_sub(1) {
            Some(before) => self.staged.get(before).map_or(0, |s| s.end),
            None => 0,
        }
    }
}

impl Pending for Outbox {
    fn len(&self) -> usize {
        self.staged.len()
    }

    fn get(&self, i: usize) -> (Option<SocketAddr>, &[u8]) {
        match self.staged.get(i) {
            Some(s) => (s.to, self.bytes.get(self.start(i)..s.end).unwrap_or(&[])),
            None => (None, &[]),
        }
    }

    fn contiguous(&self, first: usize, count: usize) -> Option<&[u8]> {
        let last = self.staged.get((first + count).checked_sub(1)?)?;
        self.bytes.get(self.start(first)..last.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_datagrams_read_back_whole_and_in_order() {
        let a = Some("127.0.0.1:1".parse().unwrap());
        let mut o = Outbox::default();
        o.stage(a, b"one");
        o.stage(None, b"");
        o.stage(a, b"three");
        assert_eq!(o.len(), 3);
        assert_eq!(o.get(0), (a, &b"one"[..]));
        assert_eq!(o.get(1), (None, &b""[..]));
        assert_eq!(o.get(2), (a, &b"three"[..]));
        assert_eq!(o.contiguous(0, 3), Some(&b"onethree"[..]));
        assert_eq!(o.contiguous(2, 2), None);
        o.clear();
        assert!(o.is_empty());
        assert!(o.has_room(1 << 20), "anything fits an empty outbox");
    }

    #[test]
    fn it_holds_a_batch_or_its_bytes_at_most() {
        let mut o = Outbox::default();
        for _ in 0..BATCH {
            assert!(o.has_room(1));
            o.stage(None, b"x");
        }
        assert!(!o.has_room(1), "a full batch");
        o.clear();
        o.stage(None, &[0; OUTBOX_BYTES - 10]);
        assert!(o.has_room(10));
        assert!(!o.has_room(11));
    }
}
