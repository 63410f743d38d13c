//! A connection's outgoing bytes that the kernel has not taken yet.

use std::io::{self, Write};

/// Above this capacity an emptied buffer gives its memory back, so a burst
/// does not leave every idle connection holding a large allocation.
const KEEP_CAPACITY: usize = 64 * 1024;

/// A FIFO of bytes: appended at the back, written from `start`.
///
/// One contiguous `Vec` so a flush is a single `write` of the whole backlog.
/// The consumed prefix is reclaimed when the buffer empties, or when it grows
/// past half the allocation.
#[derive(Default)]
pub(crate) struct WriteBuffer {
    bytes: Vec<u8>,
    start: usize,
}

impl WriteBuffer {
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.bytes.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len() - self.start
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start >= self.bytes.len() / 2 {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(data);
    }

    /// Writes as much as `sink` takes. `Ok(true)` when the buffer emptied,
    /// `Ok(false)` when the sink would block first.
    pub(crate) fn flush_into<W: Write>(&mut self, mut sink: W) -> io::Result<bool> {
        while !self.is_empty() {
            match sink.write(&self.bytes[self.start..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.bytes.capacity() > KEEP_CAPACITY {
            self.bytes = Vec::new();
        } else {
            self.bytes.clear();
        }
        self.start = 0;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `limit` bytes per call, then would block once `room` runs out.
    struct Trickle {
        got: Vec<u8>,
        limit: usize,
        room: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.limit).min(self.room);
            self.room -= n;
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn keeps_order_across_partial_flushes() {
        let mut b = WriteBuffer::default();
        let mut sink = Trickle {
            got: Vec::new(),
            limit: 3,
            room: 5,
        };
        b.push(b"hello ");
        assert!(!b.flush_into(&mut sink).unwrap());
        b.push(b"world");
        assert_eq!(b.len(), 6);
        sink.room = 100;
        assert!(b.flush_into(&mut sink).unwrap());
        assert_eq!(sink.got, b"hello world");
        assert!(b.is_empty());
    }
}
